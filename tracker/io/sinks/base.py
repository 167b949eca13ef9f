"""The sinks' base: a context manager with ``write(frame, masks)`` that writes ``<target>.partial`` and
renames it into place only when the ``with`` block ends without an error (a crash or Ctrl-C never leaves a
file that looks complete); what a sink can do beyond that (go live, be resumed) it declares."""

from __future__ import annotations

import json
import logging
import os
import shutil
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from ...files import write_atomic
from ...records import EVERY_FRAME, Frame, FrameMasks, FrameRange, VideoInfo, whole
from ...settings import record_from

log = logging.getLogger("tracker.io.sinks")


class Sink:
    """Base: a target path written as ``<target>.partial`` and renamed on success."""

    live = False  # see make_live
    clip: FrameRange = EVERY_FRAME  # the frames the run reads: frame numbers written are the video's (FrameRange)

    def __init__(self, target: Path) -> None:
        self.target = Path(target)
        self.partial = self.target.with_name(self.target.name + ".partial")
        self.frames_written = 0

    def make_live(self) -> Sink:
        """Write under the final name, valid up to the last frame written, and finalise it however the
        run ends (a live stream's outputs are its product while it runs)."""
        self.live = True
        self.partial = self.target
        return self

    _resume: dict | None = None
    keep_on_failure = False  # a resumable run keeps its partial outputs when it fails (for resume=true)

    def make_resumable(self) -> Sink:
        """Keep the partial output when the run fails (``resume=true`` continues it); sinks that must write
        differently to be resumed say so here."""
        self.keep_on_failure = True
        return self

    def __enter__(self) -> Sink:
        if self._resume is not None:
            self.reopen(self._resume)
            self.frames_written = self._resume["frames"]
        else:
            self._remove(self.partial)
            self.open()
        return self

    # A resumable run checkpoints every sink's position; a resumed one reopens its partial output there.
    def position(self) -> dict:
        """Flush, and say where the output stands after the frames written so far (``frames``: their
        count; the rest is the sink's own)."""
        raise NotImplementedError(f"{type(self).__name__} cannot be resumed")

    def reopen(self, position: dict) -> None:
        """Open the partial output as it was at ``position``, dropping what was written after it."""
        raise NotImplementedError(f"{type(self).__name__} cannot be resumed")

    def check_position(self, position: Any, emitted: int) -> str | None:
        """What is wrong with ``position`` for a run that emitted ``emitted`` frames, or None: it is read
        from a checkpoint in OUT/.resume, which anyone may have written. Subclasses check their own fields."""
        if not isinstance(position, dict):
            return "not a position"
        if not whole(position.get("frames")) or position["frames"] != emitted:
            return f"frames={position.get('frames')!r}, not {emitted}"
        return None

    def resume_from(self, position: dict) -> Sink:
        self._resume = position
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        ok = exc_type is None or self.live
        try:
            self.close(ok=ok)
        except Exception as e:
            if not self.keep_on_failure:
                self._remove(self.partial)
            if ok:
                raise
            # Closing after another failure: that failure is the one to report.
            log.debug("%s: close after a failure raised %s", self.target.name, e)
            return
        if self.live:
            return
        if ok:
            self._remove(self.target)
            os.replace(self.partial, self.target)
        elif not self.keep_on_failure:
            self._remove(self.partial)

    @staticmethod
    def _remove(path: Path) -> None:
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()

    def open(self) -> None:
        raise NotImplementedError

    def write(self, frame: Frame, masks: FrameMasks) -> None:
        raise NotImplementedError

    def close(self, ok: bool) -> None:
        raise NotImplementedError


class TextSink(Sink):
    """A sink writing one text file ``self._f``: resumable by its byte offset."""

    def position(self) -> dict:
        self._f.flush()
        return {"frames": self.frames_written, "bytes": self._f.tell()}

    def check_position(self, position: Any, emitted: int) -> str | None:
        return super().check_position(position, emitted) or bytes_within(position, "bytes", self.partial)

    def reopen(self, position: dict) -> None:
        self._f = open(self.partial, "r+", newline="")
        self._f.truncate(position["bytes"])
        self._f.seek(position["bytes"])


class TrackTextSink(TextSink):
    """MOT and MOTS text: object classes from their labels, named in ``tracks_labels.txt`` beside it."""

    def __init__(self, target: Path, labels: Mapping[int, str | None] | None = None) -> None:
        super().__init__(target)
        self.labels = labels or {}
        self.classes = class_names(self.labels)

    def close(self, ok: bool) -> None:
        self._f.close()
        if ok:
            write_class_names(self.target, self.classes)


class FrameFilesSink(Sink):
    """A folder with a file per frame (``<index>.<ext>``, ``pattern`` matches them): resumable by the index
    of the next frame to write (files after a checkpoint are dropped)."""

    pattern = "*"

    def close(self, ok: bool) -> None:
        pass

    def position(self) -> dict:
        return {"frames": self.frames_written, "next": getattr(self, "_next", 0)}

    def check_position(self, position: Any, emitted: int) -> str | None:
        return super().check_position(position, emitted) or next_within(position, self.clip.next_after(emitted))

    def reopen(self, position: dict) -> None:
        self._next = position["next"]
        drop_frames_from(self.partial, self.pattern, self._next)


