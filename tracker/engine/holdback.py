"""Holding frames back for confirmation: with discovery, a frame comes out only once every object that
joined on or before it is kept or dropped (at most ``confirm`` frames later), without the dropped ones."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator

from ..records import Frame, FrameMasks


class HoldBack:
    def __init__(self, discovery) -> None:
        """``discovery``: a :class:`tracker.discovery.Discovery` (``decided``, ``finish``, ``dropped``)."""
        self.discovery = discovery
        self.held: deque[tuple[Frame, FrameMasks]] = deque()

    def hold(self, items: Iterator) -> Iterator:
        """Frames (and checkpoints) in order, each once its joined objects are decided."""
        d = self.discovery
        self.held = held = deque()
        for item in items:
            held.append(item)
            while held and d.decided(held[0][0].index):
                yield self.without_dropped(*held.popleft())
        yield from self.release()

    def release(self) -> Iterator[tuple[Frame, FrameMasks]]:
        """The frames held back once the run has stopped (its end, or a signal that cut it short): the
        objects not confirmed by then are dropped from them, as from every earlier frame."""
        self.discovery.finish()
        while self.held:
            yield self.without_dropped(*self.held.popleft())

    def without_dropped(self, frame: Frame, fm: FrameMasks) -> tuple[Frame, FrameMasks]:
        dropped = self.discovery.dropped
        keep = [i for i, oid in enumerate(fm.object_ids) if oid not in dropped]
        if len(keep) == len(fm.object_ids):
            return frame, fm
        ids = tuple(fm.object_ids[i] for i in keep)
        labels = tuple(fm.labels[i] for i in keep) if fm.labels else ()
        return frame, FrameMasks(fm.frame_index, ids, fm.masks[keep], fm.scores[keep], labels)
