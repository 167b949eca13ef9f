"""Re-prompts from a box tracker: on a frame with boxes for tracked ids, an object whose mask has drifted
off its box (box IoU below ``iou``) is prompted there with the box; its prompt frames stay bounded."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from ..masks import box_iou_matrix, grid_boxes
from .memory import Group

Box = tuple[float, float, float, float]


@dataclass
class RepromptPolicy:
    boxes: dict[int, dict[int, Box]]  # frame -> {object id: box in video pixels}
    iou: float
    max_prompt_frames: int = 8  # per object, up to the current frame (SAM 2 attends to every prompt frame)
    done: list[dict[str, int]] = field(default_factory=list)  # {"id", "frame"} of every re-prompt

    @staticmethod
    def of(boxes: Mapping[int, Mapping[int, Box]] | None, iou: float) -> RepromptPolicy:
        return RepromptPolicy({int(t): dict(v) for t, v in (boxes or {}).items()}, float(iou))

    def due(self, t: int) -> bool:
        return t in self.boxes

    def take(self, t: int) -> dict[int, Box]:
        return self.boxes.pop(t)

    def drifted(self, g: Group, t: int, low: np.ndarray, boxes: Mapping[int, Box], video_size) -> list[int]:
        """Rows of g (low-res logits ``low`` float32 [B, h, w] on frame t) whose mask's box has drifted."""
        rows = []
        for i, oid in enumerate(g.object_ids):
            if oid not in boxes or t in g.prompt_frames or t <= g.warm_end:
                continue
            mask_box = grid_boxes(low[i : i + 1] > 0, video_size)  # zeros when lost: IoU 0
            if box_iou_matrix(np.array([boxes[oid]]), mask_box)[0, 0] < self.iou:
                rows.append(i)
        return rows

    def add_prompt_frame(self, g: Group, t: int) -> None:
        """Frame t becomes one of g's prompt frames; only the latest ``max_prompt_frames`` up to t stay."""
        g.prompt_frames = tuple(sorted({*g.prompt_frames, t}))
        while len([f for f in g.prompt_frames if f <= t]) > self.max_prompt_frames:
            g.cond.pop(g.prompt_frames[0], None)
            g.prompt_frames = g.prompt_frames[1:]
        self.done.append({"id": g.object_ids[0], "frame": t})
