"""``tracker-frame``: one frame of a video as a PNG with a pixel grid, to read a box for ``prompts.box``
off it (no ffmpeg or video player needed).

    tracker-frame clip.mp4 0 frame0.png            # a line every 50 px, labelled with its coordinate
    tracker-frame clip.mp4 120 f.png --grid 100
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import cv2
import numpy as np

from ..io.source import SOURCES, check_source_path, open_source
from ..run.errors import one_line
from . import OneLineParser


def _parser() -> argparse.ArgumentParser:
    ap = OneLineParser(prog="tracker-frame", description="Write frame N of a video as a PNG with a pixel grid.")
    ap.add_argument("video", help="a video file or a frame folder")
    ap.add_argument("frame", type=int, help="the frame's index (from 0, as prompts.frame counts)")
    ap.add_argument("out", type=Path, help="the PNG to write")
    ap.add_argument("--grid", type=int, default=50, help="pixels between grid lines (0: none; default 50)")
    ap.add_argument("--source", default=None, help="the decoder (default: pyav for files, images for folders)")
    return ap


def with_grid(rgb: np.ndarray, step: int) -> np.ndarray:
    """uint8 [H, W, 3] -> a copy with a line every ``step`` px (dark and light, seen on any picture) and each
    line's coordinate written at the top and left edges."""
    out = rgb.copy()
    if step <= 0:
        return out
    h, w = out.shape[:2]
    for x in range(step, w, step):
        out[:, x] = (out[:, x].astype(np.uint16) // 3).astype(np.uint8)
        out[::4, x] = 255
    for y in range(step, h, step):
        out[y] = (out[y].astype(np.uint16) // 3).astype(np.uint8)
        out[y, ::4] = 255
    for v, org in [(x, (x + 2, 11)) for x in range(step, w, step)] + [(y, (2, y - 3)) for y in range(step, h, step)]:
        cv2.putText(out, str(v), org, cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(out, str(v), org, cv2.FONT_HERSHEY_SIMPLEX, 0.35, (255, 255, 0), 1, cv2.LINE_AA)
    return out


def write_frame(video: str, index: int, out: Path, grid: int = 50, kind: str | None = None) -> tuple[int, int]:
    """Frame ``index`` of ``video`` with its grid into ``out`` (written whole or not at all); returns (W, H).
    Every bad value is a ValueError naming it and the fix, raised before anything is written."""
    kind = kind or ("images" if Path(video).is_dir() else "pyav")
    if kind not in SOURCES or SOURCES[kind].open is None:
        kinds = ", ".join(k for k, v in SOURCES.items() if v.open)
        raise ValueError(f"--source {kind!r} is unknown: use one of {kinds}")
    if out.suffix.lower() != ".png":
        raise ValueError(f"{str(out)!r} is not a .png name: name the picture to write something.png")
    if not out.parent.is_dir():
        raise ValueError(f"the folder of {str(out)!r} does not exist: create it first")
    if out.is_symlink() or (out.exists() and not out.is_file()):
        raise ValueError(f"{str(out)!r} is not a plain file: name another picture")
    if out.exists() and Path(video).exists() and out.resolve() == Path(video).resolve():
        raise ValueError(f"{str(out)!r} is the video itself: name another picture")
    if index < 0 or grid < 0:
        raise ValueError(f"frame {index} / --grid {grid} is negative: frames count from 0")
    check_source_path(video, kind)
    source = open_source(kind, video)
    n = source.info.num_frames
    if n is not None and index >= n:
        raise ValueError(f"frame {index} is past the end: {video!r} has frames 0 to {n - 1}")
    frame = next(iter(source.frames(index, index + 1)), None)
    if frame is None:
        raise ValueError(f"frame {index} could not be decoded from {video!r}: try an earlier one")
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp.png")
    try:
        if not cv2.imwrite(str(tmp), cv2.cvtColor(with_grid(frame.rgb, grid), cv2.COLOR_RGB2BGR)):
            raise ValueError(f"{str(out)!r} could not be written: check the folder")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return source.info.width, source.info.height


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    try:
        w, h = write_frame(args.video, args.frame, args.out, args.grid, args.source)
    except Exception as e:
        print(f"tracker-frame: error: {one_line(e)}", file=sys.stderr)
        sys.exit(2)
    print(f"frame {args.frame} of {args.video} ({w}x{h}) -> {args.out}: prompts.box=[x0,y0,x1,y1] in these pixels")


if __name__ == "__main__":
    main()
