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

Long-term figures (VOTS, votchallenge toolkit ``vot/analysis/longterm.py``), per object over every annotated
frame after its first: T visible and IoU > 0; F visible, prediction non-empty, IoU = 0; M visible,
prediction empty; H absent, prediction non-empty; N absent, prediction empty. Robustness T/(T+F+M),
NRE (not-reported error) M/(T+F+M), DRE (drift-rate error) F/(T+F+M), ADQ (absence detection quality)
N/(N+H), only for objects absent on more than 10 frames. J&F-Reappear: J&F over the first 20 frames
after each re-appearance (after an absence of at least 5 frames). ID-Switches (per object, summed over a
sequence's objects in its row): how often the predicted id that covers the object (IoU >= 0.5) changes.
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


REAPPEAR_GAP = 5  # frames of absence after which an appearance counts as a re-appearance
REAPPEAR_SPAN = 20  # frames after a re-appearance that J&F-Reappear averages
ADQ_MIN_ABSENT = 10  # ADQ only for objects absent on more frames than this


@dataclass(frozen=True)
class ObjectScores:
    """Per-frame J and F of one object of one sequence (first and last annotated frame excluded), and its
    long-term figures: ``presence`` (T, F, M, H, N) frame counts, ``reappear`` the J&F of frames after its
    re-appearances, ``switches`` its identity switches."""

    sequence: str
    object_id: int
    j: tuple[float, ...]
    f: tuple[float, ...]
    presence: tuple[int, int, int, int, int] = (0, 0, 0, 0, 0)
    reappear: tuple[float, ...] = ()
    switches: int = 0

    def stats(self) -> dict[str, float]:
        j, f = np.asarray(self.j), np.asarray(self.f)
        t, fa, m, h, n = self.presence
        visible = t + fa + m
        nan = float("nan")
        return {
            "J-Mean": float(j.mean()) if j.size else nan,
            "J-Recall": float((j > 0.5).mean()) if j.size else nan,
            "J-Decay": decay(j),
            "F-Mean": float(f.mean()) if f.size else nan,
            "F-Recall": float((f > 0.5).mean()) if f.size else nan,
            "F-Decay": decay(f),
            "Robustness": t / visible if visible else nan,
            "NRE": m / visible if visible else nan,
            "DRE": fa / visible if visible else nan,
            "ADQ": n / (n + h) if n + h > ADQ_MIN_ABSENT else nan,
            "J&F-Reappear": float(np.mean(self.reappear)) if self.reappear else nan,
        }


def longterm(
    gt: Sequence[np.ndarray], pred: Sequence[np.ndarray], oid: int
) -> tuple[tuple[int, int, int, int, int], tuple[float, ...], int]:
    """Object ``oid``'s (T, F, M, H, N) counts, J&F values after re-appearances and identity switches over
    label maps uint8 [H, W] per annotated frame; the first frame (its prompt) is not counted."""
    counts = [0, 0, 0, 0, 0]
    reappear: list[float] = []
    switches, matched, absent_run, seen, since = 0, None, 0, False, None
    for k in range(len(gt)):
        g, p = gt[k] == oid, pred[k] == oid
        visible, reported = bool(g.any()), bool(p.any())
        if visible:
            if seen and absent_run >= REAPPEAR_GAP:
                since = 0
            seen = True
            absent_run = 0
        else:
            absent_run += 1
        if k == 0:
            continue
        j = iou(g, p)
        if visible:
            counts[0 if j > 0 else (1 if reported else 2)] += 1
            if since is not None and since < REAPPEAR_SPAN:
                reappear.append((j + boundary_f(g, p)) / 2)
            owner = _covering_id(g, pred[k])
            if owner is not None:
                switches += matched is not None and owner != matched
                matched = owner
        else:
            counts[3 if reported else 4] += 1
        if since is not None:
            since += 1
    return (counts[0], counts[1], counts[2], counts[3], counts[4]), tuple(reappear), switches


def _covering_id(g: np.ndarray, pred: np.ndarray) -> int | None:
    """The predicted id whose mask has IoU >= 0.5 with ``g`` (at most one can), or None."""
    inter = np.bincount(pred[g].ravel(), minlength=256)
    inter[0] = 0
    best = int(inter.argmax())
    if inter[best] == 0:
        return None
    union = int(g.sum()) + int((pred == best).sum()) - int(inter[best])
    return best if inter[best] / union >= 0.5 else None


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
        out.append(ObjectScores(name, oid, tuple(js), tuple(fs), *longterm(gt, pred, oid)))
    return out


METRICS = ("J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay")
LONGTERM = ("Robustness", "NRE", "DRE", "ADQ", "J&F-Reappear", "ID-Switches")


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


def summarize_longterm(objects: Sequence[ObjectScores]) -> dict[str, float | None]:
    """The long-term figures averaged over objects (None where no object has one); ID-Switches summed."""
    if not objects:
        return {m: None for m in LONGTERM}
    per = [o.stats() for o in objects]
    res: dict[str, float | None] = {}
    for k in LONGTERM[:-1]:
        vals = np.asarray([p[k] for p in per], dtype=np.float64)
        vals = vals[np.isfinite(vals)]
        res[k] = float(vals.mean()) if vals.size else None
    res["ID-Switches"] = float(sum(o.switches for o in objects))
    return res
