"""Video sources: decoded RGB frames with their index and time, streamed, with seeking.

Every source gives ``info`` (a :class:`VideoInfo`) and ``frames(start, stop)``, an iterator over
frames ``start .. stop-1`` in presentation order that seeks instead of decoding the prefix.
"""

from __future__ import annotations

import bisect
import logging
import stat
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from ..masks import ImageError, check_pixels
from ..records import Frame, FrameSource, VideoInfo
from ..settings import integer, number, record_from, text_or_null
from .images import read_image

log = logging.getLogger(__name__)


class SourceError(ValueError):
    """The input cannot be read as a video."""


def check_source_path(path: str | Path, kind: str = "pyav") -> None:
    """Refuse, without opening it, a path that is not a regular file (a folder for ``images``): a FIFO,
    device or socket would block the decoder; a stream URL or ``-`` is not read as a file."""
    text = str(path)
    folder = kind in SOURCES and SOURCES[kind].folder
    if text == "-" or "://" in text:
        raise SourceError(
            f"source.path {text!r} is a stream, not a file: live sources are not supported yet; "
            "record it to a file first (e.g. ffmpeg -i URL -c copy clip.mp4)"
        )
    p = Path(text)
    try:
        st = p.stat()
    except FileNotFoundError:
        what = "frame folder" if folder else "video"
        raise SourceError(f"{what} {text!r} does not exist: check source.path") from None
    except OSError as e:
        raise SourceError(f"source.path {text!r} cannot be read ({e.strerror}): check the path") from None
    if stat.S_ISDIR(st.st_mode):
        if not folder:
            raise SourceError(f"source.path {text!r} is a folder: use source=images for a folder of frames")
        return
    if folder:
        raise SourceError(f"frame folder {text!r} is not a folder: give a folder of JPEG/PNG frames")
    if not stat.S_ISREG(st.st_mode):
        what = "a pipe (FIFO)" if stat.S_ISFIFO(st.st_mode) else "a device or socket"
        raise SourceError(
            f"source.path {text!r} is {what}, not a file: streams are not supported yet; write it to a file first"
        )
    if st.st_size == 0:
        raise SourceError(f"video {text!r} is empty (0 bytes): give a real video file")


