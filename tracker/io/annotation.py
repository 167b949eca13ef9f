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


def _extent(m: np.ndarray) -> tuple[int, int, int, int] | None:
    """(y0, y1, x0, x1) of a bool [H, W] mask's pixels (None: empty)."""
    rows = np.flatnonzero(m.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(m.any(axis=0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


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
    boxes = [_extent(m) for m in masks.masks]
    drawn = [b for b in boxes if b is not None]
    if not drawn:
        return out
    # One blend for all objects, inside the box around them (whole-frame float maths is the slow part at
    # 4K); where masks overlap, the later object's colour shows.
    y0, y1 = min(b[0] for b in drawn), max(b[1] for b in drawn)
    x0, x1 = min(b[2] for b in drawn), max(b[3] for b in drawn)
    full = masks.label_image()
    label = np.ascontiguousarray(full[y0:y1, x0:x1])
    if full.dtype == np.uint8:  # OpenCV's table lookup and masked copy: 10x NumPy's fancy indexing
        lut = np.zeros((256, 1, 3), dtype=np.uint8)
        lut[1 : len(masks.object_ids) + 1, 0] = [color_of(oid) for oid in masks.object_ids]
        tinted = cv2.LUT(cv2.merge([label, label, label]), lut)
    else:
        tinted = np.array([(0, 0, 0), *(color_of(oid) for oid in masks.object_ids)], dtype=np.uint8)[label]
    crop = np.ascontiguousarray(out[y0:y1, x0:x1])
    blended = cv2.addWeighted(tinted, alpha, crop, 1 - alpha, 0)
    out[y0:y1, x0:x1] = cv2.copyTo(blended, (label > 0).view(np.uint8), crop)
    for oid, m, box in zip(masks.object_ids, masks.masks, boxes):
        if box is None:
            continue
        by0, by1, bx0, bx1 = box
        if contour <= 0 and not text:
            continue
        cs, _ = cv2.findContours(
            m[by0:by1, bx0:bx1].astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE, offset=(bx0, by0)
        )
        if contour > 0:
            cv2.drawContours(out, cs, -1, color_of(oid), contour)
        if text:
            name = labels.get(oid)
            caption = f"{oid}" if not name else f"{oid} {name}"
            # Above the largest part: the box of all the mask's pixels can put a fragmented mask's label far
            # from the object (a speck across the frame).
            px, py, _, _ = cv2.boundingRect(max(cs, key=lambda c: (cv2.contourArea(c), len(c))))
            org = (px, max(py - 4, 12))
            cv2.putText(out, caption, org, cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 3, cv2.LINE_AA)
            cv2.putText(out, caption, org, cv2.FONT_HERSHEY_SIMPLEX, 0.45, color_of(oid), 1, cv2.LINE_AA)
    return out
