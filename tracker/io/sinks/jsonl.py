"""``masks.jsonl``: one line per frame with every object's COCO RLE, box and score."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ...masks import encode_rle, mask_bbox
from ...records import Frame, FrameMasks
from .base import TextSink, register


class JsonlSink(TextSink):
    """``masks.jsonl``: one line per frame with COCO RLE, bbox [x, y, w, h], area and score per object."""

    def __init__(self, target: Path, labels: Mapping[int, str | None] | None = None) -> None:
        super().__init__(target)
        self.labels = labels or {}

    def open(self) -> None:
        self._f = open(self.partial, "w")

    def write(self, frame: Frame, masks: FrameMasks) -> None:
        objects = []
        for oid, m, s in zip(masks.object_ids, masks.masks, masks.scores):
            box = mask_bbox(m)
            objects.append(
                {
                    "id": oid,
                    "label": self.labels.get(oid),
                    "rle": encode_rle(m),
                    "bbox": list(box) if box else None,
                    "area": int(m.sum()),
                    "score": round(float(s), 5) if np.isfinite(s) else None,  # JSON has no NaN
                }
            )
        line = {"frame": frame.index, "time": frame.time, "objects": objects}
        self._f.write(json.dumps(line) + "\n")
        if self.live:
            self._f.flush()
        self.frames_written += 1

    def close(self, ok: bool) -> None:
        self._f.close()


register("jsonl", ("masks.jsonl",), lambda c: JsonlSink(c.folder / "masks.jsonl", labels=c.labels))
