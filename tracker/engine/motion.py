"""Boxes and motion for the memory policies: NumPy only, every function on a batch of N objects at once."""

from __future__ import annotations

import cv2
import numpy as np

# DeepSORT's noise: position std h/20, velocity std h/160 (SAMURAI uses the same filter).
_STD_POS = 1.0 / 20
_STD_VEL = 1.0 / 160


def mask_boxes(masks: np.ndarray) -> np.ndarray:
    """bool [N, h, w] -> float32 [N, 4] boxes (x0, y0, x1, y1), pixel edges; NaN rows for empty masks."""
    n = masks.shape[0]
    out = np.full((n, 4), np.nan, dtype=np.float32)
    if n == 0:
        return out
    rows, cols = masks.any(axis=2), masks.any(axis=1)
    for i in np.flatnonzero(rows.any(axis=1)):
        ys, xs = np.flatnonzero(rows[i]), np.flatnonzero(cols[i])
        out[i] = (xs[0], ys[0], xs[-1] + 1, ys[-1] + 1)
    return out


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of boxes a [N, 4] and b [N, 4] row by row -> float32 [N]; 0 where either is NaN (empty)."""
    x0, y0 = np.maximum(a[:, 0], b[:, 0]), np.maximum(a[:, 1], b[:, 1])
    x1, y1 = np.minimum(a[:, 2], b[:, 2]), np.minimum(a[:, 3], b[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])  # noqa: E731
    union = area(a) + area(b) - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = inter / union
    return np.nan_to_num(iou, nan=0.0).astype(np.float32)


def components(mask: np.ndarray, keep: int = 4) -> list[np.ndarray]:
    """The ``keep`` largest 8-connected regions of a bool [h, w] mask, largest first (bool [h, w] each)."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    order = np.argsort(-stats[1:, cv2.CC_STAT_AREA])[:keep] + 1
    return [labels == k for k in order]


def to_xyah(boxes: np.ndarray) -> np.ndarray:
    """[N, 4] (x0, y0, x1, y1) -> [N, 4] (centre x, centre y, aspect w/h, height)."""
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    return np.stack([boxes[:, 0] + w / 2, boxes[:, 1] + h / 2, w / np.maximum(h, 1e-6), h], axis=1)


def to_box(xyah: np.ndarray) -> np.ndarray:
    """[N, >=4] (centre x, centre y, aspect, height, ...) -> [N, 4] (x0, y0, x1, y1)."""
    cx, cy, a, h = xyah[:, 0], xyah[:, 1], xyah[:, 2], xyah[:, 3]
    w = a * h
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)


class BoxFilter:
    """Constant-velocity Kalman filters on boxes for many objects (DeepSORT's, as SAMURAI uses): state
    float64 [N, 8] = (cx, cy, aspect, height) and their velocities, covariance [N, 8, 8]. Rows are slots;
    ``alive`` marks those in use."""

    def __init__(self, capacity: int = 8, velocity_noise: float = _STD_VEL) -> None:
        """``velocity_noise``: the centre velocity's process noise, a fraction of the box height per frame
        (DeepSORT's 1/160 trusts constant motion; larger follows turns and starts sooner). The height's
        velocity keeps DeepSORT's noise: sizes change slowly."""
        self.std_vel = float(velocity_noise)
        self.mean = np.zeros((capacity, 8))
        self.cov = np.tile(np.eye(8), (capacity, 1, 1))
        self.alive = np.zeros(capacity, dtype=bool)

    def reserve(self, n: int) -> None:
        """Make room for rows 0..n-1 (new rows not alive)."""
        if n <= len(self.alive):
            return
        extra = max(n, 2 * len(self.alive)) - len(self.alive)
        self.mean = np.concatenate([self.mean, np.zeros((extra, 8))])
        self.cov = np.concatenate([self.cov, np.tile(np.eye(8), (extra, 1, 1))])
        self.alive = np.concatenate([self.alive, np.zeros(extra, dtype=bool)])

    def start(self, rows: np.ndarray, boxes: np.ndarray) -> None:
        """Start the filters of ``rows`` at ``boxes`` [N, 4] with zero velocity."""
        if not len(rows):
            return
        self.reserve(int(rows.max()) + 1)
        z = to_xyah(boxes.astype(np.float64))
        h = z[:, 3:4]
        self.mean[rows] = np.concatenate([z, np.zeros_like(z)], axis=1)
        std = np.concatenate(
            [2 * _STD_POS * h, 2 * _STD_POS * h, np.full_like(h, 1e-2), 2 * _STD_POS * h]
            + [10 * _STD_VEL * h, 10 * _STD_VEL * h, np.full_like(h, 1e-5), 10 * _STD_VEL * h],
            axis=1,
        )
        self.cov[rows] = np.einsum("ni,ij->nij", std**2, np.eye(8))
        self.alive[rows] = True

    def predict(self, rows: np.ndarray, damping: np.ndarray | float = 1.0) -> np.ndarray:
        """Advance ``rows`` one frame; ``damping`` [N] scales each velocity first (1: constant velocity).
        Returns their predicted boxes [N, 4]."""
        if not len(rows):
            return np.zeros((0, 4))
        m, p = self.mean[rows], self.cov[rows]
        m[:, 4:] *= np.asarray(damping, dtype=np.float64).reshape(-1, 1)
        f = np.eye(8)
        f[:4, 4:] = np.eye(4)
        h = m[:, 3:4]
        std = np.concatenate(
            [_STD_POS * h, _STD_POS * h, np.full_like(h, 1e-2), _STD_POS * h]
            + [self.std_vel * h, self.std_vel * h, np.full_like(h, 1e-5), _STD_VEL * h],
            axis=1,
        )
        self.mean[rows] = m @ f.T
        self.cov[rows] = f @ p @ f.T + np.einsum("ni,ij->nij", std**2, np.eye(8))
        return to_box(self.mean[rows])

    def update(self, rows: np.ndarray, boxes: np.ndarray) -> None:
        """Correct ``rows`` with measured ``boxes`` [N, 4]."""
        if not len(rows):
            return
        m, p = self.mean[rows], self.cov[rows]
        z = to_xyah(boxes.astype(np.float64))
        h = m[:, 3:4]
        r = np.concatenate([_STD_POS * h, _STD_POS * h, np.full_like(h, 1e-1), _STD_POS * h], axis=1) ** 2
        s = p[:, :4, :4] + np.einsum("ni,ij->nij", r, np.eye(4))
        gain = np.linalg.solve(s, p[:, :4, :]).transpose(0, 2, 1)  # [N, 8, 4]
        self.mean[rows] = m + np.einsum("nij,nj->ni", gain, z - m[:, :4])
        self.cov[rows] = p - gain @ s @ gain.transpose(0, 2, 1)

    def boxes(self, rows: np.ndarray) -> np.ndarray:
        return to_box(self.mean[rows])

    def velocity(self, rows: np.ndarray) -> np.ndarray:
        """[N, 2] centre velocity in pixels per frame."""
        return self.mean[rows, 4:6].copy()

    def state(self) -> dict:
        return {"mean": self.mean.tolist(), "cov": self.cov.tolist(), "alive": self.alive.tolist()}

    def load_state(self, state: dict) -> None:
        self.mean = np.asarray(state["mean"], dtype=np.float64).reshape(-1, 8)
        self.cov = np.asarray(state["cov"], dtype=np.float64).reshape(-1, 8, 8)
        self.alive = np.asarray(state["alive"], dtype=bool)
