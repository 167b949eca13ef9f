"""``instances.json``: COCO with videos, images and ``track_id`` (pycocotools, FiftyOne, CVAT)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ...masks import encode_rle, mask_bbox
from ...records import Frame, FrameMasks, VideoInfo, whole
from .base import Sink, bytes_within, class_index, class_names, frame_name, register


class CocoSink(Sink):
    """``instances.json``: COCO with a ``videos`` entry, one ``images`` entry per frame (``video_id``,
    ``frame_index``, ``file_name`` = ``00000.jpg``, the frame's name in ``frames/``, which
    ``sink.frames=true`` writes: the images folder beside the annotation file, as COCO has it) and one
    annotation per object per frame whose mask is not empty (COCO RLE ``segmentation``, ``bbox``
    [x, y, w, h], ``area``, ``score``, ``track_id`` = object id, ``category_id`` from its label).
    pycocotools' ``COCO`` loads it. Entries stream through temp files: the video is never held."""

    def __init__(self, target: Path, info: VideoInfo, labels: Mapping[int, str | None], video_name: str) -> None:
        super().__init__(target)
        self.info, self.labels, self.video_name = info, labels, video_name
        self.classes = class_names(labels)

    def _parts(self) -> tuple[Path, Path]:
        # Beside the partial output (so a resumed run finds them), removed when it is closed.
        name = self.partial.name
        return self.partial.with_name(name + ".images"), self.partial.with_name(name + ".anns")

    def open(self) -> None:
        images, anns = self._parts()
        self._images = open(images, "w+")
        self._anns = open(anns, "w+")
        self._next_id = 1

    def position(self) -> dict:
        self._images.flush()
        self._anns.flush()
        return {
            "frames": self.frames_written,
            "images": self._images.tell(),
            "anns": self._anns.tell(),
            "next_id": self._next_id,
        }

    def check_position(self, position: Any, emitted: int) -> str | None:
        problem = super().check_position(position, emitted)
        for path, key in zip(self._parts(), ("images", "anns")):
            problem = problem or bytes_within(position, key, path)
        if problem is None and not (whole(position.get("next_id")) and position["next_id"] >= 1):
            problem = f"next_id={position.get('next_id')!r}"
        return problem

    def reopen(self, position: dict) -> None:
        images, anns = self._parts()
        self._images, self._anns = open(images, "r+"), open(anns, "r+")
        for f, key in ((self._images, "images"), (self._anns, "anns")):
            f.truncate(position[key])
            f.seek(position[key])
        self._next_id = position["next_id"]

    def write(self, frame: Frame, masks: FrameMasks) -> None:
        image_id = frame.index + 1
        h, w = masks.masks.shape[1:]
        image = {"id": image_id, "video_id": 1, "frame_index": frame.index, "file_name": frame_name(frame.index)}
        self._images.write(json.dumps({**image, "width": w, "height": h}) + "\n")
        for oid, m, s in zip(masks.object_ids, masks.masks, masks.scores):
            box = mask_bbox(m)
            if box is None:
                continue
            ann = {
                "id": self._next_id,
                "image_id": image_id,
                "video_id": 1,
                "track_id": oid,
                "category_id": class_index(self.classes, self.labels, oid) + 1,
                "segmentation": encode_rle(m),
                "bbox": [float(v) for v in box],
                "area": int(m.sum()),
                "score": round(float(s), 5) if np.isfinite(s) else None,
                "iscrowd": 0,
            }
            self._anns.write(json.dumps(ann) + "\n")
            self._next_id += 1
        self.frames_written += 1

    def close(self, ok: bool) -> None:
        try:
            if ok:
                video = {"id": 1, "name": self.video_name, "width": self.info.width, "height": self.info.height}
                head = {
                    "info": {"description": "tracker (SAM 2) masks", "version": "1.0"},
                    "videos": [{**video, "length": self.frames_written}],
                    "categories": [{"id": i + 1, "name": n} for i, n in enumerate(self.classes)],
                }
                with open(self.partial, "w") as f:
                    f.write(json.dumps(head)[:-1])
                    for key, tmp in (("images", self._images), ("annotations", self._anns)):
                        f.write(f', "{key}": [')
                        tmp.seek(0)
                        for i, line in enumerate(tmp):
                            f.write(("," if i else "") + line.rstrip("\n"))
                        f.write("]")
                    f.write("}\n")
        finally:
            self._images.close()
            self._anns.close()
        if ok or not self.keep_on_failure:
            for part in self._parts():
                part.unlink(missing_ok=True)


register(
    "coco",
    ("instances.json",),
    lambda c: CocoSink(c.folder / "instances.json", c.info, c.labels, c.video_name),
)
