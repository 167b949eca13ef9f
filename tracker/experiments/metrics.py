"""VOS metrics as the DAVIS 2017 benchmark defines them.

J (region similarity): IoU of predicted and ground-truth masks; both empty counts as 1.
F (contour accuracy): F-measure of boundary precision and recall. Boundaries are one pixel thick
  (DAVIS's ``seg2bmap``: a pixel is on the boundary when it differs from its right, lower or
  lower-right neighbour); a boundary pixel matches when the other boundary lies within a disc of
  radius ceil(0.008 * image diagonal). Empty prediction and empty truth: P = R = 1; only one of them
  empty: the other side's measure is 0.
Per object, over the frames of a sequence without the first and last annotated frame:
  Mean   = mean over frames;
  Recall = fraction of frames with value > 0.5;
  Decay  = mean of the first quarter minus mean of the last quarter (4 bins as DAVIS splits them).
Dataset and sequence scores average the per-object statistics; J&F-Mean = (J-Mean + F-Mean) / 2.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

BOUND_TH = 0.008


def iou(gt: np.ndarray, pred: np.ndarray) -> float:
    """J of two bool masks [H, W]."""
    union = np.logical_or(gt, pred).sum()
    if union == 0:
        return 1.0
    return float(np.logical_and(gt, pred).sum() / union)


def seg2bmap(seg: np.ndarray) -> np.ndarray:
    """One-pixel-wide boundary of a bool mask, as DAVIS computes it (same size as the mask)."""
    seg = seg.astype(bool)
    e = np.zeros_like(seg)
    s = np.zeros_like(seg)
    se = np.zeros_like(seg)
    e[:, :-1] = seg[:, 1:]
    s[:-1, :] = seg[1:, :]
    se[:-1, :-1] = seg[1:, 1:]
    b = seg ^ e | seg ^ s | seg ^ se
    b[-1, :] = seg[-1, :] ^ e[-1, :]
    b[:, -1] = seg[:, -1] ^ s[:, -1]
    b[-1, -1] = False
    return b


def _disk(radius: int) -> np.ndarray:
    """skimage.morphology.disk(radius): x^2 + y^2 <= r^2."""
    y, x = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    return (x * x + y * y <= radius * radius).astype(np.uint8)


def boundary_f(gt: np.ndarray, pred: np.ndarray, bound_th: float = BOUND_TH) -> float:
    """F of two bool masks [H, W] with the DAVIS tolerance."""
    h, w = gt.shape
    r = bound_th if bound_th >= 1 else int(math.ceil(bound_th * math.hypot(h, w)))
    gt_b, pr_b = seg2bmap(gt), seg2bmap(pred)
    n_gt, n_pr = int(gt_b.sum()), int(pr_b.sum())
    if n_gt == 0 and n_pr == 0:
        return 1.0
    if n_gt == 0 or n_pr == 0:
        return 0.0
    k = _disk(int(r))
    gt_dil = cv2.dilate(gt_b.astype(np.uint8), k).astype(bool)
    pr_dil = cv2.dilate(pr_b.astype(np.uint8), k).astype(bool)
    precision = float((pr_b & gt_dil).sum() / n_pr)
    recall = float((gt_b & pr_dil).sum() / n_gt)
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def decay(values: Sequence[float]) -> float:
    """DAVIS decay: mean of the first of 4 bins minus mean of the last."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return float("nan")
    ids = np.round(np.linspace(1, len(x), 5) + 1e-10) - 1
    ids = ids.astype(int)
    bins = [x[ids[i] : ids[i + 1] + 1] for i in range(4)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        return float(np.nanmean(bins[0]) - np.nanmean(bins[3]))


@dataclass(frozen=True)
class ObjectScores:
    """Per-frame J and F of one object of one sequence (first and last annotated frame excluded)."""

    sequence: str
    object_id: int
    j: tuple[float, ...]
    f: tuple[float, ...]

    def stats(self) -> dict[str, float]:
        j, f = np.asarray(self.j), np.asarray(self.f)
        return {
            "J-Mean": float(j.mean()) if j.size else float("nan"),
            "J-Recall": float((j > 0.5).mean()) if j.size else float("nan"),
            "J-Decay": decay(j),
            "F-Mean": float(f.mean()) if f.size else float("nan"),
            "F-Recall": float((f > 0.5).mean()) if f.size else float("nan"),
            "F-Decay": decay(f),
        }


def score_sequence(name: str, gt: Sequence[np.ndarray], pred: Sequence[np.ndarray]) -> list[ObjectScores]:
    """gt, pred: label maps uint8 [H, W] per annotated frame (pixel = object id). Objects are those in gt."""
    ids = sorted({int(v) for g in gt for v in np.unique(g)} - {0})
    inner = range(1, len(gt) - 1) if len(gt) > 2 else range(len(gt))
    out = []
    for oid in ids:
        js, fs = [], []
        for t in inner:
            g, p = gt[t] == oid, pred[t] == oid
            js.append(iou(g, p))
            fs.append(boundary_f(g, p))
        out.append(ObjectScores(name, oid, tuple(js), tuple(fs)))
    return out


METRICS = ("J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay")


def summarize(objects: Sequence[ObjectScores]) -> dict[str, float | None]:
    """Average the per-object statistics (DAVIS averages objects, not sequences). A statistic with no
    value (no objects in the ground truth, or too few frames for a decay) is None ("n/a"), never NaN."""
    if not objects:
        return {m: None for m in METRICS}
    per = [o.stats() for o in objects]
    res: dict[str, float | None] = {}
    for k in per[0]:
        vals = np.asarray([p[k] for p in per], dtype=np.float64)
        vals = vals[np.isfinite(vals)]
        res[k] = float(vals.mean()) if vals.size else None
    j, f = res["J-Mean"], res["F-Mean"]
    res["J&F-Mean"] = (j + f) / 2 if j is not None and f is not None else None
    return {m: res[m] for m in METRICS}
