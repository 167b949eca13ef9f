"""Video sources: decoded RGB frames with their index and time, streamed, with seeking.

Every source gives ``info`` (a :class:`VideoInfo`) and ``frames(start, stop)``, an iterator over
frames ``start .. stop-1`` in presentation order that seeks instead of decoding the prefix.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from .records import Frame, VideoInfo

log = logging.getLogger(__name__)


class SourceError(ValueError):
    """The input cannot be read as a video."""


def _check_file(path: Path) -> None:
    if not path.exists():
        raise SourceError(f"video {str(path)!r} does not exist: check source.path")
    if path.is_file() and path.stat().st_size == 0:
        raise SourceError(f"video {str(path)!r} is empty (0 bytes): give a real video file")


class PyAVSource:
    """PyAV (FFmpeg) decoder. Frame indices follow presentation order, from an index of packet
    timestamps read once at open (demuxing only, no decoding), which also gives the frame count and
    the exact timestamps of variable-frame-rate files."""

    def __init__(self, path: str | Path, threads: int = 0) -> None:
        self.path = Path(path)
        _check_file(self.path)
        self.threads = threads
        try:
            container = av.open(str(self.path))
        except (av.error.InvalidDataError, av.error.FFmpegError, UnicodeDecodeError) as e:
            raise SourceError(f"video {str(self.path)!r} cannot be opened ({e}): give a readable video file") from None
        with container:
            if not container.streams.video:
                raise SourceError(
                    f"video {str(self.path)!r} has no video stream (audio only?): give a file with a picture"
                )
            stream = container.streams.video[0]
            has_audio = bool(container.streams.audio)
            pts = []
            try:
                for packet in container.demux(stream):
                    if packet.size and packet.pts is not None:
                        pts.append(packet.pts)
            except av.error.FFmpegError as e:
                log.warning("%s: demuxing stopped early (%s); using the %d frames before it", self.path, e, len(pts))
            width, height = stream.codec_context.width, stream.codec_context.height
            rate = stream.average_rate or stream.guessed_rate
            self._time_base = stream.time_base or Fraction(1, 1)
        if not pts:
            raise SourceError(f"video {str(self.path)!r} has no decodable video frames: the file is damaged")
        self._pts = sorted(set(pts))
        self._index = {p: i for i, p in enumerate(self._pts)}
        self.info = VideoInfo(
            width=width,
            height=height,
            fps=float(rate) if rate else None,
            num_frames=len(self._pts),
            time_base=float(self._time_base),
            has_audio=has_audio,
        )

    @property
    def pts(self) -> list[int]:
        return self._pts

    def frames(self, start: int = 0, stop: int | None = None) -> Iterator[Frame]:
        n = len(self._pts)
        stop = n if stop is None else min(stop, n)
        if start >= stop:
            return
        with av.open(str(self.path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            if self.threads:
                stream.codec_context.thread_count = self.threads
            if start > 0:
                # Seeks land on the I-frame at or before the target; decode forward from there.
                container.seek(self._pts[start], stream=stream, backward=True, any_frame=False)
            first_pts, last_pts = self._pts[start], self._pts[stop - 1]
            try:
                for vf in container.decode(stream):
                    if vf.pts is None:
                        continue
                    if vf.pts < first_pts:
                        continue
                    i = self._index.get(vf.pts)
                    if i is None:
                        i = bisect.bisect_left(self._pts, vf.pts)
                        if i >= n:
                            break
                    yield Frame(index=i, time=float(vf.pts * self._time_base), rgb=_to_rgb(vf))
                    if vf.pts >= last_pts:
                        break
            except av.error.FFmpegError as e:
                log.warning("%s: decoding stopped at an error (%s)", self.path, e)


def _to_rgb(vf: av.VideoFrame) -> np.ndarray:
    rgb = vf.to_ndarray(format="rgb24")
    rotation = getattr(vf, "rotation", 0) or 0
    # Display-matrix rotation (phones): PyAV reports degrees counter-clockwise.
    k = int(round(rotation / 90.0)) % 4
    return np.ascontiguousarray(np.rot90(rgb, k=k)) if k else rgb


def open_source(kind: str, path: str | Path, **kwargs) -> PyAVSource:
    if kind == "pyav":
        return PyAVSource(path, **kwargs)
    raise SourceError(f"source kind {kind!r} is unknown: use pyav, decord, opencv or images")
