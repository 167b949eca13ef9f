"""``frames/``: the source frames as JPEGs (``sink.frames=true``), the images the label files point at."""

from __future__ import annotations

from pathlib import Path

from ...records import Frame, FrameMasks
from .base import FrameFilesSink, FrameImages, register


class FramesSink(FrameFilesSink):
    """``frames/00000.jpg``: every tracked frame of the source as a JPEG, named as COCO's ``file_name``
    says, so that ``instances.json`` with ``frames/`` is a COCO dataset (images folder + annotations)."""

    pattern = "*.jpg"

    def __init__(self, target: Path, images: FrameImages) -> None:
        super().__init__(target)
        self.images = images

    def open(self) -> None:
        self.partial.mkdir(parents=True, exist_ok=self.live)

    def write(self, frame: Frame, masks: FrameMasks) -> None:
        self.images.place(self.partial, frame)
        self._next = frame.index + 1
        self.frames_written += 1


register("frames", ("frames",), lambda c: FramesSink(c.folder / "frames", c.images or FrameImages()))
