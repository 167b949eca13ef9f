"""Recovery: where a lost object may be taken back, the motion model a prior that weakens with time.

``gated`` takes a hidden object back only ahead on its line of motion (or at the border it left by). That is
right for a look-alike coming out of an occluder and wrong for an object that turned while hidden or was
only missed for a moment. Here, besides: an object *missed* while whole in view (not gone behind something)
is taken back near where it was shown last, in a radius growing with the frames missed; and an object lost
for ``forget`` frames may come back anywhere in view, except on a look-alike followed meanwhile
(:mod:`.lookalikes`)."""

from __future__ import annotations

import numpy as np

NEAR = 0.5  # a missed object is taken back within this many sizes of where it was shown last
NEAR_GROWTH = 0.1  # plus this many per frame missed
MISS_FRAMES = 15  # for this many frames; then only its line of motion, or anywhere after FORGET
FORGET = 60  # lost this long, the motion model says nothing more: anywhere in view (the look-alike family
#              hides its target 20-60 frames with a look-alike in view; real absences last longer)
HIDDEN = 0.7  # last shown at under this share of its size: it went behind something, it was not missed


def near_where_seen(centre: np.ndarray, box: np.ndarray, size: float, lost: int, near: float, growth: float) -> bool:
    """Whether a part with ``box`` [4] is within ``near + growth * lost`` sizes of ``centre`` [2]."""
    d = np.hypot((box[0] + box[2]) / 2 - centre[0], (box[1] + box[3]) / 2 - centre[1])
    return bool(d <= size * (near + growth * lost))
