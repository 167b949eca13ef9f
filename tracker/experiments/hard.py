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

Those five were built with the ``gated`` policy and move on straight lines before a still camera. The
families below look more like real footage (every one has camera shake or motion, turns and size changes):

- ``camera``: the camera pans, shakes and zooms (the world moves on screen, occluders with it) while the
  target hides behind an occluder and a look-alike comes out; a second tracked object curves about.
- ``turns``: two same-looking tracked objects run at each other and bounce back the way they came, twice;
  a third circles at changing speed and turns back behind an occluder; the camera shakes.
- ``scale``: the target approaches and recedes (x2 to x3 in size), spins and deforms while it passes an
  occluder, a look-alike near it; a slow pan.
- ``absence``: the target is hidden (behind an occluder or out of view) for 100 to 300 frames and comes
  back somewhere else, moving another way; another tracked object and an untracked look-alike stay in view.
- ``crowd``: 8 tracked objects (four same-looking pairs) wandering with turns, three occluders, untracked
  look-alikes arriving later; camera shake.
- ``wild``: all at once: pan and shake, a target that turns, grows and hides for 60 to 150 frames, a
  look-alike coming out while it hides, a bouncing pair.

Occluders are grey bars drawn in front of everything; look-alikes are drawn like the objects they copy but
are background in the ground truth. Objects move on straight segments between waypoints (dense ones make
curves); positions and sizes are in world pixels, seen through the camera.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..io.sinks import davis_palette
from .synthetic import write_sequence, write_split

FAMILIES = (
    "lookalike",
    "crossing",
    "reentry",
    "occlusion",
    "mixed",
    "camera",
    "turns",
    "scale",
    "absence",
    "crowd",
    "wild",
)
_MOVING = ("camera", "turns", "scale", "absence", "crowd", "wild")  # families seen through a moving camera
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
    scales: list[tuple[int, float]] = field(default_factory=list)  # (frame, size factor), piecewise linear
    spin: float = 0.0  # degrees per frame (squares and ellipses)
    wobble: float = 0.0  # non-rigid: an ellipse's axes swing by this fraction, out of phase

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

    def factor(self, t: int) -> float:
        """The size factor on frame t (1 without ``scales``)."""
        if not self.scales:
            return 1.0
        ts, fs = zip(*self.scales)
        return float(np.interp(t, ts, fs))

    def mask(self, t: int, h: int, w: int, view: tuple[float, float, float] | None = None) -> np.ndarray:
        """bool [h, w] on frame t; ``view`` (scale, x, y): world -> screen as scale * world + (x, y)."""
        m = np.zeros((h, w), dtype=np.uint8)
        c = self.at(t)
        if c is None:
            return m.astype(bool)
        if view is None and not self.scales and not self.spin and not self.wobble:  # the first five families
            cx, cy, s = int(round(c[0])), int(round(c[1])), int(round(self.size))
            if self.shape == "disc":
                cv2.circle(m, (cx, cy), s, 1, -1)
            else:
                cv2.rectangle(m, (cx - s, cy - s), (cx + s, cy + s), 1, -1)
            return m.astype(bool)
        k, ox, oy = view or (1.0, 0.0, 0.0)
        x, y, r = k * c[0] + ox, k * c[1] + oy, k * self.size * self.factor(t)
        if r < 0.5 or x < -2 * r or y < -2 * r or x > w + 2 * r or y > h + 2 * r:
            return m.astype(bool)
        ang = self.spin * t
        # cv2's shift=4: sub-pixel centres, so slow motion and small sizes change the mask smoothly
        q = 16
        if self.shape == "disc" and not self.wobble:
            cv2.circle(m, (round(x * q), round(y * q)), round(r * q), 1, -1, cv2.LINE_8, 4)
        elif self.shape in ("disc", "ellipse"):
            a = 1 + self.wobble * np.sin(0.15 * t)
            b = (0.6 if self.shape == "ellipse" else 1.0) * (1 - self.wobble * np.sin(0.15 * t))
            cv2.ellipse(
                m, (round(x * q), round(y * q)), (round(r * a * q), round(r * b * q)), ang, 0, 360, 1, -1, cv2.LINE_8, 4
            )
        else:
            pts = [
                (
                    x + r * np.sqrt(2) * np.cos(np.radians(ang + 45 + 90 * i)),
                    y + r * np.sqrt(2) * np.sin(np.radians(ang + 45 + 90 * i)),
                )
                for i in range(4)
            ]
            cv2.fillPoly(m, [np.round(np.array(pts) * q).astype(np.int32)], 1, cv2.LINE_8, 4)
        return m.astype(bool)


