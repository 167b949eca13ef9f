"""Mask helpers in NumPy/OpenCV (no torch, no other tracker module): post-processing that runs off the
model's thread, boxes on the low-res grid, COCO RLE encoding and bounded decoding, the pixel limit."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import cv2
import numpy as np
from pycocotools import mask as mask_utils

PNG_MAX_ID = 255  # a palette PNG holds ids 0..255, 0 being the background


def png_id_hint(max_id: int, fix: str = "turn sink.png off") -> str:
    """What to say after 'object id N is too large' when the limit is the mask PNGs'."""
    return f" (mask PNGs hold 0..{PNG_MAX_ID}: {fix} for larger ids)" if max_id == PNG_MAX_ID else ""


# 8192 x 8192: above 8K UHD (7680 x 4320). One bool mask of this size is 64 MiB, one RGB frame 192 MiB.
MAX_IMAGE_PIXELS = 8192 * 8192


class ImageError(ValueError):
    """An image or mask cannot be decoded safely."""


def check_pixels(width: int, height: int, what: str) -> None:
    if width * height > MAX_IMAGE_PIXELS:
        raise ImageError(
            f"{what} is {width}x{height} ({width * height / 1e6:.0f} Mpx), over the "
            f"{MAX_IMAGE_PIXELS / 1e6:.0f} Mpx limit: downscale it"
        )


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


def mask_bbox(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """[x, y, w, h] of a bool mask's pixels (None when empty)."""
    ys = np.flatnonzero(mask.any(axis=1))
    if ys.size == 0:
        return None
    xs = np.flatnonzero(mask.any(axis=0))
    return int(xs[0]), int(ys[0]), int(xs[-1] - xs[0] + 1), int(ys[-1] - ys[0] + 1)


def encode_rle(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}


def _rle_counts(counts: str) -> list[int]:
    """COCO's compressed RLE string -> run lengths (pycocotools' rleFrString, with bounds checks)."""
    out: list[int] = []
    data = counts.encode("ascii", errors="replace")
    p = 0
    while p < len(data):
        x = k = 0
        more = True
        while more:
            if p >= len(data) or k > 6:
                raise ValueError("RLE counts are malformed (a run does not end): give pycocotools' output")
            c = data[p] - 48
            if not 0 <= c <= 63:
                raise ValueError(f"RLE counts hold the character {chr(data[p])!r}: give pycocotools' output")
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(out) > 2:
            x += out[-2]
        out.append(x)
    return out


def decode_rle(rle: Mapping[str, Any]) -> np.ndarray:
    """COCO RLE ``{size: [h, w], counts: str | [int, ...]}`` -> bool [h, w]. The size is bounded and the
    runs must add up to it before anything is allocated (pycocotools' decoder trusts both)."""
    size = rle.get("size")
    if (
        not isinstance(size, (list, tuple))
        or len(size) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)
    ):
        raise ValueError(f"RLE size {size!r} must be [height, width], two positive integers")
    h, w = size
    check_pixels(w, h, f"RLE of size {list(size)}")
    counts = rle.get("counts")
    if isinstance(counts, str):
        runs = _rle_counts(counts)
    elif isinstance(counts, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in counts):
        runs = list(counts)
    else:
        raise ValueError("RLE counts must be a string (compressed) or a list of integers")
    return mask_from_runs(np.asarray(runs, dtype=np.int64), h, w)


def mask_runs(mask: np.ndarray) -> np.ndarray:
    """bool [H, W] -> uint32 run lengths in column-major order, background first (COCO's uncompressed RLE)."""
    flat = mask.ravel(order="F")
    edges = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate([[0], edges, [flat.size]])
    runs = np.diff(bounds)
    if flat.size and flat[0]:
        runs = np.concatenate([[0], runs])
    return runs.astype(np.uint32)


def runs_cover(runs: np.ndarray, h: int, w: int) -> bool:
    """Whether run lengths (non-negative) cover exactly h x w pixels."""
    return not (runs < 0).any() and (int(runs.sum()) if runs.size else 0) == h * w


def mask_from_runs(runs: np.ndarray, h: int, w: int) -> np.ndarray:
    """Run lengths (as :func:`mask_runs`) -> bool [h, w], refused unless they cover exactly h x w pixels."""
    if not runs_cover(runs, h, w):
        total = int(runs.sum()) if runs.size else 0
        raise ValueError(f"RLE counts cover {total} pixels, its size {h}x{w} has {h * w}: the RLE is corrupt")
    values = (np.arange(len(runs)) % 2).astype(bool)
    return np.repeat(values, runs).reshape((h, w), order="F")
