"""DAM4SAM (Videnovic et al. 2025) as a memory policy: recent-appearance memory and distractor-resolving anchors."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..memory import Group, register
from ..motion import box_iou, components, mask_boxes
from ..types import Candidates, Verdict
from .base import Bank, Pending, PolicySettings, SlotMemory


@dataclass(frozen=True)
class Dam4samSettings(PolicySettings):
    """``memory=dam4sam``'s keys (configs/memory/dam4sam.yaml; the class docstring says what each does)."""

    policy: ClassVar[str] = "dam4sam"
    every: int = 5
    max_anchors: int = 3
    anchor_iou: float = 0.8
    area_range: tuple[float, float] = (0.8, 1.2)
    anchor_gap: int = 5
    alternative_iou: float = 0.7

    def __post_init__(self) -> None:
        self.check("every", 1, 10_000, int)
        self.check("max_anchors", 0, 5, int)  # SAM 2 reads 7 memories in all
        self.check("anchor_iou", 0, 1)
        self.check_span("area_range", 0, 100)
        self.check("anchor_gap", 0, 10_000, int)
        self.check("alternative_iou", 0, 1)


@register
class Dam4samMemory(SlotMemory):
    """DAM4SAM (Videnovic et al. 2025): recent-appearance memory (every ``every``-th frame and the most
    recent, empty masks skipped) and up to ``max_anchors`` distractor-resolving anchors read as prompt
    frames. A frame becomes an anchor when the chosen mask's predicted IoU > ``anchor_iou``, its area is
    within ``area_range`` of the recent median, more than ``anchor_gap`` frames passed since the last anchor,
    and SAM 2's other masks point elsewhere: the box of (alternative minus chosen, largest part) united with
    the chosen mask has box IoU <= ``alternative_iou`` with the chosen mask's box for some alternative."""

    name = "dam4sam"
    Settings = Dam4samSettings

    def __init__(self, settings: Dam4samSettings | None = None) -> None:
        super().__init__()
        self.settings = settings if settings is not None else self.Settings()
        self.max_anchors = self.settings.max_anchors  # the slot base keeps this many anchors

    def decide(self, rows: Sequence[tuple[Group, int]], t: int, reverse: bool, c: Candidates) -> Verdict:
        groups, keys = self.keys_of(rows, reverse)
        r = self.start_rows(keys, groups, t)
        self.last[r] = t
        choice = c.chosen
        masks = self.masks_of(c, choice) > 0
        area = masks.sum(axis=(1, 2)).astype(np.float64)
        median = self.median_area(r)
        present = (c.score > 0) & (area > 0)
        n = np.arange(len(r))
        for i, key in enumerate(keys):
            bank = self.banks[key]
            since = abs(t - (bank.anchors[-1] if bank.anchors else self.started[r[i]]))
            ratio = area[i] / median[i] if np.isfinite(median[i]) and median[i] > 0 else np.nan
            anchor = bool(
                present[i]
                and c.ious[i, choice[i]] > self.settings.anchor_iou
                and self.settings.area_range[0] <= ratio <= self.settings.area_range[1]
                and since > self.settings.anchor_gap
                and self._elsewhere(c, i, choice[i], masks[i])
            )
            ram = bool(present[i]) and (abs(t - self.started[r[i]]) % self.settings.every == 0)
            self.pending[(key[0], reverse, t)] = Pending(mem=ram, ptr=True, anchor=anchor, present=bool(present[i]))
        self.push_area(r, np.where(present, area, 0))
        return Verdict(choice, c.masks[n, choice], np.zeros(len(r), dtype=bool))

    def _elsewhere(self, c: Candidates, i: int, chosen: int, mask: np.ndarray) -> bool:
        box = mask_boxes(mask[None])
        others = [k for k in (c.options if len(c.options) > 1 else (1, 2, 3)) if k != chosen]
        worst = 1.0
        for k in others:
            rest = (c.masks[i, k] > 0) & ~mask
            if not rest.any():
                continue
            united = components(rest, keep=1)[0] | mask
            worst = min(worst, float(box_iou(box, mask_boxes(united[None]))[0]))
        return worst <= self.settings.alternative_iou

    def slots(self, bank: Bank) -> tuple[list[int], list[int]]:
        # the most recent frame with a mask always, then every `every`-th frame
        newest = [bank.recent] if bank.recent >= 0 else []
        mem = newest + [f for f in bank.mem[::-1] if f not in newest]
        return mem[: self.capacity(bank)[0]], bank.ptr[::-1]

    def capacity(self, bank: Bank) -> tuple[int, int]:
        return max(0, self.geometry.num_maskmem - 1 - len(bank.anchors)), self.geometry.max_ptrs - 1

    def extra_memories(self, bank: Bank) -> set[int]:
        return {bank.recent} if bank.recent >= 0 else set()
