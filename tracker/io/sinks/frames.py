"""``frames/``: the source frames as JPEGs (``sink.frames=true``), the images the label files point at."""

from __future__ import annotations

from pathlib import Path

from ...records import Frame, FrameMasks
from .base import FrameImages, Sink, drop_frames_from, register


class FramesSink(Sink):
    """``frames/00000.jpg``: every tracked frame of the source as a JPEG, named as COCO's ``file_name``
    says, so that ``instances.json`` with ``frames/`` is a COCO dataset (images folder + annotations)."""

    def __init__(self, target: Path, images: FrameImages) -> None:
        super().__init__(target)
        self.images = images

    def open(self) -> None:
        self.partial.mkdir(parents=True, exist_ok=self.live)

    def write(self, frame: Frame, masks: FrameMasks) -> None:
        self.images.place(self.partial, frame)
        self._next = frame.index + 1
        self.frames_written += 1

    def close(self, ok: bool) -> None:
        pass

    def position(self) -> dict:
        return {"frames": self.frames_written, "next": getattr(self, "_next", 0)}

    def reopen(self, position: dict) -> None:
        self._next = position["next"]
        drop_frames_from(self.partial, "*.jpg", self._next)


register("frames", ("frames",), lambda c: FramesSink(c.folder / "frames", c.images or FrameImages()))
