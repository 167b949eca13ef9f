"""Bounded decoding of images and COCO RLE masks: sizes are checked before any pixel is allocated, so a
file that declares a huge picture is refused with one line instead of eating the machine's memory."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

# 8192 x 8192: above 8K UHD (7680 x 4320). One bool mask of this size is 64 MiB, one RGB frame 192 MiB.
MAX_IMAGE_PIXELS = 8192 * 8192


class ImageError(ValueError):
    """An image or mask cannot be decoded safely."""


def check_pixels(width: int, height: int, what: str) -> None:
    if width * height > MAX_IMAGE_PIXELS:
        raise ImageError(
            f"{what} is {width}x{height} ({width * height / 1e6:.0f} Mpx), over the "
            f"{MAX_IMAGE_PIXELS / 1e6:.0f} Mpx limit: downscale it"
        )


def read_image(path: Path, mode: str = "RGB") -> np.ndarray:
    """uint8 [H, W] (mode "L") or [H, W, 3] (mode "RGB"); the size is checked from the header first."""
    name = str(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                check_pixels(im.width, im.height, f"{name!r}")
                return np.asarray(im.convert(mode))
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        limit = MAX_IMAGE_PIXELS / 1e6
        raise ImageError(f"{name!r} declares a picture far over the {limit:.0f} Mpx limit: downscale it") from None
    except (OSError, SyntaxError, ValueError) as e:
        why = (str(e).splitlines() or [type(e).__name__])[0]
        raise ImageError(f"{name!r} is not a readable image ({why}): replace or re-export it") from None


def _rle_counts(counts: str) -> list[int]:
    """COCO's compressed RLE string -> run lengths (pycocotools' rleFrString, with bounds checks)."""
    out: list[int] = []
    data = counts.encode("ascii", errors="replace")
    p = 0
    while p < len(data):
        x = k = 0
        more = True
        while more:
            if p >= len(data) or k > 6:
                raise ValueError("RLE counts are malformed (a run does not end): give pycocotools' output")
            c = data[p] - 48
            if not 0 <= c <= 63:
                raise ValueError(f"RLE counts hold the character {chr(data[p])!r}: give pycocotools' output")
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(out) > 2:
            x += out[-2]
        out.append(x)
    return out


def decode_rle(rle: Mapping[str, Any]) -> np.ndarray:
    """COCO RLE ``{size: [h, w], counts: str | [int, ...]}`` -> bool [h, w]. The size is bounded and the
    runs must add up to it before anything is allocated (pycocotools' decoder trusts both)."""
    size = rle.get("size")
    if (
        not isinstance(size, (list, tuple))
        or len(size) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)
    ):
        raise ValueError(f"RLE size {size!r} must be [height, width], two positive integers")
    h, w = size
    check_pixels(w, h, f"RLE of size {list(size)}")
    counts = rle.get("counts")
    if isinstance(counts, str):
        runs = _rle_counts(counts)
    elif isinstance(counts, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in counts):
        runs = list(counts)
    else:
        raise ValueError("RLE counts must be a string (compressed) or a list of integers")
    if any(r < 0 for r in runs) or sum(runs) != h * w:
        raise ValueError(f"RLE counts cover {sum(runs)} pixels, its size {h}x{w} has {h * w}: the RLE is corrupt")
    values = np.arange(len(runs), dtype=np.uint8) % 2
    flat = np.repeat(values, runs).astype(bool)
    return flat.reshape((h, w), order="F")
