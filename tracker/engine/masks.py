"""Mask post-processing in NumPy/OpenCV (no torch), so it can run off the model's thread."""

from __future__ import annotations

import cv2
import numpy as np


def fill_holes(low_res: np.ndarray, max_area: int) -> np.ndarray:
    """Set background holes (8-connected regions of logit <= 0 with area <= max_area) to logit 0.1,
    as upstream's ``fill_holes_in_mask_scores``. low_res: float32 [B, h, w]; returns a new array."""
    if max_area <= 0:
        return low_res
    out = low_res.copy()
    for i, logits in enumerate(low_res):
        bg = (logits <= 0).astype(np.uint8)
        n, labels, stats, _ = cv2.connectedComponentsWithStats(bg, connectivity=8)
        small = np.flatnonzero(stats[1:, cv2.CC_STAT_AREA] <= max_area) + 1
        if small.size:
            out[i][np.isin(labels, small)] = 0.1
    return out


def to_video_masks(low_res: np.ndarray, video_size: tuple[int, int]) -> np.ndarray:
    """float32 [B, h, w] logits -> bool [B, H, W]: bilinear upsampling (half-pixel centres, as
    torch's ``align_corners=False``) then logit > 0."""
    h, w = video_size
    if low_res.shape[0] == 0:
        return np.zeros((0, h, w), dtype=bool)
    return np.stack([cv2.resize(x, (w, h), interpolation=cv2.INTER_LINEAR) > 0 for x in low_res])


def sigmoid(x: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-x))).astype(np.float32)


def to_grid(mask: np.ndarray, size: int) -> np.ndarray:
    """bool [H, W] at video resolution -> bool [size, size] on SAM 2's low-res grid (area resampling)."""
    small = cv2.resize(mask.astype(np.float32), (size, size), interpolation=cv2.INTER_AREA)
    return small >= 0.5


def mask_boxes(masks: np.ndarray) -> np.ndarray:
    """int [N, 4] boxes x0, y0, x1, y1 (exclusive ends) of bool masks [N, h, w]; zeros for empty ones."""
    rows, cols = masks.any(axis=2), masks.any(axis=1)
    out = np.zeros((len(masks), 4), dtype=np.int64)
    for i in range(len(masks)):
        ys, xs = np.flatnonzero(rows[i]), np.flatnonzero(cols[i])
        if len(ys):
            out[i] = (xs[0], ys[0], xs[-1] + 1, ys[-1] + 1)
    return out


def grid_boxes(masks: np.ndarray, video_size: tuple[int, int]) -> np.ndarray:
    """float64 [N, 4] boxes in video pixels (x0, y0, x1, y1) of bool masks [N, g, g] on SAM 2's low-res
    grid; zeros for empty masks."""
    h, w = video_size
    g = masks.shape[-1]
    return mask_boxes(masks).astype(np.float64) * (np.array([w, h, w, h], dtype=np.float64) / g)


def box_iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of boxes [N, 4] x [M, 4] (x0, y0, x1, y1) -> [N, M]."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    iw = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    ih = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = iw * ih
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)
