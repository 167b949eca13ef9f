"""SAMURAI (Yang et al. 2024) as a memory policy: a Kalman filter chooses among SAM 2's candidates."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..memory import Group, register
from ..motion import box_iou, mask_boxes
from ..types import Candidates, Verdict
from .base import Bank, Pending, PolicySettings, SlotMemory, best_of


@dataclass(frozen=True)
class SamuraiSettings(PolicySettings):
    """``memory=samurai``'s keys (configs/memory/samurai.yaml; the class docstring says what each does)."""

    policy: ClassVar[str] = "samurai"
    alpha: float = 0.25
    stable_frames: int = 15
    stable_iou: float = 0.3
    memory_iou: float = 0.5
    memory_score: float = 0.0
    memory_motion: float = 0.0

    def __post_init__(self) -> None:
        self.check("alpha", 0, 1)
        self.check("stable_frames", 0, 10_000, int)
        self.check("stable_iou", 0, 1)
        self.check("memory_iou", 0, 1)
        self.check("memory_score", -100, 100)
        self.check("memory_motion", 0, 1)


@register
class SamuraiMemory(SlotMemory):
    """SAMURAI (Yang et al. 2024): a Kalman filter on the box scores SAM 2's candidate masks,
    ``alpha * IoU(predicted box, mask box) + (1 - alpha) * predicted IoU``, once the track has been stable
    (predicted IoU > ``stable_iou``) for ``stable_frames`` frames; a frame is remembered when its predicted
    IoU > ``memory_iou``, object score > ``memory_score`` and motion score > ``memory_motion``; SAM 2 reads
    the frame before (whatever its quality) and the most recent remembered ones; pointers as SAM 2."""

    name = "samurai"
    Settings = SamuraiSettings

    def __init__(self, settings: SamuraiSettings | None = None) -> None:
        super().__init__()
        self.settings = settings if settings is not None else self.Settings()
        self.stable = np.zeros(0, dtype=np.int64)

    def grow_rows(self, n: int) -> None:
        self.stable = np.concatenate([self.stable, np.zeros(n - len(self.stable), dtype=np.int64)])

    def reset_row(self, r: int) -> None:
        self.stable[r] = 0

    def decide(self, rows: Sequence[tuple[Group, int]], t: int, reverse: bool, c: Candidates) -> Verdict:
        groups, keys = self.keys_of(rows, reverse)
        r = self.start_rows(keys, groups, t)
        pred = self.predict(r, t)
        opts = list(c.options)
        boxes = [mask_boxes(c.masks[:, k] > 0) for k in opts]
        motion = np.stack([box_iou(pred, b) for b in boxes], axis=1)  # [N, options]
        ious = c.ious[:, opts]
        stable = self.stable[r] >= self.settings.stable_frames
        weighted = best_of(c, self.settings.alpha * motion + (1 - self.settings.alpha) * ious)
        choice = np.where(stable, weighted, c.chosen)
        pick = np.array([opts.index(k) for k in choice])
        n = np.arange(len(r))
        box, iou, kf = np.stack(boxes, axis=1)[n, pick], ious[n, pick], motion[n, pick]
        found = np.isfinite(box).all(axis=1)
        self.filter.update(r[found], box[found])
        self.stable[r] = np.where(iou > self.settings.stable_iou, self.stable[r] + 1, 0)
        valid = (
            (iou > self.settings.memory_iou)
            & (c.score > self.settings.memory_score)
            & (~stable | (kf > self.settings.memory_motion))
        )
        for (oid, rev), ok in zip(keys, valid):
            self.pending[(oid, rev, t)] = Pending(mem=bool(ok), ptr=True)
        return Verdict(choice, self.masks_of(c, choice), np.zeros(len(r), dtype=bool))

    def slots(self, bank: Bank) -> tuple[list[int], list[int]]:
        # the frame before t always, then the most recent remembered ones (SAMURAI's valid frames)
        mem = [bank.last] + [f for f in bank.mem[::-1] if f != bank.last]
        return mem[: self.geometry.num_maskmem - 1], bank.ptr[::-1]

    def extra_memories(self, bank: Bank) -> set[int]:
        return {bank.last}

    def own_state(self) -> dict:
        return {"stable": self.stable.tolist()}

    def load_own_state(self, state: dict) -> None:
        self.stable = np.asarray(state["stable"], dtype=np.int64)
