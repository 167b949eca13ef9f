"""``yolo/``: Ultralytics segmentation labels and ``data.yaml``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ...records import Frame, FrameMasks
from .base import FrameImages, Sink, class_index, class_names, drop_frames_from, next_within, register


def mask_polygon(mask: np.ndarray) -> np.ndarray | None:
    """One polygon (int [P, 2], x y) for a bool mask, as YOLO segmentation labels hold one per object: the
    contours of its parts and of their holes (holes run the other way round, so they stay empty when
    filled), each joined to the polygon so far by a zero-width bridge, there and back, between their two
    closest points (as Ultralytics' own converter merges multi-part masks). A part one pixel thick, whose
    contour has no area (a line or a point), is its pixel box. None when the mask is empty."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    parts = sorted((_with_area(c.reshape(-1, 2)) for c in contours), key=lambda c: -cv2.contourArea(c))
    if not parts:
        return None
    poly = parts[0]
    for c in parts[1:]:
        d = ((poly[:, None, :].astype(np.int64) - c[None, :, :]) ** 2).sum(-1)
        i, j = np.unravel_index(int(np.argmin(d)), d.shape)
        loop = np.concatenate([c[j:], c[: j + 1]])  # c from its closest point, back to it
        poly = np.concatenate([poly[: i + 1], loop, poly[i:]])
    return poly


def _with_area(contour: np.ndarray) -> np.ndarray:
    if len(contour) >= 3 and cv2.contourArea(contour) > 0:
        return contour
    (x0, y0), (x1, y1) = contour.min(axis=0), contour.max(axis=0) + 1
    return np.array([(x0, y0), (x1, y0), (x1, y1), (x0, y1)], dtype=contour.dtype)


class YoloSink(Sink):
    """``yolo/``: an Ultralytics segmentation dataset. ``labels/<frame>.txt`` holds one line per object whose
    mask is not empty: the class index (from 0) and the normalised polygon (x y pairs in 0..1) of the mask
    (:func:`mask_polygon`); ``images/<frame>.jpg`` the frame itself when ``sink.frames=true``; ``data.yaml``
    the classes and the splits (``train`` and ``val``: all frames), without a ``path`` key, so Ultralytics
    takes the folder of ``data.yaml`` as the dataset root wherever it is moved."""

    def __init__(self, target: Path, labels: Mapping[int, str | None], images: FrameImages | None = None) -> None:
        super().__init__(target)
        self.labels = labels
        self.classes = class_names(labels)
        self.images = images

    def open(self) -> None:
        (self.partial / "labels").mkdir(parents=True)
        if self.images is not None:
            (self.partial / "images").mkdir()

    def write(self, frame: Frame, masks: FrameMasks) -> None:
        h, w = masks.masks.shape[1:]
        lines = []
        for oid, m in zip(masks.object_ids, masks.masks):
            poly = mask_polygon(m)
            if poly is None:
                continue
            cls = class_index(self.classes, self.labels, oid)
            coords = " ".join(f"{x / w:.6f} {y / h:.6f}" for x, y in poly)
            lines.append(f"{cls} {coords}")
        (self.partial / "labels" / f"{frame.index:05d}.txt").write_text("".join(x + "\n" for x in lines))
        if self.images is not None:
            self.images.place(self.partial / "images", frame)
        self._next = frame.index + 1
        self.frames_written += 1

    def position(self) -> dict:
        return {"frames": self.frames_written, "next": getattr(self, "_next", 0)}

    def check_position(self, position: Any, emitted: int) -> str | None:
        return super().check_position(position, emitted) or next_within(position, self.clip.next_after(emitted))

    def reopen(self, position: dict) -> None:
        self._next = position["next"]
        drop_frames_from(self.partial / "labels", "*.txt", self._next)
        if self.images is not None:
            drop_frames_from(self.partial / "images", "*.jpg", self._next)

    def close(self, ok: bool) -> None:
        if ok:
            # JSON strings are YAML double-quoted strings; non-ASCII stays UTF-8 (escaped, an emoji would be
            # written as two surrogates, which YAML readers take as two broken characters).
            names = "".join(f"  {i}: {json.dumps(n, ensure_ascii=False)}\n" for i, n in enumerate(self.classes))
            images = "" if self.images is not None else "# images/ is written with sink.frames=true\n"
            (self.partial / "data.yaml").write_text(
                "# Ultralytics segmentation dataset written by tracker: every frame in both splits\n"
                f"{images}train: images\nval: images\nnc: {len(self.classes)}\nnames:\n{names}",
                encoding="utf-8",
            )


register("yolo", ("yolo",), lambda c: YoloSink(c.folder / "yolo", c.labels, c.images))
