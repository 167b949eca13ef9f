"""``tracks.csv`` (MOTChallenge boxes) and ``tracks_mots.txt`` (MOTSChallenge RLE rows), with the
class names in ``tracks_labels.txt``."""

from __future__ import annotations

import csv

from ...masks import encode_rle, mask_bbox
from ...records import Frame, FrameMasks
from .base import TrackTextSink, class_index, register


class MotSink(TrackTextSink):
    """``tracks.csv``: one MOTChallenge row per object whose mask is not empty,
    ``frame, id, x, y, w, h, score, class, visibility``: frames and pixel coordinates from 1 (the box of
    the mask, as MOTChallenge and motmetrics count), ``class`` the 1-based line of the object's label in
    ``tracks_labels.txt`` ("object" when it has none), ``visibility`` 1. These are the columns CVAT's MOT
    1.1 import reads (``gt/gt.txt`` + ``gt/labels.txt``); motmetrics reads the first seven."""

    def open(self) -> None:
        self._f = open(self.partial, "w", newline="")
        self._w = csv.writer(self._f)

    def reopen(self, position: dict) -> None:
        super().reopen(position)
        self._w = csv.writer(self._f)

    def write(self, frame: Frame, masks: FrameMasks) -> None:
        for oid, m, s in zip(masks.object_ids, masks.masks, masks.scores):
            box = mask_bbox(m)
            if box is not None:
                x, y, w, h = box
                cls = class_index(self.classes, self.labels, oid) + 1
                self._w.writerow([frame.index + 1, oid, x + 1, y + 1, w, h, f"{float(s):.4f}", cls, 1])
        if self.live:
            self._f.flush()
        self.frames_written += 1


class MotsSink(TrackTextSink):
    """``tracks_mots.txt``: MOTSChallenge rows ``frame id class_id height width rle``, one per object whose
    mask is not empty: frames from 1, ``class_id`` the 1-based line of its label in ``tracks_labels.txt``
    order ("object" when unnamed), ``rle`` COCO's compressed RLE of the mask (pycocotools decodes it)."""

    def open(self) -> None:
        self._f = open(self.partial, "w")

    def write(self, frame: Frame, masks: FrameMasks) -> None:
        h, w = masks.masks.shape[1:]
        for oid, m in zip(masks.object_ids, masks.masks):
            if m.any():
                cls = class_index(self.classes, self.labels, oid) + 1
                self._f.write(f"{frame.index + 1} {oid} {cls} {h} {w} {encode_rle(m)['counts']}\n")
        if self.live:
            self._f.flush()
        self.frames_written += 1


register("mot", ("tracks.csv", "tracks_labels.txt"), lambda c: MotSink(c.folder / "tracks.csv", labels=c.labels))
register("mots", ("tracks_mots.txt", "tracks_labels.txt"), lambda c: MotsSink(c.folder / "tracks_mots.txt", c.labels))
