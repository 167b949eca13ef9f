"""Bounded decoding of images: sizes are checked before any pixel is allocated, so a
file that declares a huge picture is refused with one line instead of eating the machine's memory."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from ..masks import MAX_IMAGE_PIXELS, ImageError, check_pixels


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
