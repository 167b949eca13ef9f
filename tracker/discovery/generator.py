"""Automatic mask generation (SAM's "everything" mode) with the loaded SAM 2 video model, no torchvision.

A grid of point prompts goes through SAM 2's prompt encoder and mask decoder in batches, on one frame's
image features computed once (the prompt-frame path: no memory, ``no_mem_embed`` added, as upstream's
image predictor does). Each prompt gives one mask, or three when SAM 2 answers a single point with its
multimask outputs. Masks are kept when their predicted IoU and stability score pass the thresholds and
their area lies within bounds; overlapping masks are then suppressed greedily (box or mask IoU), best
predicted IoU first.

Everything is decided on the decoder's low-resolution logits (float32 [N, S/4, S/4], S = the model's
input size): SAM's generator upsamples every mask to the image first, which costs more than the decoder
on a large frame. Only the kept masks are upsampled, by :func:`tracker.masks.to_video_masks`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from ..masks import box_iou_matrix, mask_boxes, to_video_masks


@dataclass(frozen=True)
class GeneratorSettings:
    """SAM 2's ``SAM2AutomaticMaskGenerator`` defaults, plus the area bounds and point clusters."""

    points_per_side: int = 32
    points_per_batch: int = 64
    points_per_prompt: int = 1  # >1: a small cluster of positive points around each grid point
    cluster_radius: float = 0.02  # of the frame's size: the cluster's radius
    pred_iou_thresh: float = 0.8
    stability_score_thresh: float = 0.95
    stability_score_offset: float = 1.0
    mask_threshold: float = 0.0
    nms: str = "box"  # box | mask
    nms_iou: float = 0.7
    min_area: float = 0.0005  # of the frame: drops specks
    max_area: float = 0.9  # of the frame: drops "the whole background"
    max_masks: int = 100

    def __post_init__(self) -> None:
        checks = [
            ("points_per_side", self.points_per_side >= 1, "an integer >= 1"),
            ("points_per_batch", self.points_per_batch >= 1, "an integer >= 1"),
            ("points_per_prompt", self.points_per_prompt >= 1, "an integer >= 1"),
            ("cluster_radius", 0.0 <= self.cluster_radius < 0.5, "in [0, 0.5)"),
            ("pred_iou_thresh", 0.0 <= self.pred_iou_thresh <= 1.0, "in [0, 1]"),
            ("stability_score_thresh", 0.0 <= self.stability_score_thresh <= 1.0, "in [0, 1]"),
            ("stability_score_offset", self.stability_score_offset >= 0.0, ">= 0"),
            ("nms", self.nms in ("box", "mask"), "box or mask"),
            ("nms_iou", 0.0 < self.nms_iou <= 1.0, "in (0, 1]"),
            ("min_area", 0.0 <= self.min_area <= 1.0, "in [0, 1]"),
            ("max_area", self.min_area < self.max_area <= 1.0, "in (min_area, 1]"),
            ("max_masks", self.max_masks >= 1, "an integer >= 1"),
        ]
        for name, ok, what in checks:
            if not ok:
                raise ValueError(f"{name}={getattr(self, name)!r} must be {what}")


@dataclass(frozen=True)
class Candidate:
    """One generated mask: ``low`` float32 [S/4, S/4] logits; ``box`` x0, y0, x1, y1 on that grid
    (exclusive ends); ``pred_iou`` and ``stability`` as SAM 2 scores them."""

    low: np.ndarray
    box: tuple[int, int, int, int]
    pred_iou: float
    stability: float

    @property
    def binary(self) -> np.ndarray:
        return self.low > 0

    def video_mask(self, video_size: tuple[int, int]) -> np.ndarray:
        """bool [H, W] at the video's resolution."""
        return to_video_masks(self.low[None], video_size)[0]


def point_grid(points_per_side: int, points_per_prompt: int = 1, radius: float = 0.02) -> np.ndarray:
    """float32 [N, K, 2] point prompts as fractions (x, y) of the frame: N = points_per_side², each the
    centre of a grid cell, or K points on a circle of ``radius`` around it (K = points_per_prompt > 1)."""
    g = (np.arange(points_per_side) + 0.5) / points_per_side
    xx, yy = np.meshgrid(g, g)
    centres = np.stack([xx.ravel(), yy.ravel()], axis=1)[:, None, :]
    if points_per_prompt == 1:
        return centres.astype(np.float32)
    ang = np.pi / 2 + 2 * np.pi * np.arange(points_per_prompt) / points_per_prompt
    ring = np.stack([np.cos(ang), np.sin(ang)], axis=1) * radius
    return np.clip(centres + ring[None], 0.0, 1.0).astype(np.float32)