def bytes_within(position: dict, key: str, path: Path) -> str | None:
    """None if ``position[key]`` is an offset within the regular file ``path`` (not a link), else why not."""
    try:
        st = os.lstat(path)
        size = st.st_size if stat.S_ISREG(st.st_mode) else -1
    except OSError:
        size = -1
    value = position.get(key)
    if not whole(value) or not 0 <= value <= size:
        return f"{key}={value!r}, not within {path.name} ({max(size, 0)} bytes)"
    return None


def next_within(position: dict, bound: int) -> str | None:
    """None if ``position["next"]`` (the frame number a per-frame sink writes next) is 0 to ``bound``."""
    value = position.get("next")
    return None if whole(value) and 0 <= value <= bound else f"next={value!r}, not 0 to {bound}"


def drop_frames_from(folder: Path, pattern: str, first: int) -> None:
    """Remove per-frame files ``<index>.<ext>`` with an index >= ``first`` (written after a checkpoint)."""
    for f in folder.glob(pattern):
        if f.stem.isdigit() and int(f.stem) >= first:
            f.unlink()


def write_class_names(beside: Path, classes: list[str]) -> None:
    """``tracks_labels.txt`` beside a MOT / MOTS file, in the same staged set: line k names class k."""
    beside.with_name("tracks_labels.txt").write_text("".join(f"{c}\n" for c in classes))


def class_names(labels: Mapping[int, str | None]) -> list[str]:
    """Category names, sorted: the objects' labels, "object" for those without one."""
    return sorted({name or "object" for name in labels.values()} or {"object"})


def class_index(classes: list[str], labels: Mapping[int, str | None], object_id: int) -> int:
    """The 0-based class of an object. One that joined mid-run may bring "object" with it: it is added
    at the end, so the classes already written keep their numbers."""
    name = labels.get(object_id) or "object"
    if name not in classes:
        classes.append(name)
    return classes.index(name)


def write_json_atomic(path: Path, data: dict) -> None:
    write_atomic(path, json.dumps(data, indent=1, default=str) + "\n")


def frame_name(index: int) -> str:
    """The file name of frame ``index`` wherever frames are written (``frames/``, ``yolo/images/``, COCO's
    ``file_name``)."""
    return f"{index:05d}.jpg"


class FrameImages:
    """JPEGs of the source frames for the sinks that write them (``sink.frames=true``): a frame is encoded
    once; a second sink writing the same frame gets a hard link to the first file (all of them are in the
    run's own staging folder). Sinks write one frame after another, so one frame is remembered."""

    def __init__(self, quality: int = 95) -> None:
        self.quality = int(quality)
        self._last: tuple[int, Path] | None = None

    def place(self, folder: Path, frame: Frame) -> Path:
        target = folder / frame_name(frame.index)
        tmp = target.with_name(target.name + ".tmp")
        tmp.unlink(missing_ok=True)
        linked = False
        if self._last is not None and self._last[0] == frame.index and self._last[1].is_file():
            try:
                os.link(self._last[1], tmp)
                linked = True
            except OSError:
                pass
        if not linked:
            import cv2

            bgr = cv2.cvtColor(frame.rgb, cv2.COLOR_RGB2BGR)
            ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
            if not ok:
                raise OSError(f"frame {frame.index} cannot be encoded as JPEG")
            tmp.write_bytes(data.tobytes())
        # Renamed into place: a live reader never sees half a JPEG, and a link planted at the name is
        # replaced, not written through.
        os.replace(tmp, target)
        self._last = (frame.index, target)
        return target


@dataclass(frozen=True)
class SinkContext:
    """What a sink is made from: the folder its files go to (the staged set), the video, the objects'
    labels, the source's file name and audio, the ``sink.*`` settings, and the frames' JPEGs when
    ``sink.frames=true`` (``images``; None otherwise). ``settings``: each sink's own settings record
    (:attr:`SinkKind.settings`), by key."""

    folder: Path
    info: VideoInfo
    labels: Mapping[int, str | None]
    video_name: str
    audio_from: Path | None
    settings: Mapping[str, Any]
    images: FrameImages | None = None


@dataclass(frozen=True)
class SinkKind:
    """A registered sink: its ``sink.<key>`` switch, the names it writes into OUT, its factory, and what it
    can do: ``resumable`` (``position`` / ``reopen``: a killed run continues it), ``live`` (``make_live``:
    written under its final name while a stream runs). ``settings``: the record of its own ``sink.*`` keys
    (a frozen dataclass whose fields are the keys, with their defaults, that checks itself and says the key
    and the fix), or None."""

    key: str
    files: tuple[str, ...]
    make: Callable[[SinkContext], Sink]
    resumable: bool = True
    live: bool = True
    settings: type | None = None


SINKS: dict[str, SinkKind] = {}


def register(
    key: str,
    files: tuple[str, ...],
    make: Callable[[SinkContext], Sink],
    resumable: bool = True,
    live: bool = True,
    settings: type | None = None,
) -> None:
    """Make ``sink.<key>`` a sink (a module of this package, or a plug-in's)."""
    if key in SINKS:
        raise ValueError(f"sink.{key} is registered twice ({SINKS[key].make.__module__}): give the new one another key")
    SINKS[key] = SinkKind(key, files, make, resumable, live, settings)


def sink_settings(sink: Mapping[str, Any]) -> dict[str, Any]:
    """Each registered sink's settings record, from the ``sink`` config node (its keys beside the switches);
    a bad value raises the record's one-line ValueError."""
    return {key: record_from(kind.settings, sink) for key, kind in SINKS.items() if kind.settings is not None}
