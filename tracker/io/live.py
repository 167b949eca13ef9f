"""Live sources: streams whose length is not known (URLs FFmpeg reads, standard input, FIFOs, capture
devices), decoded by PyAV in a background thread so that reading never blocks the run forever.

The reader thread hands frames over through a small buffer. ``timeout``: a stream that gives no frame
for that long ends the run cleanly (``ended`` says why). ``realtime``: when the tracker is slower than
the stream, frames it has not taken yet are dropped for the newest one (prompt frames never are);
``skipped`` counts them. Frame indices count from the first frame received.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from pathlib import Path

import av

from ..masks import check_pixels
from ..records import Frame, VideoInfo
from .source import SourceError

log = logging.getLogger(__name__)

STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "udp", "srt", "tcp", "rtp")


def stream_kind(path: str | Path) -> str | None:
    """What kind of live input ``path`` names: "url", "stdin", "fifo", "device", or None (a file)."""
    text = str(path)
    if text == "-":
        return "stdin"
    scheme, sep, _ = text.partition("://")
    if sep:
        if scheme.lower() not in STREAM_SCHEMES:
            raise SourceError(
                f"source.path {text!r}: the scheme {scheme!r} is not a stream FFmpeg reads here: "
                f"use one of {', '.join(STREAM_SCHEMES)}, or a file path"
            )
        return "url"
    try:
        mode = os.stat(text).st_mode
    except OSError:
        return None
    if stat.S_ISFIFO(mode):
        return "fifo"
    if stat.S_ISCHR(mode):
        return "device"
    return None


_END = object()
_STALLED = object()


class LiveSource:
    """Frames of a live stream. ``open()`` waits (at most ``timeout`` s) for the first frame and sets
    ``info`` (``num_frames`` None); ``frames()`` then yields frames as they arrive."""

    def __init__(
        self,
        path: str | Path,
        timeout: float = 10.0,
        realtime: bool = False,
        keep: Iterable[int] = (),
        format: str | None = None,
        options: dict[str, str] | None = None,
        threads: int = 0,
        buffer: int = 8,
    ) -> None:
        self.path = str(path)
        self.timeout = float(timeout)
        self.realtime = bool(realtime)
        self.keep = set(keep)  # prompt frames: never dropped
        self.format, self.options, self.threads = format, dict(options or {}), int(threads)
        self.buffer = max(1, int(buffer))
        self.received = 0
        self.skipped = 0
        self.arrival: dict[int, float] = {}  # frame index -> time.monotonic() when decoded (until taken)
        self.ended: str | None = None  # "end" | "stalled" | "error: ..." | "stopped"
        self.info: VideoInfo | None = None
        self._items: deque = deque()
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._first: Frame | None = None

    # ---- the reader thread -------------------------------------------------------------------
    def _url(self) -> str:
        return "pipe:0" if self.path == "-" else self.path

    def _read(self) -> None:
        container = None
        try:
            # PyAV's timeout (open, read) interrupts FFmpeg's network waits; a FIFO or pipe read that
            # blocks is caught by the consumer's own timeout instead.
            container = av.open(self._url(), format=self.format, options=self.options, timeout=self.timeout)
            if not container.streams.video:
                raise SourceError(f"stream {self.path!r} has no video: give a stream with a picture")
            stream = container.streams.video[0]
            # Slice threads only: frame threading holds frames back (one per thread) and hands them out in
            # bursts, which adds latency and, in real time, makes whole bursts get dropped.
            stream.thread_type = "SLICE"
            rate = stream.average_rate or stream.guessed_rate
            self._fps = float(rate) if rate else None
            t0 = None
            for vf in container.decode(stream):
                if self._stop.is_set():
                    break
                rgb = vf.to_ndarray(format="rgb24")
                now = time.monotonic()
                if vf.time is not None:
                    t0 = vf.time if t0 is None else t0
                    t = float(vf.time - t0)  # seconds from the first frame received
                else:
                    t = None
                self._put(Frame(index=self.received, time=t, rgb=rgb), now)
        except SourceError as e:
            self._put_end(e)
            return
        except av.error.ExitError:  # PyAV's read timeout: nothing came for `timeout` s
            self._put_end(_STALLED if self.received else SourceError(self._silent()))
            return
        except av.error.FFmpegError as e:
            why = " ".join(str(e).split())
            self._put_end(SourceError(f"stream {self.path!r} cannot be read ({why})") if not self.received else why)
            return
        except Exception as e:  # the consumer reports it
            self._put_end(e)
            return
        finally:
            if container is not None:
                container.close()
        self._put_end(None)

    def _put(self, frame: Frame, now: float) -> None:
        with self._cond:
            if self.realtime:
                # Keep up: frames the tracker has not taken are dropped for this one, prompt frames kept.
                kept = deque()
                for item in self._items:
                    if isinstance(item, Frame) and item.index not in self.keep:
                        self.skipped += 1
                        self.arrival.pop(item.index, None)
                    else:
                        kept.append(item)
                self._items = kept
            else:
                while len(self._items) >= self.buffer and not self._stop.is_set():
                    self._cond.wait(0.1)  # the tracker is behind: hold the stream back
            self.received += 1
            self.arrival[frame.index] = now
            self._items.append(frame)
            self._cond.notify_all()

    def _put_end(self, why: object) -> None:
        with self._cond:
            self._items.append((_END, why))
            self._cond.notify_all()

    # ---- the consumer ------------------------------------------------------------------------
    def _take(self, timeout: float):
        end = time.monotonic() + timeout
        with self._cond:
            while not self._items:
                left = end - time.monotonic()
                if left <= 0 or self._stop.is_set():
                    return None
                self._cond.wait(left)
            item = self._items.popleft()
            self._cond.notify_all()
            return item

    def open(self) -> LiveSource:
        self._thread = threading.Thread(target=self._read, name="tracker-live", daemon=True)
        self._thread.start()
        item = self._take(self.timeout)
        if item is None:
            self.close()
            raise SourceError(self._silent())
        if isinstance(item, tuple):
            why = item[1]
            if isinstance(why, Exception):
                raise why if isinstance(why, SourceError) else SourceError(f"stream {self.path!r}: {why}")
            raise SourceError(f"stream {self.path!r} ended before its first frame")
        self._first = item
        h, w = item.rgb.shape[:2]
        check_pixels(w, h, f"stream {self.path!r}")
        self.info = VideoInfo(width=w, height=h, fps=getattr(self, "_fps", None), num_frames=None)
        return self

    def frames(self) -> Iterator[Frame]:
        """Frames as they arrive, until the stream ends, stalls past ``timeout``, or ``close()``."""
        if self._first is None:
            raise RuntimeError("open() the live source first")
        first, self._first = self._first, None
        yield first
        while True:
            item = self._take(self.timeout)
            if item is None:
                if self._stop.is_set():
                    self.ended = "stopped"
                else:
                    self._stalled()
                return
            if isinstance(item, tuple):
                why = item[1]
                if why is None:
                    self.ended = "end"
                elif why is _STALLED:
                    self._stalled()
                else:
                    self.ended = f"error: {why}"
                    log.warning("%s: the stream stopped with an error (%s); keeping what was tracked", self.path, why)
                return
            yield item

    def _stalled(self) -> None:
        self.ended = "stalled"
        log.warning(
            "%s: no frame for %g s (source.timeout): ending with the %d frames received",
            self.path,
            self.timeout,
            self.received,
        )

    def _silent(self) -> str:
        return (
            f"stream {self.path!r} gave no frame within source.timeout={self.timeout:g} s: check that it is "
            "playing, or raise source.timeout"
        )

    def close(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        # A reader blocked in a FIFO or pipe read stays blocked; it is a daemon thread and holds no output.
        if self._thread is not None:
            self._thread.join(timeout=1.0)


def camera_options(width: int | None, height: int | None, fps: float | None) -> dict[str, str]:
    """FFmpeg's v4l2 input options for a capture device."""
    opts: dict[str, str] = {}
    if width and height:
        opts["video_size"] = f"{int(width)}x{int(height)}"
    if fps:
        opts["framerate"] = f"{float(fps):g}"
    return opts


def check_camera(device: str | Path) -> None:
    try:
        mode = os.stat(device).st_mode
    except OSError as e:
        raise SourceError(f"source.device {str(device)!r} cannot be opened ({e.strerror}): e.g. /dev/video0") from None
    if not stat.S_ISCHR(mode):
        raise SourceError(f"source.device {str(device)!r} is not a capture device: give e.g. /dev/video0")
