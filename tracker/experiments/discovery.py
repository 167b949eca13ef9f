"""Scoring runs that find their own objects (prompts=auto, discover.every), against ground truth whose ids
they cannot know: which ground-truth objects some tracked id follows, and which tracked ids follow nothing.

- An object is *recovered* when one tracked id's mean IoU with it, over the frames where the object is
  visible, is at least ``recovered_iou`` (frames before the id joined count as empty masks).
- A tracked id is *spurious* when, for every object, its mean IoU with that object over the frames from
  its join on where either of them is visible is below ``spurious_iou``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils


def read_tracks(masks_jsonl: Path) -> tuple[int, dict[int, dict[int, np.ndarray]]]:
    """``masks.jsonl`` -> (frame count, {object id: {frame: bool mask [H, W]}}), frames where the object
    is listed (from the frame it joined on)."""
    tracks: dict[int, dict[int, np.ndarray]] = {}
    n = 0
    with open(masks_jsonl) as f:
        for line in f:
            rec = json.loads(line)
            n += 1
            for o in rec["objects"]:
                rle = {"size": o["rle"]["size"], "counts": o["rle"]["counts"].encode("ascii")}
                tracks.setdefault(int(o["id"]), {})[int(rec["frame"])] = mask_utils.decode(rle).astype(bool)
    return n, tracks


def _iou(a: np.ndarray | None, b: np.ndarray) -> float:
    if a is None:
        return 0.0
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def score_discovery(
    gt: Sequence[np.ndarray],
    tracks: dict[int, dict[int, np.ndarray]],
    recovered_iou: float = 0.5,
    spurious_iou: float = 0.3,
) -> dict:
    """gt: label maps uint8 [H, W] per frame (0 = background). Returns per-sequence counts and matches."""
    ids = sorted({int(v) for g in gt for v in np.unique(g)} - {0})
    recovered = {}
    for k in ids:
        visible = [t for t, g in enumerate(gt) if (g == k).any()]
        best = max(
            (float(np.mean([_iou(frames.get(t), gt[t] == k) for t in visible])) for frames in tracks.values()),
            default=0.0,
        )
        recovered[k] = round(best, 4)
    spurious = {}
    for oid, frames in tracks.items():
        best = 0.0
        for k in ids:
            ts = [t for t, m in frames.items() if m.any() or (gt[t] == k).any()]
            if ts:
                best = max(best, float(np.mean([_iou(frames[t], gt[t] == k) for t in ts])))
        spurious[oid] = round(best, 4)
    return {
        "objects": len(ids),
        "recovered": sum(v >= recovered_iou for v in recovered.values()),
        "tracks": len(tracks),
        "spurious": sum(v < spurious_iou for v in spurious.values()),
        "best_iou_per_object": {str(k): v for k, v in recovered.items()},
        "best_iou_per_track": {str(k): v for k, v in spurious.items()},
    }
