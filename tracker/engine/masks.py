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