def stability_score(logits: torch.Tensor, threshold: float, offset: float) -> torch.Tensor:
    """SAM's stability: IoU of the masks thresholded at ``threshold + offset`` and ``threshold - offset``.
    logits [N, h, w] -> [N]."""
    inter = (logits > threshold + offset).flatten(1).sum(1).float()
    union = (logits > threshold - offset).flatten(1).sum(1).float()
    return torch.where(union > 0, inter / union.clamp(min=1), torch.zeros_like(union))


def mask_iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of bool masks [N, h, w] x [M, h, w] -> [N, M] (one matrix product)."""
    fa = a.reshape(len(a), -1).astype(np.float32)
    fb = b.reshape(len(b), -1).astype(np.float32)
    inter = fa @ fb.T
    union = fa.sum(1)[:, None] + fb.sum(1)[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def nms(iou: np.ndarray, scores: np.ndarray, threshold: float) -> list[int]:
    """Greedy non-maximum suppression on a pairwise IoU matrix: indices kept, best score first; an item
    is dropped when its IoU with a kept one exceeds ``threshold``."""
    keep: list[int] = []
    suppressed = np.zeros(len(scores), dtype=bool)
    for i in np.argsort(-scores, kind="stable"):
        if suppressed[i]:
            continue
        keep.append(int(i))
        suppressed |= iou[i] > threshold
    return keep


class MaskGenerator:
    """Masks of "everything" on a frame, from a :class:`tracker.engine.sam.SamModel`'s features."""

    def __init__(self, model, settings: GeneratorSettings) -> None:
        self.model, self.settings = model, settings
        s = settings
        self._grid = point_grid(s.points_per_side, s.points_per_prompt, s.cluster_radius)
        self.multimask = model.multimask_for(s.points_per_prompt)

    def prompts(self, skip: np.ndarray | None = None) -> np.ndarray:
        """The grid's point prompts, float32 [N, K, 2] as fractions of the frame, without those whose grid
        point lies on ``skip`` (bool [g, g], e.g. what is tracked already: such a prompt finds that object)."""
        if skip is None or not skip.any():
            return self._grid
        g = skip.shape[0]
        centres = self._grid.mean(axis=1)
        cells = np.clip((centres * g).astype(int), 0, g - 1)
        return self._grid[~skip[cells[:, 1], cells[:, 0]]]

    def decode(self, feats, prompts: np.ndarray | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Point prompts (default: the whole grid) through SAM 2's prompt encoder and mask decoder: (low-res
        logits float32 [N, h, w], predicted IoU float32 [N]), N = prompts x (3 if multimask else 1)."""
        points = self._grid if prompts is None else prompts
        return self.model.decode_points(feats, points, self.settings.points_per_batch, self.multimask)

    def filter(self, logits: torch.Tensor, pred_iou: torch.Tensor) -> list[Candidate]:
        """Thresholds, area bounds and NMS on decoded masks (see the module docstring)."""
        s = self.settings
        stab = stability_score(logits, s.mask_threshold, s.stability_score_offset)
        binary = logits > s.mask_threshold
        area = binary.flatten(1).float().mean(1)
        ok = (pred_iou > s.pred_iou_thresh) & (stab >= s.stability_score_thresh)
        ok &= (area >= s.min_area) & (area <= s.max_area)
        idx = torch.nonzero(ok).flatten()
        if len(idx) == 0:
            return []
        low = logits[idx].cpu().numpy()
        masks = binary[idx].cpu().numpy()
        scores = pred_iou[idx].cpu().numpy()
        stabs = stab[idx].cpu().numpy()
        boxes = mask_boxes(masks)
        iou = box_iou_matrix(boxes, boxes) if s.nms == "box" else mask_iou_matrix(masks, masks)
        keep = nms(iou, scores, s.nms_iou)[: s.max_masks]
        return [
            Candidate(low[i], tuple(int(v) for v in boxes[i]), float(scores[i]), float(stabs[i]))  # type: ignore[arg-type]
            for i in keep
        ]

    def generate(self, feats, skip: np.ndarray | None = None) -> list[Candidate]:
        """Candidates on one frame, best predicted IoU first; ``skip`` as in :meth:`prompts`."""
        t0 = time.perf_counter()
        prompts = self.prompts(skip)
        out = self.filter(*self.decode(feats, prompts)) if len(prompts) else []
        self.model.seconds += time.perf_counter() - t0  # counted as model time in run.json
        return out
