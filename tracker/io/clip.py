"""Part of a video as a video of its own: the frames a :class:`~tracker.records.FrameRange` picks, numbered
0, 1, 2, ... for the engine (whose memory counts frames, not the video's numbers), each keeping its time."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

from ..records import Frame, FrameMasks, FrameRange, FrameSource, VideoInfo
from .source import ImageFolderSource, SourceError


class ClipSource:
    """``source``'s frames in ``frames``: ``info.num_frames`` is how many the run reads, ``info.fps`` their
    rate; ``has_audio`` only when the run starts at frame 0 and reads to the end (the annotated video's
    sound would otherwise start or end elsewhere than its pictures)."""

    def __init__(self, source: FrameSource, frames: FrameRange) -> None:
        info = source.info
        try:
            frames.check_against(info.num_frames)
        except ValueError as e:
            raise SourceError(str(e)) from None
        n = frames.count(info.num_frames)
        self.source, self.range = source, frames
        whole_length = frames.start == 0 and frames.stop is None and frames.max_frames is None
        self.info: VideoInfo = replace(
            info,
            num_frames=n,
            fps=info.fps / frames.stride if info.fps else info.fps,
            has_audio=info.has_audio and whole_length,
        )

    def frames(self, start: int = 0, stop: int | None = None) -> Iterator[Frame]:
        """The run's frames ``start .. stop-1`` (its own numbers), decoded from the video's."""
        n = self.info.num_frames
        stop = n if stop is None else (stop if n is None else min(stop, n))
        if stop is not None and stop <= start:
            return
        step = self.range.stride
        first = self.range.video_frame(start)
        end = None if stop is None else self.range.video_frame(stop - 1) + 1
        if step > 1 and isinstance(self.source, ImageFolderSource):
            # Files are read one by one: the frames between are never opened.
            picks = (self.source.frames(f, f + 1) for f in range(first, end or first, step))
            decoded: Iterator[Frame] = (f for one in picks for f in one)
        else:
            decoded = (f for f in self.source.frames(first, end) if (f.index - first) % step == 0)
        for k, frame in enumerate(decoded):
            yield Frame(index=start + k, time=frame.time, rgb=frame.rgb)

    def in_video(self, frame: Frame, masks: FrameMasks) -> tuple[Frame, FrameMasks]:
        """A run's frame and its masks under the video's frame number (what outputs write)."""
        f = self.range.video_frame(frame.index)
        return Frame(index=f, time=frame.time, rgb=frame.rgb), replace(masks, frame_index=f)


def clipped(source: FrameSource, frames: FrameRange) -> FrameSource:
    """``source`` itself when the run reads every frame, else its :class:`ClipSource`."""
    return source if frames.everything else ClipSource(source, frames)
