"""``masks/<frame>.png``: one palette PNG per frame, pixel = object id (DAVIS layout)."""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

from ...masks import PNG_MAX_ID
from ...records import Frame, FrameMasks
from .base import FrameFilesSink, register


def davis_palette() -> list[int]:
    """The DAVIS/PASCAL VOC colour map: index i -> RGB, 256 entries flattened."""
    pal = []
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal += [r, g, b]
    return pal


class PngMasksSink(FrameFilesSink):
    """``masks/00000.png``: palette PNG per frame, pixel value = object id (DAVIS layout).
    Where masks overlap, the object with the higher score wins."""

    pattern = "*.png"

    def open(self) -> None:
        self.partial.mkdir(parents=True, exist_ok=self.live)
        self._palette = davis_palette()

    def write(self, frame: Frame, masks: FrameMasks) -> None:
        ids = masks.object_ids
        if ids and max(ids) > PNG_MAX_ID:
            raise ValueError(
                f"object id {max(ids)} does not fit a palette PNG (0..{PNG_MAX_ID}): use ids <= {PNG_MAX_ID}"
            )
        out = np.zeros(masks.masks.shape[1:], dtype=np.uint8)
        for i in np.argsort(masks.scores, kind="stable"):
            out[masks.masks[i]] = ids[i]
        im = Image.fromarray(out, mode="P")
        im.putpalette(self._palette)
        self._next = frame.index + 1
        name = self.partial / f"{frame.index:05d}.png"
        if self.live:  # a file is either whole or absent, whenever the process dies
            im.save(name.with_suffix(".png.tmp"), format="PNG", compress_level=1)
            os.replace(name.with_suffix(".png.tmp"), name)
        else:
            im.save(name, compress_level=1)
        self.frames_written += 1

    def reopen(self, position: dict) -> None:
        self._palette = davis_palette()
        super().reopen(position)


register("png", ("masks",), lambda c: PngMasksSink(c.folder / "masks"))
