"""SAM 2's unbroken chain: what SAM 2 keeps following from where the object was last shown is the object.

A refusal is a bet against SAM 2. Where the bet was wrong (two look-alikes that bounced off each other,
where motion said they passed; an object that turned while touching another), SAM 2 goes on following the
object frame after frame while the policy shows it absent, and the refused masks used to be followed as
look-alikes, so the object was never taken back. Here, from the first refused frame, SAM 2's own mask is
followed as a chain: it starts where the object was shown last, each link overlaps the one before, is at most
twice its size (it may shrink at once: going behind something) and SAM 2 is sure of it (object score logit
at least :data:`SURE`), with no frame without it. A chain of :data:`CHAIN` links that ends on no other
tracked object is taken: the object is back, where SAM 2 says. A look-alike coming out of an occluder while
the object is hidden starts no chain: there are frames without a mask between, or SAM 2 is unsure on the
occluder's edge (on the look-alike tuning clips such a chain, not yet asking for sureness, took the copy:
seed 0, J 0.86 -> 0.76).

The scores are the toy model's: its masks of a tracked object score 8-10, its slivers on an edge 4-5. A
SAM 2.1 checkpoint may spread them otherwise; ``SURE`` is untested there.
"""

from __future__ import annotations

import numpy as np

from ...motion import box_iou

CHAIN = 8  # links (frames) of an unbroken chain before it is taken
LINK = 0.25  # a link overlaps the previous one grown by this many object sizes
SURE = 7.0  # and SAM 2's object score logit is at least this (sure: its slivers on an occluder's edge, where a
#            look-alike then comes out, score 4-5; an object it follows 8-10)
GROWTH = 2.0  # and at most this many times its area (a jump onto something bigger is no link)
LINK_MAX = 2.0  # and at most this share of the object's size (a merge of two is at most twice it); any less: an
#               object turning back behind an occluder is a sliver for many frames, and SAM 2 keeps it
BROKEN = -1


class Chains:
    """Per row: the chain's length (0: none, :data:`BROKEN`: broken until the object is shown again), its last
    link's box [4] and area and the frame it was made on."""

    def __init__(self) -> None:
        self.length = np.zeros(0, dtype=np.int64)
        self.box = np.full((0, 4), np.nan)
        self.area = np.zeros(0)
        self.frame = np.full(0, -1, dtype=np.int64)

    def grow(self, n: int) -> None:
        k = n - len(self.length)
        self.length = np.concatenate([self.length, np.zeros(k, dtype=np.int64)])
        self.box = np.concatenate([self.box, np.full((k, 4), np.nan)])
        self.area = np.concatenate([self.area, np.zeros(k)])
        self.frame = np.concatenate([self.frame, np.full(k, -1, dtype=np.int64)])

    def clear(self, r: int) -> None:
        self.length[r], self.frame[r] = 0, -1

    def start(
        self,
        r: int,
        t: int,
        last_box: np.ndarray,
        last_area: float,
        box: np.ndarray,
        area: float,
        score: float,
        size: float,
    ) -> None:
        """Row r was refused on frame t, first frame lost; SAM 2's own mask there (``box``, ``area``; NaN box:
        none) starts a chain if it continues what was shown last."""
        if self._fits(box, area, score, size) and _links(last_box, last_area, box, area, size):
            self.length[r], self.box[r], self.area[r], self.frame[r] = 1, box, area, t
        else:
            self.length[r] = BROKEN

    def extend(self, r: int, t: int, box: np.ndarray, area: float, score: float, size: float) -> None:
        """Row r is lost on frame t and SAM 2's own mask is ``box``, ``area`` (NaN box: none): the chain grows
        by it or breaks."""
        if self.length[r] <= 0:
            return
        ok = abs(t - int(self.frame[r])) == 1 and self._fits(box, area, score, size)
        if ok and _links(self.box[r], self.area[r], box, area, size):
            self.length[r] += 1
            self.box[r], self.area[r], self.frame[r] = box, area, t
        else:
            self.length[r] = BROKEN

    def ready(self, r: int, t: int) -> bool:
        """Whether row r's chain, made up to frame t, is long enough to be taken."""
        return bool(self.length[r] >= CHAIN and self.frame[r] == t)

    def on(self, r: int, t: int) -> np.ndarray | None:
        """The box of row r's live chain on frame t (None: none)."""
        return self.box[r] if self.length[r] > 0 and self.frame[r] == t else None

    @staticmethod
    def _fits(box: np.ndarray, area: float, score: float, size: float) -> bool:
        ok = np.isfinite(box).all() and np.isfinite(size) and size > 0
        return bool(ok and score >= SURE and 0 < area <= LINK_MAX * size**2)

    def state(self) -> dict:
        return {
            "length": self.length.tolist(),
            "box": np.nan_to_num(self.box, nan=-1.0).tolist(),
            "area": self.area.tolist(),
            "frame": self.frame.tolist(),
        }

    def load_state(self, state: dict) -> None:
        self.length = np.asarray(state["length"], dtype=np.int64)
        box = np.asarray(state["box"], dtype=np.float64).reshape(-1, 4)
        self.box = np.where(box < 0, np.nan, box)
        self.area = np.asarray(state["area"], dtype=np.float64)
        self.frame = np.asarray(state["frame"], dtype=np.int64)


def _links(last_box: np.ndarray, last_area: float, box: np.ndarray, area: float, size: float) -> bool:
    """Whether a part (``box`` [4], ``area``) follows one (``last_box``, ``last_area``) of an object of side
    ``size``: it overlaps it grown by :data:`LINK` sizes and is at most :data:`GROWTH` times its area (it may
    shrink at once: an object going behind something)."""
    grown = last_box + np.array([-1, -1, 1, 1]) * LINK * size
    return bool(area <= GROWTH * max(last_area, 1.0) and box_iou(grown[None], box[None])[0] > 0)
