"""Annotation: draw masks on a frame. Pure functions: a new frame comes back, the input is untouched."""

from __future__ import annotations

from collections.abc import Mapping

import cv2
import numpy as np

from .records import FrameMasks


def color_of(object_id: int) -> tuple[int, int, int]:
    """A vivid RGB colour that depends only on the id (golden-ratio hue steps)."""
    hue = int((object_id * 0.618033988749895 % 1.0) * 180)
    hsv = np.uint8([[[hue, 200, 255]]])
    r, g, b = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0]
    return int(r), int(g), int(b)


def annotate(
    frame: np.ndarray,
    masks: FrameMasks,
    labels: Mapping[int, str | None] | None = None,
    alpha: float = 0.45,
    contour: int = 2,
    text: bool = True,
) -> np.ndarray:
    """frame uint8 [H, W, 3] RGB + masks -> annotated copy: colour fill, contour, id/label text."""
    out = frame.copy()
    h, w = frame.shape[:2]
    if masks.masks.shape[1:] != (h, w):
        raise ValueError(f"masks are {masks.masks.shape[2]}x{masks.masks.shape[1]} but the frame is {w}x{h}")
    for oid, m in zip(masks.object_ids, masks.masks):
        if not m.any():
            continue
        c = np.array(color_of(oid), dtype=np.float32)
        out[m] = (out[m].astype(np.float32) * (1 - alpha) + c * alpha).astype(np.uint8)
        if contour > 0:
            cs, _ = cv2.findContours(m.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            cv2.drawContours(out, cs, -1, color_of(oid), contour)
        if text:
            ys, xs = np.nonzero(m)
            name = (labels or {}).get(oid)
            caption = f"{oid}" if not name else f"{oid} {name}"
            org = (int(xs.min()), max(int(ys.min()) - 4, 12))
            cv2.putText(out, caption, org, cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 3, cv2.LINE_AA)
            cv2.putText(out, caption, org, cv2.FONT_HERSHEY_SIMPLEX, 0.45, color_of(oid), 1, cv2.LINE_AA)
    return out
