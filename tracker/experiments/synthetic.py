"""A seedable synthetic VOS benchmark in the DAVIS layout, with exact ground truth.

Each sequence: a textured world wider than the frame seen through a panning camera, and several
shapes (discs, squares, ellipses, triangles) of different colours and sizes that move, occlude one
another (fixed depth order), leave the frame and come back. Written as::

    ROOT/JPEGImages/<res>/<seq>/00000.jpg
    ROOT/Annotations/<res>/<seq>/00000.png     palette PNG, pixel = object id (0 = background)
    ROOT/ImageSets/2017/val.txt                one sequence name per line
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from ..io.sinks import davis_palette

_SHAPES = ("disc", "square", "ellipse", "triangle")


@dataclass(frozen=True)
class _Thing:
    shape: str
    color: tuple[int, int, int]
    size: float
    x0: float
    y0: float
    vx: float
    vy: float
    angle_speed: float


def _texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    base = rng.integers(0, 256, size=(h // 16 + 2, w // 16 + 2, 3)).astype(np.uint8)
    base = cv2.resize(base, (w, h), interpolation=cv2.INTER_CUBIC)
    noise = rng.integers(-25, 25, size=(h, w, 3))
    return np.clip(base.astype(int) // 2 + 40 + noise, 0, 255).astype(np.uint8)


def _draw(thing: _Thing, t: int, cam_x: float, h: int, w: int) -> np.ndarray:
    """bool [h, w]: the shape's pixels on frame t, in camera coordinates (it may be off-screen)."""
    cx = thing.x0 + thing.vx * t - cam_x
    cy = thing.y0 + thing.vy * t
    # Bounce vertically inside the frame, wrap horizontally through a margin: objects leave and re-enter.
    period_y = 2 * h
    cy = cy % period_y
    cy = cy if cy < h else period_y - cy
    margin = 2 * thing.size
    cx = (cx + margin) % (w + 2 * margin) - margin
    m = np.zeros((h, w), dtype=np.uint8)
    s = thing.size
    ang = thing.angle_speed * t
    c = (int(round(cx)), int(round(cy)))
    if thing.shape == "disc":
        cv2.circle(m, c, int(s), 1, -1)
    elif thing.shape == "ellipse":
        cv2.ellipse(m, c, (int(s), int(s * 0.55)), ang, 0, 360, 1, -1)
    else:
        k = 4 if thing.shape == "square" else 3
        pts = [
            (cx + s * np.cos(np.radians(ang + 360 * i / k)), cy + s * np.sin(np.radians(ang + 360 * i / k)))
            for i in range(k)
        ]
        cv2.fillPoly(m, [np.round(np.array(pts)).astype(np.int32)], 1)
    return m.astype(bool)


