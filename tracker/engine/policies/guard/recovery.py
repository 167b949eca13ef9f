"""Recovery: where a lost object may be taken back, the motion model a prior that weakens with time.

``gated`` takes a hidden object back only ahead on its line of motion (or at the border it left by). That is
right for a look-alike coming out of an occluder and wrong for an object that turned while hidden or was
only missed for a moment. Here, besides: an object *missed* while whole in view (not gone behind something)
is taken back near where it was shown last, in a radius growing with the frames missed; and an object lost
for ``forget`` frames may come back anywhere in view, except on a look-alike followed meanwhile
(:mod:`.lookalikes`). An object that went behind something may also come back on its line through where it
was last shown *on the screen*, either way along it: a camera that follows its subject keeps it in place on
the screen while the world (the occluder with it) moves, so the camera-compensated place is then wrong; and
an object may turn back behind the occluder and come out the side it went in. A look-alike coming out of the
same occluder off that line is still refused."""

from __future__ import annotations

import numpy as np

from ..base import line_offset

NEAR = 0.5  # a missed object is taken back within this many sizes of where it was shown last
NEAR_GROWTH = 0.1  # plus this many per frame missed
MISS_FRAMES = 15  # for this many frames; then only its line of motion, or anywhere after FORGET
FORGET = 60  # lost this long, the motion model says nothing more: anywhere in view (the look-alike family
#              hides its target 20-60 frames with a look-alike in view; real absences last longer)
REACH = 3.0  # on its line, this many sizes either way beyond the distance it could have moved while hidden
ON_ANOTHER = 0.5  # a part for a lost object whose box overlaps another object's this much (IoU) is that one's
#                  (gated's rule for where a lost object is taken back, here for a retry's find and SAM 2's masks)
SURER = 1.0  # of two lost objects SAM 2 finds in one place, one whose object score (logit) is higher by this
#             comes back there, not the other (a clear margin: SAM 2's scores for look-alikes differ by less)
HIDDEN = 0.7  # last shown at under this share of its size: it went behind something, it was not missed


def near_where_seen(centre: np.ndarray, box: np.ndarray, size: float, lost: int, near: float, growth: float) -> bool:
    """Whether a part with ``box`` [4] is within ``near + growth * lost`` sizes of ``centre`` [2]."""
    d = np.hypot((box[0] + box[2]) / 2 - centre[0], (box[1] + box[3]) / 2 - centre[1])
    return bool(d <= size * (near + growth * lost))


def on_its_line(centre: np.ndarray, velocity: np.ndarray, box: np.ndarray, size: float, lost: int, lane: float) -> bool:
    """Whether a part with ``box`` [4] lies on the line of motion through ``centre`` [2] (direction of
    ``velocity`` [2], pixels per frame), ahead or back: within ``lane`` sizes across it and ``speed * lost +
    REACH`` sizes along it. A still object (under 0.02 sizes a frame): within 1.5 sizes of ``centre``."""
    distance, along, across = line_offset(centre, velocity, box)
    speed = float(np.hypot(velocity[0], velocity[1]))
    if speed < 0.02 * size:
        return distance <= 1.5 * size
    return across <= lane * size and abs(along) <= speed * lost + REACH * size
