"""Long synthetic videos where SAM 2's memory is known to fail, with exact ground truth (absences included).

Families (each sequence seeded; 100-600 frames; DAVIS layout, every frame annotated, an object absent from
a frame has no pixel in its label map):

- ``lookalike``: the target hides behind an occluder; while it is hidden a look-alike (same shape and
  colour, not a tracked object) comes out near it and wanders off; the target comes back out.
- ``crossing``: two same-looking tracked objects cross, once in the open and once behind an occluder.
- ``reentry``: the target leaves the frame and comes back in at another side, while a look-alike stays in
  view the whole time.
- ``occlusion``: a long full occlusion (a large occluder over a slow target) with nothing else to confuse.
- ``mixed``: a look-alike hiding, a crossing pair and an exit in one video.

Occluders are grey bars drawn in front of everything; look-alikes are drawn like the objects they copy but
are background in the ground truth. Objects move on straight segments between waypoints.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..io.sinks import davis_palette
from .synthetic import write_sequence, write_split

FAMILIES = ("lookalike", "crossing", "reentry", "occlusion", "mixed")
_COLORS = ((230, 50, 50), (50, 200, 60), (60, 90, 240), (240, 220, 40), (200, 60, 220), (40, 220, 220))


@dataclass
class _Mover:
    """A disc or square on straight segments between waypoints (frame, x, y); ``tracked``: its id, or 0 for
    a look-alike that is background in the ground truth."""

    shape: str
    color: tuple[int, int, int]
    size: float
    waypoints: list[tuple[int, float, float]]
    tracked: int = 0

    def at(self, t: int) -> tuple[float, float] | None:
        """Centre on frame t (None before the first waypoint or after the last)."""
        w = self.waypoints
        if t < w[0][0] or t > w[-1][0]:
            return None
        for (t0, x0, y0), (t1, x1, y1) in zip(w, w[1:]):
            if t0 <= t <= t1:
                a = (t - t0) / max(1, t1 - t0)
                return x0 + a * (x1 - x0), y0 + a * (y1 - y0)
        return w[-1][1], w[-1][2]

    def mask(self, t: int, h: int, w: int) -> np.ndarray:
        m = np.zeros((h, w), dtype=np.uint8)
        c = self.at(t)
        if c is None:
            return m.astype(bool)
        cx, cy, s = int(round(c[0])), int(round(c[1])), int(round(self.size))
        if self.shape == "disc":
            cv2.circle(m, (cx, cy), s, 1, -1)
        else:
            cv2.rectangle(m, (cx - s, cy - s), (cx + s, cy + s), 1, -1)
        return m.astype(bool)


@dataclass
class HardSequence:
    """One sequence of a family: frames and label maps drawn on demand."""

    family: str
    seed: int
    frames: int = 200
    width: int = 160
    height: int = 120
    movers: list[_Mover] = field(default_factory=list)
    occluders: list[tuple[int, int, int, int]] = field(default_factory=list)  # x0, y0, x1, y1

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"family {self.family!r} is unknown: use one of {', '.join(FAMILIES)}")
        if not 100 <= self.frames <= 600:
            raise ValueError(f"frames={self.frames}: the long-video families have 100 to 600 frames")
        rng = np.random.default_rng(self.seed)
        self._world = _world(rng, self.height, self.width)
        build = {
            "lookalike": _lookalike,
            "crossing": _crossing,
            "reentry": _reentry,
            "occlusion": _occlusion,
            "mixed": _mixed,
        }[self.family]
        build(self, rng)

    def frame(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        """(RGB uint8 [H, W, 3], label map uint8 [H, W]) of frame t."""
        img = self._world.copy()
        lab = np.zeros((self.height, self.width), dtype=np.uint8)
        for m in self.movers:  # later movers in front
            px = m.mask(t, self.height, self.width)
            img[px] = m.color
            lab[px] = m.tracked
        for x0, y0, x1, y1 in self.occluders:
            img[y0:y1, x0:x1] = (128, 128, 128)
            lab[y0:y1, x0:x1] = 0
        return img, lab


def _world(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    base = rng.integers(0, 256, size=(h // 16 + 2, w // 16 + 2, 3)).astype(np.uint8)
    base = cv2.resize(base, (w, h), interpolation=cv2.INTER_CUBIC)
    noise = rng.integers(-20, 20, size=(h, w, 3))
    return np.clip(base.astype(int) // 3 + 30 + noise, 0, 255).astype(np.uint8)


def _colors(rng: np.random.Generator, k: int) -> list[tuple[int, int, int]]:
    return [_COLORS[i] for i in rng.permutation(len(_COLORS))[:k]]


def _lookalike(s: HardSequence, rng: np.random.Generator, tid: int = 1, band: tuple[float, float] = (0.2, 0.8)) -> None:
    """Target left of a bar, hides behind it for 20-60 frames; its look-alike comes out of the bar's top
    while it hides and wanders off; the target comes out at the bar's right."""
    w, h, n = s.width, s.height, s.frames
    size = rng.uniform(0.07, 0.1) * h
    bar_w = int(3 * size)
    bx = int(rng.uniform(0.4, 0.55) * w)
    y = rng.uniform(band[0], band[1]) * h
    s.occluders.append((bx, 0, bx + bar_w, h))
    color = _colors(rng, 1)[0]
    hide = int(rng.integers(n // 5, n // 3))
    hidden = int(min(rng.integers(20, 61), n - hide - 25))
    left, right = bx - 2 * size, bx + bar_w + 2 * size
    centre = bx + bar_w / 2
    s.movers.append(
        _Mover(
            "disc",
            color,
            size,
            [
                (0, size * 1.5, y),
                (hide - 10, left, y),
                (hide, centre, y),
                (hide + hidden, centre, y),
                (hide + hidden + 10, right, y),
                (n - 1, w - size * 1.5, y + rng.uniform(-0.1, 0.1) * h),
            ],
            tracked=tid,
        )
    )
    # the look-alike: out of the bar while the target is hidden, then away to the left (where the target was)
    ly = y + rng.choice([-1, 1]) * rng.uniform(1.5, 2.5) * size
    ly = float(np.clip(ly, size, h - size))
    s.movers.append(
        _Mover(
            "disc",
            color,
            size,
            [
                (hide + 2, centre, ly),
                (hide + 12, left, ly),
                (min(n - 1, hide + hidden + 40), size * 1.5, ly),
                (n - 1, size * 1.5, ly),
            ],
        )
    )


def _crossing(s: HardSequence, rng: np.random.Generator, ids: tuple[int, int] = (1, 2)) -> None:
    """Two same-looking objects swap sides twice: in the open, then behind a bar."""
    w, h, n = s.width, s.height, s.frames
    size = rng.uniform(0.07, 0.1) * h
    color = _colors(rng, 1)[0]
    bar_w = int(2.5 * size)
    bx = int(w / 2 - bar_w / 2)
    shape = str(rng.choice(["disc", "square"]))
    ya, yb = 0.3 * h, 0.7 * h
    xl, xr = 2 * size, w - 2 * size
    tr = max(5, n // 12)  # frames each crossing takes
    t1 = int(rng.integers(n // 6, n // 4))  # crossing in the open: one above the other, same column
    t2 = int(rng.integers(n // 2 + 5, 2 * n // 3))  # crossing behind the bar: side by side rows
    xo = float(rng.uniform(2 * size, bx - 2 * size))
    a = [(0, xo, ya), (t1 - tr, xo, ya), (t1 + tr, xo, yb), (t2 - tr, xl, yb), (t2 + tr, xr, yb), (n - 1, xr, yb)]
    b = [(0, xo, yb), (t1 - tr, xo, yb), (t1 + tr, xo, ya), (t2 - tr, xr, ya), (t2 + tr, xl, ya), (n - 1, xl, ya)]
    # the second crossing's paths meet behind the bar: both rows pass it at the same time
    s.movers += [_Mover(shape, color, size, a, ids[0]), _Mover(shape, color, size, b, ids[1])]
    s.occluders.append((bx, 0, bx + bar_w, h))


def _reentry(s: HardSequence, rng: np.random.Generator, tid: int = 1) -> None:
    """The target leaves on the right, is away 20-80 frames, comes back in from the left; a look-alike stays
    in view near where it left."""
    w, h, n = s.width, s.height, s.frames
    size = rng.uniform(0.07, 0.1) * h
    color = _colors(rng, 1)[0]
    y = rng.uniform(0.25, 0.75) * h
    out = int(rng.integers(n // 5, n // 3))
    away = int(min(rng.integers(20, 81), n - out - 25))
    off_right, off_left = w + 2 * size, -2 * size
    # waypoints one frame apart outside both sides: it is never drawn on the way back
    path = [(0, w * 0.3, y), (out, off_right, y), (out + away - 1, off_right, y), (out + away, off_left, h - y)]
    s.movers.append(_Mover("square", color, size, [*path, (n - 1, w * 0.5, h - y)], tracked=tid))
    ly = h - y if abs(h - 2 * y) > 3 * size else (y + 3 * size) % h
    s.movers.append(_Mover("square", color, size, [(0, w * 0.75, ly), (n // 2, w * 0.65, ly), (n - 1, w * 0.8, ly)]))


def _occlusion(s: HardSequence, rng: np.random.Generator, tid: int = 1) -> None:
    """A slow target hidden for 60-200 frames behind a wide bar, then out again; one other object in view."""
    w, h, n = s.width, s.height, s.frames
    size = rng.uniform(0.07, 0.1) * h
    c1, c2 = _colors(rng, 2)
    hide = int(rng.integers(n // 6, n // 4))
    hidden = int(min(n - hide - 20, rng.integers(60, 201)))
    bx, bw = int(0.35 * w), int(0.3 * w)
    y = rng.uniform(0.3, 0.7) * h
    s.movers.append(
        _Mover(
            "disc",
            c1,
            size,
            [
                (0, 2 * size, y),
                (hide, bx + bw / 2, y),
                (hide + hidden, bx + bw / 2, y),
                (min(n - 1, hide + hidden + 30), w - 2 * size, y),
                (n - 1, w - 2 * size, y),
            ],
            tid,
        )
    )
    y2 = y + 3 * size if y + 3 * size < h - size else y - 3 * size
    s.movers.append(_Mover("square", c2, size, [(0, w - 2 * size, y2), (n - 1, 2 * size, y2)], tid + 1))
    s.occluders.append((bx, 0, bx + bw, h))


def _mixed(s: HardSequence, rng: np.random.Generator) -> None:
    """A look-alike hiding (object 1, top half), a crossing pair (objects 2 and 3) and an exit (object 4)."""
    _lookalike(s, rng, 1, band=(0.15, 0.3))
    h = s.height
    size = rng.uniform(0.06, 0.08) * h
    color = tuple(int(c) for c in rng.integers(60, 255, 3))
    n, w = s.frames, s.width
    tc = int(rng.integers(n // 2, 2 * n // 3))
    y = 0.85 * h
    s.movers += [
        _Mover("square", color, size, [(0, 2 * size, y), (tc, w / 2, y), (n - 1, w - 2 * size, y)], 2),
        _Mover("square", color, size, [(0, w - 2 * size, y), (tc, w / 2, y), (n - 1, 2 * size, y)], 3),
    ]
    out = int(rng.integers(n // 3, n // 2))
    s.movers.append(
        _Mover(
            "disc",
            (245, 245, 245),
            size,
            [
                (0, w * 0.7, 0.55 * h),
                (out, w + 3 * size, 0.55 * h),
                (out + 40, w + 3 * size, 0.6 * h),
                (n - 1, w * 0.7, 0.6 * h),
            ],
            4,
        )
    )


def write_hard_dataset(
    root: Path,
    family: str,
    sequences: int = 20,
    seed: int = 0,
    frames: int = 200,
    width: int = 160,
    height: int = 120,
    split: str = "val",
) -> list[str]:
    """Write ``sequences`` sequences of ``family`` in the DAVIS layout (every frame annotated); same seed,
    same bytes. Returns the sequence names."""
    root = Path(root)
    rng = np.random.default_rng([seed, FAMILIES.index(family)])
    pal = davis_palette()
    names = []
    for i in range(sequences):
        name = f"{family}{seed:03d}_{i:03d}"
        seq = HardSequence(family, int(rng.integers(1 << 31)), frames, width, height)
        write_sequence(root, "480p", name, (seq.frame(t) for t in range(frames)), pal)
        names.append(name)
    write_split(root, split, names, append=True)  # several families may share one root
    return names
