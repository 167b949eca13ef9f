"""A synthetic demo clip with two moving objects and exact ground truth, so the demo needs no download."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np

from ..io.prompts import TrackSpec, parse_prompts
from ..io.sinks import Sink
from ..records import Frame, FrameMasks
from .metrics import ObjectScores, boundary_f, iou, summarize
from .synthetic import SyntheticSequence


def demo_sequence(frames: int, width: int, height: int, seed: int) -> SyntheticSequence:
    """The demo clip: a synthetic sequence (tracker/experiments/synthetic.py, the toy model's training distribution,
    though never one of its training seeds) with two objects."""
    return SyntheticSequence(seed, frames, width, height, objects=2)


# Written in the clips this package makes (container metadata "comment"): the toy model's own kind of video.
SYNTHETIC_COMMENT = "tracker synthetic clip"


def is_synthetic_clip(path: str | Path) -> bool:
    """Whether ``path`` is a video this package wrote from its synthetic generator (its metadata says so)."""
    try:
        with av.open(str(path)) as c:
            return c.metadata.get("comment") == SYNTHETIC_COMMENT
    except (av.FFmpegError, OSError):
        return False


def write_demo_clip(
    path: Path, frames: int = 48, width: int = 320, height: int = 240, seed: int = 0, fps: int = 24
) -> Path:
    """Encode the demo clip as H.264 mp4 (written to a temp name, then renamed)."""
    tmp = path.with_name(path.name + ".partial")
    with av.open(str(tmp), "w", format="mp4") as out:
        out.metadata["comment"] = SYNTHETIC_COMMENT
        vs = out.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        vs.options = {"crf": "16", "g": "24"}
        seq = demo_sequence(frames, width, height, seed)
        for t in range(frames):
            for p in vs.encode(av.VideoFrame.from_ndarray(seq.frame(t)[0], format="rgb24")):
                out.mux(p)
        for p in vs.encode():
            out.mux(p)
    tmp.replace(path)
    return path


def demo_prompts(frames: int, width: int, height: int, seed: int = 0) -> TrackSpec:
    """A box around each object on frame 0, from the ground truth."""
    seq = demo_sequence(frames, width, height, seed)
    lab = seq.frame(0)[1]
    objects = []
    for oid, name in enumerate(seq.shapes, start=1):
        ys, xs = np.nonzero(lab == oid)
        box = [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]
        objects.append({"id": oid, "label": name, "prompts": [{"frame": 0, "box": box}]})
    return parse_prompts({"objects": objects})


class GroundTruthScore(Sink):
    """``demo_score.json``: J and F of every object on every frame against the demo's exact ground
    truth, summarised as DAVIS does (first and last frame excluded)."""

    def __init__(self, target: Path, frames: int, width: int, height: int, seed: int = 0) -> None:
        super().__init__(target)
        self.n = frames
        self.seq = demo_sequence(frames, width, height, seed)
        self._j: dict[int, list[float]] = {}
        self._f: dict[int, list[float]] = {}
        self.summary: dict[str, float] = {}

    def open(self) -> None:
        pass

    def write(self, frame: Frame, masks: FrameMasks) -> None:
        if 0 < frame.index < self.n - 1:
            lab = self.seq.frame(frame.index)[1]
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
