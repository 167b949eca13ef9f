"""``tracker-frame``: a frame of a real encoded video as a PNG with a pixel grid, read back; bad input is
one line and writes nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
from helpers import moving_shapes, write_video
from PIL import Image

from tracker.io.source import open_source

EXE = Path(sys.executable).with_name("tracker-frame")


def _frame(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(EXE), *map(str, args)], capture_output=True, text=True, timeout=120)


def test_a_frame_with_its_grid(tmp_path):
    clip = write_video(tmp_path / "clip.mp4", moving_shapes(12, 160, 120))
    res = _frame(clip, 7, tmp_path / "f.png")
    assert res.returncode == 0 and "(160x120)" in res.stdout, res.stderr
    got = np.asarray(Image.open(tmp_path / "f.png").convert("RGB")).astype(int)
    want = next(iter(open_source("pyav", clip).frames(7, 8))).rgb.astype(int)
    assert got.shape == want.shape
    assert (got[20:96:4, 50] == 255).all() and (got[100, 40::4] == 255).all()  # the lines at x=50 and y=100
    assert np.array_equal(got[60:95, 60:95], want[60:95, 60:95])  # between lines and labels: the frame
    assert _frame(clip, 0, tmp_path / "g.png", "--grid", "0").returncode == 0
    plain = np.asarray(Image.open(tmp_path / "g.png").convert("RGB")).astype(int)
    assert np.array_equal(plain, next(iter(open_source("pyav", clip).frames(0, 1))).rgb.astype(int))


def test_bad_input_is_one_line_and_writes_nothing(tmp_path):
    clip = write_video(tmp_path / "clip.mp4", moving_shapes(12, 160, 120))
    for args, needle in [
        ((clip, 12, tmp_path / "f.png"), "frame 12 is past the end"),
        ((tmp_path / "none.mp4", 0, tmp_path / "f.png"), "does not exist"),
        ((clip, 0, tmp_path / "f.jpg"), "is not a .png name"),
        ((clip, 0, tmp_path / "no" / "f.png"), "does not exist: create it"),
        ((clip, "x", tmp_path / "f.png"), "invalid int value"),
        ((clip, -1, tmp_path / "f.png"), "is negative"),
    ]:
        res = _frame(*args)
        lines = res.stderr.strip().splitlines()
        assert res.returncode == 2 and len(lines) == 1 and lines[0].startswith("tracker-frame: error: "), res.stderr
        assert needle in lines[0], lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]
