"""Look-alikes met while an object is lost: what SAM 2 proposes for it and the policy refuses.

SAM 2 follows a look-alike from frame to frame once it has jumped to it, so such a proposal is followed
here too (box overlap, the camera's motion taken out) while the object is lost. When the object may come
back anywhere (:data:`.recovery.FORGET`), a part on a followed look-alike is not taken for it. Bounded:
``MAX_DECOYS`` per object, each forgotten ``frames`` frames after it was last proposed."""

from __future__ import annotations

import numpy as np

from ...camera import warp_points
from ...motion import box_iou

MAX_DECOYS = 4  # look-alikes followed per object
DECOY_FRAMES = 30  # one not proposed for this many frames is forgotten
MARGIN = 0.25  # a part within this many object sizes of a look-alike's box is that look-alike


class Decoys:
    """Per row: the look-alikes followed, as [x0, y0, x1, y1, frame last proposed]."""

    def __init__(self, frames: int = DECOY_FRAMES) -> None:
        self.frames = frames
        self.boxes: dict[int, list[list[float]]] = {}

    def note(self, r: int, t: int, parts: list[np.ndarray], size: float) -> None:
        """Row r is lost on frame t and SAM 2 proposed ``parts`` (boxes [4]) that were refused."""
        mine = [d for d in self.boxes.get(r, []) if abs(t - d[4]) <= self.frames and d[4] != t]
        for box in parts:
            hit = [d for d in mine if _meets(np.asarray(d[:4]), box, size)]
            if hit:
                hit[0][:] = [*box.tolist(), t]
            elif len(mine) < MAX_DECOYS:
                mine.append([*box.tolist(), t])
        self.boxes[r] = mine

    def covers(self, r: int, box: np.ndarray, size: float) -> bool:
        """Whether ``box`` [4] is on a look-alike followed for row r."""
        return any(_meets(np.asarray(d[:4]), box, size) for d in self.boxes.get(r, []))

    def clear(self, r: int) -> None:
        self.boxes.pop(r, None)

    def warp(self, rows: np.ndarray, m: np.ndarray) -> None:
        """Move the look-alikes of ``rows`` with the camera (affine m [2, 3])."""
        for r in rows:
            for d in self.boxes.get(int(r), []):
                d[:4] = warp_points(m, np.array([d[0:2], d[2:4]])).reshape(-1).tolist()

    def state(self) -> list:
        return [[r, d] for r, d in self.boxes.items()]

    def load_state(self, state: list) -> None:
        self.boxes = {int(r): [[float(x) for x in d] for d in ds] for r, ds in state}


def _meets(a: np.ndarray, b: np.ndarray, size: float) -> bool:
    grown = b + np.array([-1, -1, 1, 1]) * MARGIN * size
    return bool(box_iou(a[None].astype(np.float64), grown[None].astype(np.float64))[0] > 0)