class SyntheticSequence:
    """One seeded sequence whose frames are drawn on demand (nothing but the world texture is kept).
    Every object is visible on frame 0; object ids are 1..objects, later ids in front."""

    def __init__(self, seed: int, frames: int = 24, width: int = 160, height: int = 120, objects: int = 3) -> None:
        rng = np.random.default_rng(seed)
        self.frames, self.width, self.height = frames, width, height
        self._world = _texture(rng, height, width * 2)
        self._pan = rng.uniform(-1.5, 1.5)
        palette = rng.permutation(
            np.array(
                [
                    [230, 50, 50],
                    [50, 200, 60],
                    [60, 90, 240],
                    [240, 220, 40],
                    [200, 60, 220],
                    [40, 220, 220],
                    [250, 140, 30],
                    [240, 240, 240],
                ]
            )
        )
        self._things = []
        for i in range(objects):
            size = rng.uniform(0.07, 0.16) * min(width, height)
            self._things.append(
                _Thing(
                    shape=_SHAPES[int(rng.integers(len(_SHAPES)))],
                    color=tuple(int(v) for v in palette[i % len(palette)]),
                    size=size,
                    x0=rng.uniform(size, width - size),
                    y0=rng.uniform(size, height - size),
                    vx=rng.uniform(-3.5, 3.5) * width / 160,
                    vy=rng.uniform(-2.0, 2.0) * height / 120,
                    angle_speed=rng.uniform(-6, 6),
                )
            )

    @property
    def shapes(self) -> list[str]:
        """The shape of each object, by id - 1."""
        return [th.shape for th in self._things]

    def frame(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        """(RGB uint8 [H, W, 3], label map uint8 [H, W]) of frame t."""
        cam = self.width / 2 + self._pan * t
        x = int(round(cam)) % self.width
        img = self._world[:, x : x + self.width].copy()
        lab = np.zeros((self.height, self.width), dtype=np.uint8)
        for oid, th in enumerate(self._things, start=1):
            m = _draw(th, t, cam - self.width / 2, self.height, self.width)
            img[m] = th.color
            lab[m] = oid
        return img, lab


def make_sequence(
    seed: int, frames: int = 24, width: int = 160, height: int = 120, objects: int = 3
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(RGB frames, label maps) of one sequence."""
    seq = SyntheticSequence(seed, frames, width, height, objects)
    pairs = [seq.frame(t) for t in range(frames)]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def write_dataset(
    root: Path,
    sequences: int = 4,
    seed: int = 0,
    frames: int = 24,
    width: int = 160,
    height: int = 120,
    objects: tuple[int, int] = (2, 4),
    resolution: str = "480p",
    split: str = "val",
) -> list[str]:
    """Write a DAVIS-layout dataset; returns the sequence names. Same seed -> same bytes."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    names = []
    pal = davis_palette()
    for i in range(sequences):
        name = f"synth{seed:03d}_{i:03d}"
        k = int(rng.integers(objects[0], objects[1] + 1))
        rgbs, labels = make_sequence(int(rng.integers(1 << 31)), frames, width, height, k)
        write_sequence(root, resolution, name, zip(rgbs, labels), pal)
        names.append(name)
    write_split(root, split, names)
    return names


def write_sequence(
    root: Path, resolution: str, name: str, frames: Iterable[tuple[np.ndarray, np.ndarray]], palette: list[int]
) -> None:
    """One sequence's (RGB, label map) frames as DAVIS JPEGs and palette PNGs under ``root``."""
    img_dir = root / "JPEGImages" / resolution / name
    ann_dir = root / "Annotations" / resolution / name
    img_dir.mkdir(parents=True, exist_ok=True)
    ann_dir.mkdir(parents=True, exist_ok=True)
    for t, (rgb, lab) in enumerate(frames):
        Image.fromarray(rgb).save(img_dir / f"{t:05d}.jpg", quality=95)
        im = Image.fromarray(lab, mode="P")
        im.putpalette(palette)
        im.save(ann_dir / f"{t:05d}.png")


def write_split(root: Path, split: str, names: list[str], append: bool = False) -> None:
    """``ImageSets/2017/<split>.txt``: the sequence names (``append``: after those already listed)."""
    sets = root / "ImageSets" / "2017"
    sets.mkdir(parents=True, exist_ok=True)
    listed = (sets / f"{split}.txt").read_text().split() if append and (sets / f"{split}.txt").is_file() else []
    (sets / f"{split}.txt").write_text("".join(n + "\n" for n in dict.fromkeys(listed + names)))


def label_boxes(lab: np.ndarray) -> dict[int, tuple[int, int, int, int]]:
    """Boxes x0, y0, x1, y1 (exclusive ends, pixels from 0) of every object on a label map uint8 [H, W]."""
    out = {}
    for oid in sorted(set(np.unique(lab).tolist()) - {0}):
        ys, xs = np.nonzero(lab == oid)
        out[oid] = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
    return out


def mot_rows(labels: list[np.ndarray], jitter: int = 0, seed: int = 0) -> list[str]:
    """MOTChallenge rows ``frame,id,x,y,w,h,1,-1,-1,-1`` (frames and pixels from 1) of the objects' boxes on
    each label map, each coordinate moved by up to ``jitter`` pixels (a detector's error)."""
    rng = np.random.default_rng(seed)
    rows = []
    for t, lab in enumerate(labels):
        for oid, (x0, y0, x1, y1) in label_boxes(lab).items():
            j = rng.integers(-jitter, jitter + 1, 4)
            rows.append(f"{t + 1},{oid},{x0 + 1 + j[0]},{y0 + 1 + j[1]},{x1 - x0 + j[2]},{y1 - y0 + j[3]},1,-1,-1,-1")
    return rows
