"""A synthetic demo clip with two moving objects and exact ground truth, so the demo needs no download."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np

from .metrics import ObjectScores, boundary_f, iou, summarize
from .prompts import TrackSpec, parse_prompts
from .records import Frame, FrameMasks
from .sinks import Sink


def _geometry(t: int, n: int, width: int, height: int) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """(cx, cy, radius) of the disc and (cx, cy, side) of the square on frame t."""
    u = t / max(n, 1)
    disc = (int(width * (0.2 + 0.5 * u)), int(height * 0.4), min(width, height) // 8)
    square = (int(width * (0.7 - 0.4 * u)), int(height * 0.65), min(width, height) // 6)
    return disc, square


def ground_truth(t: int, n: int, width: int, height: int) -> np.ndarray:
    """uint8 [H, W] label map of frame t: 1 = disc, 2 = square (the square is drawn on top)."""
    (cx, cy, r), (sx, sy, s) = _geometry(t, n, width, height)
    yy, xx = np.mgrid[:height, :width]
    lab = np.zeros((height, width), dtype=np.uint8)
    lab[(xx - cx) ** 2 + (yy - cy) ** 2 < r * r] = 1
    lab[max(sy - s // 2, 0) : sy + s // 2, max(sx - s // 2, 0) : sx + s // 2] = 2
    return lab


def moving_shapes(n: int, width: int, height: int, seed: int = 0) -> Iterator[np.ndarray]:
    """n RGB frames (made lazily): textured background, a red disc and a blue square moving across it."""
    rng = np.random.default_rng(seed)
    bg = rng.integers(0, 60, size=(height // 8 + 1, width // 8 + 1, 3)).astype(np.uint8)
    bg = np.kron(bg, np.ones((8, 8, 1), dtype=np.uint8))[:height, :width]
    for t in range(n):
        lab = ground_truth(t, n, width, height)
        f = bg.copy()
        f[lab == 1] = (230, 40, 40)
        f[lab == 2] = (40, 60, 230)
        yield f


def write_demo_clip(path: Path, frames: int = 48, width: int = 320, height: int = 240, fps: int = 24) -> Path:
    """Encode the demo clip as H.264 mp4 (written to a temp name, then renamed)."""
    tmp = path.with_name(path.name + ".partial")
    with av.open(str(tmp), "w", format="mp4") as out:
        vs = out.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        vs.options = {"crf": "16", "g": "24"}
        for f in moving_shapes(frames, width, height):
            for p in vs.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                out.mux(p)
        for p in vs.encode():
            out.mux(p)
    tmp.replace(path)
    return path


def demo_prompts(frames: int, width: int, height: int) -> TrackSpec:
    """A box around each object on frame 0, from the ground truth."""
    lab = ground_truth(0, frames, width, height)
    objects = []
    for oid, name in ((1, "disc"), (2, "square")):
        ys, xs = np.nonzero(lab == oid)
        box = [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]
        objects.append({"id": oid, "label": name, "prompts": [{"frame": 0, "box": box}]})
    return parse_prompts({"objects": objects})


class GroundTruthScore(Sink):
    """``demo_score.json``: J and F of every object on every frame against the demo's exact ground
    truth, summarised as DAVIS does (first and last frame excluded)."""

    def __init__(self, target: Path, frames: int, width: int, height: int) -> None:
        super().__init__(target)
        self.n, self.w, self.h = frames, width, height
        self._j: dict[int, list[float]] = {}
        self._f: dict[int, list[float]] = {}
        self.summary: dict[str, float] = {}

    def open(self) -> None:
        pass

    def write(self, frame: Frame, masks: FrameMasks) -> None:
        if 0 < frame.index < self.n - 1:
            lab = ground_truth(frame.index, self.n, self.w, self.h)
            for oid in masks.object_ids:
                g, p = lab == oid, masks.mask_of(oid)
                self._j.setdefault(oid, []).append(iou(g, p))
                self._f.setdefault(oid, []).append(boundary_f(g, p))
        self.frames_written += 1

    def close(self, ok: bool) -> None:
        if not ok:
            return
        objs = [ObjectScores("demo", oid, tuple(self._j[oid]), tuple(self._f[oid])) for oid in sorted(self._j)]
        self.summary = summarize(objs)
        self.partial.write_text(json.dumps({"dataset": self.summary, **{str(o.object_id): o.stats() for o in objs}}))
