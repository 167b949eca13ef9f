"""Presence: when SAM 2's own mask is the object, whatever the motion model predicted.

SAM 2 is right most of the time; a motion model is right on straight lines. An object that turns, bounces,
grows or moves with the camera leaves its prediction while SAM 2 keeps it, so SAM 2's mask is taken when it
*continues* what was shown last: it overlaps the last shown box (the camera's motion taken out) and has
about the size shown last. Only a mask that jumps, to another place or another size, is weighed against
the prediction (``gated``'s rule)."""

from __future__ import annotations

import numpy as np

from ...motion import box_iou

CONTINUITY = 0.25  # the last shown box grown by this many object sizes: SAM 2's mask overlapping it continues
STEP = 2.0  # and its area within this factor of the area shown last (a jump onto something else changes it)
SMALL = 7.0  # an object under this many low-res pixels a side: SAM 2's mask is shown (box IoU is quantised there:
#             a one-pixel shift of a 5-pixel box moves it by 0.3, so a gate on it refuses the object itself)
CROSSED = 0.3  # SAM 2's masks for two objects whose boxes overlap this much (IoU): one passed in front of the
#                other, and SAM 2 may come out of it on either: motion decides (two that only touch, bouncing
#                off each other, keep apart, and SAM 2 follows each)
CROSSED_FRAMES = 10  # for this many frames after the last such frame
STAY = 0.8  # SAM 2's confident mask whose box overlaps the box shown last this much (IoU) stays where the object
#            was: shown even next to another object, where motion otherwise decides (a filter coasting while
#            the two are close runs on past an object that stopped)
STAY_STEP = 1.0  # measured after the last shown box moved on by up to this many low-res pixels per axis the way the
#                 object was going: a one-pixel step of a 10-pixel box is box IoU 0.72 (standard tuning sets 97 and
#                 107: objects walking by another refused for a frame); never against its motion, where SAM 2's
#                 mask stepping back is the other object of a swap (crossing s0 clip 2)
STAY_MARGIN = 0.3  # unless another object's box overlaps it within this much of that: a swap may hide there
WHOLE = 0.7  # only from a mask of at least this share of the object's size: a chain of slivers along an
#              occluder's edge leads to whatever comes out of it, not to the object that went behind it


def about_the_size(area: float, last_area: float) -> bool:
    """Whether ``area`` is within :data:`STEP` of the area shown last (a jump onto something else changes it)."""
    return bool(1 / STEP <= area / max(last_area, 1.0) <= STEP)


def continues(last_box: np.ndarray, last_area: float, box: np.ndarray, area: float, size: float, grow: float) -> bool:
    """Whether a part (``box`` [4], ``area`` pixels) continues what was shown last (``last_box``,
    ``last_area``) for an object of side ``size``; ``grow``: the last box is grown by this many sizes."""
    if not about_the_size(area, last_area):
        return False
    grown = last_box + np.array([-1, -1, 1, 1]) * grow * size
    return bool(box_iou(grown[None], box[None])[0] > 0)


def touching(box: np.ndarray, others: np.ndarray) -> bool:
    """Whether ``box`` [4] overlaps any of ``others`` [K, 4]: two objects that touch may swap under SAM 2
    (one passes in front of the other); two that are merely near do not."""
    if not len(others):
        return False
    return bool((box_iou(np.repeat(box[None], len(others), axis=0), others) > 0).any())


def stays(
    last_box: np.ndarray,
    last_area: float,
    box: np.ndarray,
    area: float,
    others: np.ndarray,
    heading: np.ndarray,
    on_screen: np.ndarray | None = None,
) -> bool:
    """Whether a part (``box`` [4], ``area`` pixels) is where the object was shown last (``last_box``,
    ``last_area``), moved on by up to :data:`STAY_STEP` per axis along its velocity ``heading`` [2], or, on the
    screen (``on_screen``: the last box where it was shown, the camera's motion not taken out), grown or shrunk
    in place by up to that on each side: box IoU at least :data:`STAY`, an area within :data:`STEP` of the
    last, and the boxes of ``others`` [K, 4] (the other objects) overlapping it at least :data:`STAY_MARGIN`
    less."""
    if not about_the_size(area, last_area):
        return False
    b = np.asarray(box, dtype=np.float64)
    last = np.asarray(last_box, dtype=np.float64)
    step = np.clip((b[:2] + b[2:]) / 2 - (last[:2] + last[2:]) / 2, -STAY_STEP, STAY_STEP)
    step = np.where(step * np.asarray(heading, dtype=np.float64) > 0, step, 0.0)
    here = float(box_iou((last + np.concatenate([step, step]))[None], b[None])[0])
    if on_screen is not None and in_place(screen := np.asarray(on_screen, dtype=np.float64), b):
        here = max(here, STAY, float(box_iou(screen[None], b[None])[0]))
    there = box_iou(others, np.repeat(b[None], len(others), axis=0)).max(initial=0.0) if len(others) else 0.0
    return here >= STAY and there <= here - STAY_MARGIN


def in_place(last: np.ndarray, box: np.ndarray) -> bool:
    """Whether ``box`` [4] holds ``last`` [4] or lies in it, no side more than :data:`STAY_STEP` away: grown or
    shrunk by a pixel where it stood (a shape turning; a quantised edge), not a step."""
    d = np.round(box - last, 1)  # (to a tenth of a pixel: ``last`` was moved and zoomed with the camera)
    holds, inside = (d[:2] <= 0).all() and (d[2:] >= 0).all(), (d[:2] >= 0).all() and (d[2:] <= 0).all()
    return bool((holds or inside) and (np.abs(d) <= STAY_STEP).all())


def behind_another(box: np.ndarray, alike: np.ndarray, other: np.ndarray) -> bool:
    """Whether SAM 2's mask (``box`` [4]) of an object close to both a look-alike and a different-looking
    object (their predicted boxes ``alike`` [K, 4], ``other`` [L, 4]) meets a different-looking one's and no
    look-alike's: what is left of an object behind another that SAM 2 tells apart from it, with no swap to
    hide in it (a mask reaching onto a look-alike is still motion's to judge)."""
    return touching(box, other) and not touching(box, alike)


def goes_out(last_box: np.ndarray, last_area: float, box: np.ndarray, area: float) -> bool:
    """Whether a part (``box`` [4], ``area`` pixels) at the frame's border is what is left of an object shown
    last cut by it (``last_box``, ``last_area``): it overlaps the last box and is no larger, in pixels or in
    extent (going out, an object shrinks to a sliver; something coming in there grows; a thin line reaching
    from the sliver across to another object is that object's)."""
    last, b = np.asarray(last_box, dtype=np.float64), np.asarray(box, dtype=np.float64)
    wider = ((b[2:] - b[:2]) > (last[2:] - last[:2]) + 2 * STAY_STEP).any()
    return area <= last_area and not wider and touching(b, last[None])