@dataclass
class _Camera:
    """What the screen shows of a world larger than it: per frame a zoom and the world point at the
    screen's top-left corner (piecewise linear between keys), plus a smooth shake of ``shake`` pixels."""

    keys: list[tuple[int, float, float, float]]  # (frame, zoom, world x0, world y0)
    jitter: np.ndarray  # float [frames, 2] screen pixels

    def view(self, t: int) -> tuple[float, float, float]:
        ts = [k[0] for k in self.keys]
        z, x0, y0 = (float(np.interp(t, ts, [k[i] for k in self.keys])) for i in (1, 2, 3))
        return z, -z * x0 + float(self.jitter[t, 0]), -z * y0 + float(self.jitter[t, 1])


def _jitter(rng: np.random.Generator, frames: int, shake: float) -> np.ndarray:
    """float [frames, 2]: a hand-held camera's shake, ``shake`` pixels at most, smoothed over 3 frames."""
    if shake <= 0:
        return np.zeros((frames, 2))
    raw = rng.uniform(-1, 1, size=(frames + 2, 2))
    smooth = (raw[:-2] + raw[1:-1] + raw[2:]) / 3
    return smooth / np.abs(smooth).max() * shake


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
    camera: _Camera | None = None  # None: the screen is the world (the first five families)

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"family {self.family!r} is unknown: use one of {', '.join(FAMILIES)}")
        low = MIN_FRAMES.get(self.family, 100)
        if not low <= self.frames <= 600:
            raise ValueError(f"frames={self.frames}: the {self.family} family has {low} to 600 frames")
        rng = np.random.default_rng(self.seed)
        # a moving camera sees a world twice the screen's size
        big = 2 if self.family in _MOVING else 1
        self._world = _world(rng, big * self.height, big * self.width)
        build = {
            "lookalike": _lookalike,
            "crossing": _crossing,
            "reentry": _reentry,
            "occlusion": _occlusion,
            "mixed": _mixed,
            "camera": _camera,
            "turns": _turns,
            "scale": _scale,
            "absence": _absence,
            "crowd": _crowd,
            "wild": _wild,
        }[self.family]
        build(self, rng)

    def frame(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        """(RGB uint8 [H, W, 3], label map uint8 [H, W]) of frame t."""
        if self.camera is None:
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
        z, ox, oy = view = self.camera.view(t)
        warp = np.array([[z, 0, ox], [0, z, oy]], dtype=np.float64)
        img = cv2.warpAffine(
            self._world, warp, (self.width, self.height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
        )
        lab = np.zeros((self.height, self.width), dtype=np.uint8)
        for m in self.movers:
            px = m.mask(t, self.height, self.width, view)
            img[px] = m.color
            lab[px] = m.tracked
        for x0, y0, x1, y1 in self.occluders:
            a = np.clip(np.round([z * x0 + ox, z * y0 + oy]), 0, [self.width, self.height]).astype(int)
            b = np.clip(np.round([z * x1 + ox, z * y1 + oy]), 0, [self.width, self.height]).astype(int)
            img[a[1] : b[1], a[0] : b[0]] = (128, 128, 128)
            lab[a[1] : b[1], a[0] : b[0]] = 0
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


# ---- the families seen through a moving camera ------------------------------------------------------------
# Paths are drawn in screen fractions (u, v) at given frames and turned into world points through the
# camera without its shake, so an object stays about where it was meant to be on screen while the world
# (occluders included) moves under it.

MIN_FRAMES = {"absence": 260, "wild": 240}  # families whose absences need more than the usual 100 frames


def _pan(s: HardSequence, rng: np.random.Generator, zoom: float = 1.0, shake: float = 2.0, keys: int = 4) -> None:
    """A camera wandering over the world (2x the screen): ``keys`` key frames, zoom up to ``zoom``."""
    w, h, n = s.width, s.height, s.frames
    ks = []
    for i in range(keys):
        z = 1.0 if i in (0, keys - 1) else float(rng.uniform(1.0, zoom))
        x0 = float(rng.uniform(0.15, 0.85)) * (2 * w - w / z)
        y0 = float(rng.uniform(0.15, 0.85)) * (2 * h - h / z)
        ks.append((round(i * (n - 1) / (keys - 1)), z, x0, y0))
    s.camera = _Camera(ks, _jitter(rng, n, shake))


def _world_of(s: HardSequence, t: int, u: float, v: float) -> tuple[float, float]:
    """The world point seen at screen fraction (u, v) on frame t (shake left out)."""
    assert s.camera is not None
    ts = [k[0] for k in s.camera.keys]
    z, x0, y0 = (float(np.interp(t, ts, [k[i] for k in s.camera.keys])) for i in (1, 2, 3))
    return x0 + u * s.width / z, y0 + v * s.height / z


def _path(s: HardSequence, pts: list[tuple[int, float, float]]) -> list[tuple[int, float, float]]:
    """World waypoints of a path given in screen fractions (frame, u, v); frames increasing."""
    return [(t, *_world_of(s, t, u, v)) for t, u, v in pts]


def _arc(
    t0: int, t1: int, cu: float, cv: float, r: float, a0: float, a1: float, step: int = 4
) -> list[tuple[int, float, float]]:
    """Screen-fraction waypoints on an arc (centre, radius in fractions of the height) from angle a0 to a1."""
    ts = list(range(t0, t1, step)) + [t1]
    return [(t, cu + r * 0.75 * np.cos(a), cv + r * np.sin(a)) for t, a in zip(ts, np.linspace(a0, a1, len(ts)))]


def _zoom_at(s: HardSequence, t: int) -> float:
    assert s.camera is not None
    return float(np.interp(t, [k[0] for k in s.camera.keys], [k[1] for k in s.camera.keys]))


def _bar(s: HardSequence, t: int, u: float, width: float) -> tuple[int, int, int, int]:
    """A full-height vertical world bar seen at screen fraction u on frame t, ``width`` world pixels wide."""
    x, _ = _world_of(s, t, u, 0.5)
    return (int(x - width / 2), 0, int(x + width / 2), 2 * s.height)


def _camera(s: HardSequence, rng: np.random.Generator) -> None:
    """Pan, shake and zoom; the target hides behind a bar while a look-alike comes out of it and goes back
    the way the target came; a second tracked object curves about."""
    n, h = s.frames, s.height
    _pan(s, rng, zoom=1.3, shake=float(rng.uniform(1.5, 3.0)))
    size = float(rng.uniform(0.07, 0.09)) * h
    color, other = _colors(rng, 2)
    hide = int(rng.integers(n // 5, n // 3))
    hidden = int(min(rng.integers(15, 41), n - hide - 30))
    bar = _bar(s, hide, 0.5, 3 * size)
    s.occluders.append(bar)
    cx = (bar[0] + bar[2]) / 2
    v = float(rng.uniform(0.3, 0.7))
    _, y = _world_of(s, hide, 0.5, v)
    lx, rx = bar[0] - 2 * size, bar[2] + 2 * size
    sx, sy = _world_of(s, 0, 0.12, v)
    ex, ey = _world_of(s, n - 1, 0.88, v + float(rng.uniform(-0.15, 0.15)))
    path = [
        (0, sx, sy),
        (hide - 10, lx, y),
        (hide, cx, y),
        (hide + hidden, cx, y),
        (hide + hidden + 10, rx, y),
        (n - 1, ex, ey),
    ]
    s.movers.append(_Mover("disc", color, size, path, tracked=1))
    ly = y + float(rng.choice([-1, 1])) * float(rng.uniform(2.0, 2.6)) * size
    sx2, sy2 = _world_of(s, min(n - 1, hide + hidden + 40), 0.1, 0.5)
    s.movers.append(
        _Mover(
            "disc",
            color,
            size,
            [(hide + 2, cx, ly), (hide + 14, lx, ly), (min(n - 1, hide + hidden + 40), sx2, ly), (n - 1, sx2, ly)],
        )
    )
    cv = 0.25 if v > 0.5 else 0.75
    arc = _arc(
        0, n - 1, 0.5, cv, 0.18, float(rng.uniform(0, 6.3)), float(rng.uniform(6, 12)) * float(rng.choice([-1, 1]))
    )
    s.movers.append(_Mover("square", other, size * 0.9, _path(s, arc), tracked=2, spin=float(rng.uniform(-2, 2))))


def _turns(s: HardSequence, rng: np.random.Generator) -> None:
    """Two same-looking tracked objects run at each other and bounce back twice; a third circles at changing
    speed and turns back behind a bar; the camera shakes and drifts."""
    n, h = s.frames, s.height
    _pan(s, rng, zoom=1.1, shake=float(rng.uniform(1.5, 3.0)), keys=3)
    size = float(rng.uniform(0.07, 0.09)) * h
    color, other = _colors(rng, 2)
    shape = str(rng.choice(["disc", "square"]))
    v = float(rng.uniform(0.3, 0.45))
    gap = 2.1 * size / h  # centres this far apart (in height fractions) touch
    # bounce times and the points they meet at (screen fraction of the width)
    t1, t2 = int(rng.integers(n // 5, n // 3)), int(rng.integers(n // 2, 2 * n // 3))
    m1, m2 = float(rng.uniform(0.35, 0.65)), float(rng.uniform(0.35, 0.65))
    half = gap * 0.75 / 2  # (u is in width fractions: 0.75 of the height's)
    a = [(0, 0.1, v), (t1, m1 - half, v), ((t1 + t2) // 2, 0.15, v + 0.05), (t2, m2 - half, v), (n - 1, 0.12, v)]
    b = [(0, 0.9, v), (t1, m1 + half, v), ((t1 + t2) // 2, 0.85, v - 0.05), (t2, m2 + half, v), (n - 1, 0.88, v)]
    s.movers += [_Mover(shape, color, size, _path(s, a), 1), _Mover(shape, color, size, _path(s, b), 2)]
    # the third: a quarter circle fast, a slow half, back the way it came behind a bar
    tb = int(rng.integers(n // 2, 3 * n // 4))
    ang0 = float(rng.uniform(0, 1))
    arc = _arc(0, tb, 0.5, 0.72, 0.16, ang0, ang0 + 3.5) + _arc(tb, n - 1, 0.5, 0.72, 0.16, ang0 + 3.5, ang0 + 1.5)[1:]
    end = arc[[t for t, _, _ in arc].index(tb)]
    s.occluders.append(_bar(s, tb, end[1], 2.6 * size))
    s.movers.append(_Mover("disc" if shape == "square" else "square", other, size, _path(s, arc), 3))


def _scale(s: HardSequence, rng: np.random.Generator) -> None:
    """The target approaches (x2 to x3), recedes and approaches again, spinning and deforming, and passes a
    bar on the way; a look-alike of its first size stays near it."""
    n, h = s.frames, s.height
    _pan(s, rng, zoom=1.0, shake=1.0, keys=3)
    size = float(rng.uniform(0.05, 0.065)) * h
    color = _colors(rng, 1)[0]
    shape = str(rng.choice(["ellipse", "square", "disc"]))
    big = float(rng.uniform(2.0, 3.0))
    tp = int(rng.integers(n // 4, n // 2))
    s_keys = [(0, 1.0), (tp, big), (min(n - 2, tp + n // 4), 1.0), (n - 1, float(rng.uniform(1.5, 2.2)))]
    v = float(rng.uniform(0.4, 0.6))
    path = [(0, 0.15, v), (tp, 0.5, v + 0.05), (n - 1, 0.85, v)]
    s.occluders.append(_bar(s, tp, 0.5, 1.2 * size))
    s.movers.append(
        _Mover(shape, color, size, _path(s, path), 1, s_keys, float(rng.uniform(-3, 3)), float(rng.uniform(0.1, 0.2)))
    )
    side = float(rng.choice([-1, 1]))
    look = [(0, 0.4, v + side * 0.28), (n // 2, 0.55, v + side * 0.25), (n - 1, 0.35, v + side * 0.28)]
    s.movers.append(_Mover(shape, color, size, _path(s, look), 0, [], float(rng.uniform(-3, 3)), 0.1))


def _absence(s: HardSequence, rng: np.random.Generator) -> None:
    """The target goes behind a wide bar or out of view for 100-300 frames and comes back elsewhere, moving
    another way; another tracked object wanders in view; in half the clips an untracked look-alike of the
    target stays in view, far from where it went."""
    n, h = s.frames, s.height
    _pan(s, rng, zoom=1.15, shake=1.5)
    size = float(rng.uniform(0.07, 0.09)) * h
    color, other = _colors(rng, 2)
    out = int(rng.integers(n // 10, n // 5))
    away = int(rng.integers(100, min(300, n - out - 40) + 1))
    back = out + away
    v = float(rng.uniform(0.3, 0.7))
    if rng.random() < 0.5:  # out of view on the right, back from the top or the bottom
        pts = [(0, 0.3, v), (out, 1.25, v), (back - 1, 1.25, v)]
        edge = float(rng.choice([-0.25, 1.25]))
        pts += [(back, 0.3, edge), (back + 30, 0.4, 0.5), (n - 1, 0.7, 0.5 + float(rng.uniform(-0.2, 0.2)))]
    else:  # behind a wide bar; out of its far side at another height, then turning
        bar = _bar(s, out, 0.6, 0.4 * s.width)
        s.occluders.append(bar)
        pts = [
            (0, 0.15, v),
            (out, 0.6, v),
            (back, 0.6, 1 - v),
            (back + 25, 0.88, 1 - v),
            (n - 1, 0.6, 0.15 if v < 0.5 else 0.85),
        ]
    s.movers.append(_Mover("disc", color, size, _path(s, pts), 1))
    wander = [(t, float(rng.uniform(0.15, 0.85)), float(rng.uniform(0.2, 0.8))) for t in range(0, n, 40)]
    s.movers.append(_Mover("square", other, size, _path(s, [*wander, (n - 1, 0.5, 0.5)]), 2))
    if rng.random() < 0.5:
        u0 = 0.2 if v > 0.5 else 0.8
        s.movers.append(
            _Mover("disc", color, size, _path(s, [(0, u0, 0.15), (n // 2, u0, 0.25), (n - 1, u0 - 0.05, 0.15)]))
        )


def _crowd(s: HardSequence, rng: np.random.Generator) -> None:
    """8 tracked objects in four same-looking pairs, wandering with turns and speed changes; three bars;
    two untracked look-alikes come in later; the camera shakes."""
    n, h = s.frames, s.height
    _pan(s, rng, zoom=1.0, shake=1.5, keys=2)
    size = float(rng.uniform(0.05, 0.06)) * h
    for i in range(3):
        s.occluders.append(
            _bar(s, n // 2, 0.2 + 0.3 * i + float(rng.uniform(-0.05, 0.05)), float(rng.uniform(1.2, 2.0)) * size)
        )
    colors = _colors(rng, 4)
    shapes = ["disc", "square", "disc", "square"]
    looks = []
    for i in range(8):
        c, sh = colors[i // 2], shapes[i // 2]
        pts, t = [], 0
        while t < n - 1:
            pts.append((t, float(rng.uniform(0.08, 0.92)), float(rng.uniform(0.1, 0.9))))
            t += int(rng.integers(20, 45))
        pts.append((n - 1, float(rng.uniform(0.08, 0.92)), float(rng.uniform(0.1, 0.9))))
        s.movers.append(_Mover(sh, c, size, _path(s, pts), i + 1))
        looks.append((sh, c))
    for _ in range(2):
        sh, c = looks[int(rng.integers(0, 8))]
        t0 = int(rng.integers(n // 3, 2 * n // 3))
        side = float(rng.choice([-0.1, 1.1]))
        s.movers.insert(
            0,
            _Mover(
                sh,
                c,
                size,
                _path(s, [(t0, side, float(rng.uniform(0.2, 0.8))), (t0 + 40, 0.5, 0.5), (n - 1, 1 - side, 0.5)]),
            ),
        )


def _wild(s: HardSequence, rng: np.random.Generator) -> None:
    """Pan, shake and zoom; the target grows, hides for 60-150 frames behind a bar while a look-alike comes
    out, and comes back out turned; a same-looking pair bounces."""
    n, h = s.frames, s.height
    _pan(s, rng, zoom=1.25, shake=float(rng.uniform(1.5, 3.0)))
    size = float(rng.uniform(0.06, 0.08)) * h
    color, pair = _colors(rng, 2)
    hide = int(rng.integers(n // 6, n // 4))
    hidden = int(min(rng.integers(60, 151), n - hide - 40))
    bar = _bar(s, hide, 0.45, 3.5 * size)
    s.occluders.append(bar)
    cx = (bar[0] + bar[2]) / 2
    v = float(rng.uniform(0.3, 0.5))
    _, y = _world_of(s, hide, 0.45, v)
    sx, sy = _world_of(s, 0, 0.1, v + 0.15)
    pts = [(0, sx, sy), (hide - 12, bar[0] - 2 * size, y), (hide, cx, y), (hide + hidden, cx, y + 0.15 * h)]
    out = hide + hidden + 12
    pts += [(out, bar[2] + 2 * size, y + 0.2 * h)]
    tail = (
        _path(s, [(out + 30, 0.75, 0.3), (n - 1, 0.6, 0.15)])
        if out + 30 < n - 1
        else [(n - 1, *_world_of(s, n - 1, 0.8, 0.3))]
    )
    s.movers.append(_Mover("disc", color, size, pts + tail, 1, [(0, 1.0), (hide, 1.8), (n - 1, 1.2)]))
    ly = y - float(rng.uniform(2.2, 2.8)) * size * 1.8
    s.movers.append(
        _Mover(
            "disc",
            color,
            size,
            [(hide + 3, cx, ly), (hide + 20, bar[0] - 3 * size, ly), (n - 1, bar[0] - 5 * size, ly)],
            0,
            [(0, 1.8)],
        )
    )
    tm = int(rng.integers(n // 2, 3 * n // 4))
    m = float(rng.uniform(0.4, 0.6))
    a = [(0, 0.1, 0.8), (tm, m - 0.06, 0.8), (n - 1, 0.15, 0.75)]
    b = [(0, 0.9, 0.8), (tm, m + 0.06, 0.8), (n - 1, 0.85, 0.85)]
    s.movers += [_Mover("square", pair, size, _path(s, a), 2), _Mover("square", pair, size, _path(s, b), 3)]


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