def _check_file(path: Path) -> None:
    check_source_path(path)


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
            keys = []
            try:
                for packet in container.demux(stream):
                    if packet.size and packet.pts is not None:
                        pts.append(packet.pts)
                        if packet.is_keyframe:
                            keys.append(packet.pts)
            except av.error.FFmpegError as e:
                log.warning("%s: demuxing stopped early (%s); using the %d frames before it", self.path, e, len(pts))
            width, height = stream.codec_context.width, stream.codec_context.height
            rate = stream.average_rate or stream.guessed_rate
            self._time_base = stream.time_base or Fraction(1, 1)
        if not pts:
            raise SourceError(f"video {str(self.path)!r} has no decodable video frames: the file is damaged")
        self._pts = sorted(set(pts))
        self._rot_k = 0
        check_pixels(width, height, f"video {str(self.path)!r}")
        self._rot_k = self._rotation_steps()
        if self._rot_k % 2:
            width, height = height, width
        self._index = {p: i for i, p in enumerate(self._pts)}
        self._keys = sorted(self._index[p] for p in set(keys) if p in self._index) or [0]
        self.info = VideoInfo(
            width=width,
            height=height,
            fps=float(rate) if rate else None,
            num_frames=len(self._pts),
            time_base=float(self._time_base),
            has_audio=has_audio,
        )

    def _rotation_steps(self) -> int:
        """Quarter turns (counter-clockwise, for np.rot90) that the display matrix asks for. FFmpeg
        reports the angle per frame; phones write e.g. -90 for portrait video."""
        try:
            with av.open(str(self.path)) as container:
                vf = next(container.decode(video=0))
        except (StopIteration, av.error.FFmpegError):
            raise SourceError(f"video {str(self.path)!r} has no decodable video frames: the file is damaged") from None
        return int(round((getattr(vf, "rotation", 0) or 0) / 90.0)) % 4

    def frames(self, start: int = 0, stop: int | None = None) -> Iterator[Frame]:
        n = len(self._pts)
        stop = n if stop is None else min(stop, n)
        if start >= stop:
            return
        with av.open(str(self.path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO" if self.threads != 1 else "SLICE"
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
                    yield Frame(index=i, time=float(vf.pts * self._time_base), rgb=_to_rgb(vf, self._rot_k))
                    if vf.pts >= last_pts:
                        break
            except av.error.FFmpegError as e:
                log.warning("%s: decoding stopped at an error (%s)", self.path, e)

    def key_frame_before(self, index: int) -> int:
        """The last key frame at or before ``index`` (where a seek for it lands)."""
        return self._keys[max(0, bisect.bisect_right(self._keys, index) - 1)]

    def cursor(self) -> PyAVCursor:
        return PyAVCursor(self)


class PyAVCursor:
    """Random access to single frames of a :class:`PyAVSource` through one open decoder. A frame after
    the last one decoded, with no key frame between them, is reached by decoding on (stepping through
    the video costs one frame); any other by a seek to the key frame before it. Not thread-safe."""

    def __init__(self, source: PyAVSource) -> None:
        self.source = source
        self._container = av.open(str(source.path))
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = "AUTO" if source.threads != 1 else "SLICE"
        if source.threads:
            self._stream.codec_context.thread_count = source.threads
        self._decoded: Iterator[av.VideoFrame] | None = None
        self._next = -1  # index the decoder returns next; -1: unknown, seek first

    def frame(self, index: int) -> Frame:
        src = self.source
        n = len(src._pts)
        if not 0 <= index < n:
            raise IndexError(f"frame {index} is out of range: the video has {n} frames (0..{n - 1})")
        if self._decoded is None or not (self._next <= index and src.key_frame_before(index) <= self._next):
            # Frame threading hands frames out with a delay; a seek also flushes that queue.
            self._container.seek(src._pts[index], stream=self._stream, backward=True, any_frame=False)
            self._decoded = self._container.decode(self._stream)
        try:
            for vf in self._decoded:
                if vf.pts is None:
                    continue
                i = src._index.get(vf.pts, bisect.bisect_left(src._pts, vf.pts))
                self._next = i + 1
                if i == index:
                    return Frame(index=i, time=float(vf.pts * src._time_base), rgb=_to_rgb(vf, src._rot_k))
                if i > index:
                    break
        except av.error.FFmpegError as e:
            log.warning("%s: decoding stopped at an error (%s)", src.path, e)
        self._decoded, self._next = None, -1
        raise SourceError(f"frame {index} of {str(src.path)!r} cannot be decoded: the video is damaged there")

    def close(self) -> None:
        self._container.close()


def _to_rgb(vf: av.VideoFrame, rot_k: int = 0) -> np.ndarray:
    rgb = vf.to_ndarray(format="rgb24")
    return np.ascontiguousarray(np.rot90(rgb, k=rot_k)) if rot_k else rgb


class DecordSource:
    """decord's VideoReader. Its bridge is global state (sam2's loader switches it to torch): we set it
    to native before every read so our frames are always numpy arrays."""

    def __init__(self, path: str | Path) -> None:
        import decord

        self.path = Path(path)
        _check_file(self.path)
        self._decord = decord
        # FFmpeg (PyAV) reads the container first: decord prints its own errors for a damaged file and
        # raises a bare RuntimeError; this way a bad file gets the same one line as with source=pyav.
        try:
            with av.open(str(self.path)) as c:
                has_audio = bool(c.streams.audio)
                if not c.streams.video:
                    raise SourceError(f"video {str(self.path)!r} has no video stream: give a file with a picture")
        except (av.error.FFmpegError, UnicodeDecodeError) as e:
            raise SourceError(f"video {str(self.path)!r} cannot be opened ({e}): give a readable video file") from None
        decord.bridge.set_bridge("native")
        try:
            self._vr = decord.VideoReader(str(self.path), ctx=decord.cpu(0))
            n = len(self._vr)
            h, w = self._vr[0].shape[:2] if n else (0, 0)
        except (decord.DECORDError, RuntimeError) as e:
            why = (str(e).splitlines() or ["error"])[0]
            raise SourceError(f"video {str(self.path)!r} cannot be opened by decord ({why})") from None
        if n == 0:
            raise SourceError(f"video {str(self.path)!r} has no video frames: the file is damaged")
        self._vr.seek(0)
        self.info = VideoInfo(width=w, height=h, fps=float(self._vr.get_avg_fps()), num_frames=n, has_audio=has_audio)

    def frames(self, start: int = 0, stop: int | None = None) -> Iterator[Frame]:
        self._decord.bridge.set_bridge("native")
        n = self.info.num_frames or 0
        stop = n if stop is None else min(stop, n)
        for i in range(start, stop, 16):
            idx = list(range(i, min(i + 16, stop)))
            try:
                batch = self._vr.get_batch(idx).asnumpy()
            except (self._decord.DECORDError, RuntimeError) as e:
                why = (str(e).splitlines() or ["error"])[0]
                raise SourceError(
                    f"video {str(self.path)!r}: decord cannot decode frames {idx[0]}..{idx[-1]} ({why})"
                ) from None
            for j, k in enumerate(idx):
                t = float(self._vr.get_frame_timestamp(k)[0])
                yield Frame(index=k, time=t, rgb=np.ascontiguousarray(batch[j]))


class OpenCVSource:
    """OpenCV's VideoCapture. The frame count is the container's claim (CAP_PROP_FRAME_COUNT)."""

    def __init__(self, path: str | Path) -> None:
        import cv2

        self.path = Path(path)
        _check_file(self.path)
        self._cv2 = cv2
        cap = cv2.VideoCapture(str(self.path))
        try:
            if not cap.isOpened():
                raise SourceError(f"video {str(self.path)!r} cannot be opened by OpenCV: give a readable video file")
            n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
            w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
            fps = cap.get(cv2.CAP_PROP_FPS) or None
        finally:
            cap.release()
        if n <= 0 or w <= 0:
            raise SourceError(f"video {str(self.path)!r} has no video frames OpenCV can read")
        with av.open(str(self.path)) as c:
            has_audio = bool(c.streams.audio)
        self.info = VideoInfo(width=w, height=h, fps=fps, num_frames=n, has_audio=has_audio)

    def frames(self, start: int = 0, stop: int | None = None) -> Iterator[Frame]:
        cv2 = self._cv2
        n = self.info.num_frames or 0
        stop = n if stop is None else min(stop, n)
        cap = cv2.VideoCapture(str(self.path))
        try:
            if start:
                cap.set(cv2.CAP_PROP_POS_FRAMES, start)
            for i in range(start, stop):
                ok, bgr = cap.read()
                if not ok:
                    log.warning("%s: OpenCV stopped at frame %d of %d", self.path, i, n)
                    return
                t = cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
                yield Frame(index=i, time=t, rgb=cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        finally:
            cap.release()


_IMAGE_EXTS = {".jpg", ".jpeg", ".png"}


class ImageFolderSource:
    """A folder of JPEG/PNG frames, in the order of the numbers in their names."""

    def __init__(self, path: str | Path, fps: float = 24.0) -> None:
        import re

        self.path = Path(path)
        check_source_path(self.path, "images")
        files = [p for p in self.path.iterdir() if p.suffix.lower() in _IMAGE_EXTS]
        if not files:
            raise SourceError(f"frame folder {str(self.path)!r} has no .jpg/.png files")

        def key(p: Path) -> tuple[int, str]:
            m = re.findall(r"\d+", p.stem)
            return (int(m[-1]) if m else -1, p.name)

        self._files = sorted(files, key=key)
        first = self._read(self._files[0])
        self.fps = float(fps)
        self.info = VideoInfo(width=first.shape[1], height=first.shape[0], fps=self.fps, num_frames=len(self._files))

    def _read(self, p: Path) -> np.ndarray:
        try:
            return read_image(p, "RGB")
        except ImageError as e:
            raise SourceError(f"frame {e}") from None

    def frames(self, start: int = 0, stop: int | None = None) -> Iterator[Frame]:
        stop = len(self._files) if stop is None else min(stop, len(self._files))
        for i in range(start, stop):
            rgb = self._read(self._files[i])
            if rgb.shape[:2] != (self.info.height, self.info.width):
                raise SourceError(
                    f"frame {self._files[i].name} is {rgb.shape[1]}x{rgb.shape[0]}, the first frame is "
                    f"{self.info.width}x{self.info.height}: all frames must have one size"
                )
            yield Frame(index=i, time=i / self.fps, rgb=rgb)


@dataclass(frozen=True)
class PyAVSettings:
    """``source.threads``: FFmpeg's decoder threads (0: its choice); ``source.timeout``: a live input silent
    this long (s) ends the run cleanly."""

    threads: int = 0
    timeout: float = 10.0

    def __post_init__(self) -> None:
        integer("source.threads", self.threads, 0, 1024, example=0)
        number("source.timeout", self.timeout, 0.1, 86400)


@dataclass(frozen=True)
class ImagesSettings:
    """``source.fps``: the frame rate a folder of frames is given (its frames' times and the video's)."""

    fps: float = 24.0

    def __post_init__(self) -> None:
        number("source.fps", self.fps, 0, 1000, open_lo=True)


@dataclass(frozen=True)
class CameraSettings:
    """A capture device through FFmpeg: ``device``, its ``format`` (FFmpeg's input: v4l2, avfoundation,
    dshow), the size and rate to ask it for (None: its default), and the silence that ends the run."""

    device: str | None = "/dev/video0"
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    format: str | None = "v4l2"
    timeout: float = 10.0

    def __post_init__(self) -> None:
        text_or_null("source.device", self.device)
        text_or_null("source.format", self.format)
        for key, value in (("source.width", self.width), ("source.height", self.height)):
            if value is not None:
                integer(key, value, 16, 16384, example=1280)
        if self.fps is not None:
            number("source.fps", self.fps, 0, 1000, open_lo=True)
        number("source.timeout", self.timeout, 0.1, 86400)


@dataclass(frozen=True)
class SourceKind:
    """A registered source kind (``source=<key>``): how it opens a path, and what it can read. ``folder``:
    a folder of frames, not a file; ``streams``: live inputs too (URLs, ``-``, FIFOs; read online);
    ``device``: a capture device only (``open`` is None: it is always read live); ``audio``: the file may
    carry sound for the annotated video. ``settings``: the record of its own ``source.*`` keys (defaults,
    one-line checks), or None."""

    key: str
    open: Callable[..., Any] | None
    folder: bool = False
    streams: bool = False
    device: bool = False
    audio: bool = True
    settings: type | None = None


SOURCES: dict[str, SourceKind] = {}


def register_source(kind: SourceKind) -> None:
    """Make ``source=<kind.key>`` a source kind (here, or a plug-in's)."""
    if kind.key in SOURCES:
        raise ValueError(f"source kind {kind.key!r} is registered twice: give the new kind another key")
    SOURCES[kind.key] = kind


register_source(SourceKind("pyav", PyAVSource, streams=True, settings=PyAVSettings))
register_source(SourceKind("decord", DecordSource))
register_source(SourceKind("opencv", OpenCVSource))
register_source(SourceKind("images", ImageFolderSource, folder=True, audio=False, settings=ImagesSettings))
# a V4L2 / AVFoundation / DirectShow device through FFmpeg: tracker.io.live.LiveSource reads it
register_source(SourceKind("camera", None, streams=True, device=True, audio=False, settings=CameraSettings))


def source_settings(kind: str, source: Mapping[str, Any]) -> Any:
    """The kind's settings record from the ``source`` config node (None for a kind without one); a bad
    value raises the record's one-line ValueError."""
    record = source_kind(kind).settings
    return None if record is None else record_from(record, source)


def source_kind(kind: str) -> SourceKind:
    if kind not in SOURCES:
        raise SourceError(f"source kind {kind!r} is unknown: use source={', '.join(SOURCES)}")
    return SOURCES[kind]


def open_source(kind: str, path: str | Path, **kwargs: Any) -> FrameSource:
    """Open ``path`` with the named decoder (:data:`SOURCES`: pyav, decord, opencv, images)."""
    k = source_kind(kind)
    if k.open is None:
        raise SourceError(f"source={kind} is read live only: use mode=online")
    return k.open(path, **kwargs)
