"""Annotation: draw masks on a frame. Pure functions: a new frame comes back, the input is untouched."""

from __future__ import annotations

from collections.abc import Mapping

import cv2
import numpy as np

from ..records import FrameMasks


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
    """frame uint8 [H, W, 3] RGB + masks -> annotated copy: colour fill, contour, id/label text (``labels``:
    id -> name; default the objects' own labels)."""
    out = frame.copy()
    labels = masks.label_map() if labels is None else labels
    h, w = frame.shape[:2]
    if masks.masks.shape[1:] != (h, w):
        raise ValueError(f"masks are {masks.masks.shape[2]}x{masks.masks.shape[1]} but the frame is {w}x{h}")
    for oid, m in zip(masks.object_ids, masks.masks):
        rows = np.flatnonzero(m.any(axis=1))
        if rows.size == 0:
            continue
        cols = np.flatnonzero(m.any(axis=0))
        y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
        # Blend only inside the mask's bounding box: whole-frame float maths is the slow part at 4K.
        crop, mc = out[y0:y1, x0:x1], m[y0:y1, x0:x1]
        tinted = crop.copy()
        tinted[mc] = color_of(oid)
        cv2.addWeighted(tinted, alpha, crop, 1 - alpha, 0, dst=crop)
        if contour > 0:
            cs, _ = cv2.findContours(
                mc.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE, offset=(int(x0), int(y0))
            )
            cv2.drawContours(out, cs, -1, color_of(oid), contour)
        if text:
            name = labels.get(oid)
            caption = f"{oid}" if not name else f"{oid} {name}"
            org = (int(x0), max(int(y0) - 4, 12))
            cv2.putText(out, caption, org, cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 3, cv2.LINE_AA)
            cv2.putText(out, caption, org, cv2.FONT_HERSHEY_SIMPLEX, 0.45, color_of(oid), 1, cv2.LINE_AA)
    return out
