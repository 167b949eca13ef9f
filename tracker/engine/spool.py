"""Results computed before their frame may be emitted (prompt frames, warm-up and backward passes), parked
on disk until the forward sweep reaches their frame; and the engine's checkpoints.

A resumable run keeps its spool in ``OUT/.resume/spool.bin``, a folder anyone who can write into OUT can
change: the file is plain data (run lengths and scores behind a checked header), never unpickled, and every
length and offset is checked against the file before anything is allocated.
"""

from __future__ import annotations

import os
import struct
import tempfile
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np

from ..masks import mask_from_runs, mask_runs, runs_cover
from ..records import whole

MAGIC = b"TRKSPOOL1\n"
_RECORD = struct.Struct("<4sIIII")  # b"MASK", frame, objects, height, width
_OBJECT = struct.Struct("<qfI")  # object id, score, number of runs (uint32 each, after it)


class CheckpointError(ValueError):
    """A checkpoint's engine state cannot be what this run wrote (damaged or changed): the resume is refused."""


class SpoolError(CheckpointError):
    """The spool file is not what this run wrote (damaged or changed)."""


@dataclass(frozen=True)
class Checkpoint:
    """Yielded by :meth:`Propagator.run` (with ``checkpoint_every``) between frames: everything it needs
    to continue from here, in ``state`` (plain tensors; see :meth:`Propagator.run` ``resume``). Every
    frame before ``emitted`` has been yielded; none after it."""

    stage: str  # warmup | backward | forward
    position: int
    emitted: int
    state: dict


class MaskSpool:
    """Results produced before their frame may be emitted: per frame, records of (object id, score, the
    mask's run lengths) appended to a file."""

    def __init__(self, path: str | None = None, state: dict | None = None, size: tuple[int, int] | None = None) -> None:
        """``path``: a file that outlives the process (resumable runs), else an anonymous temp file.
        ``state`` (from :meth:`state`): reopen ``path`` as it was then. ``size``: (H, W) of every mask in
        it (records of any other size are refused)."""
        self.size = size
        if path is None:
            self._file = tempfile.TemporaryFile(prefix="tracker-spool-")
            self._file.write(MAGIC)
        elif state is None:
            # O_NOFOLLOW: a link planted at the name is refused, never written through.
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
            self._file = os.fdopen(fd, "w+b")
            self._file.write(MAGIC)
        else:
            self._file = _open_checked(path, state, writable=True)
            self._file.truncate(state["length"])
        self._index: dict[int, list[tuple[int, int]]] = {}
        if state is not None:
            self._index = _checked_index(state)

    @staticmethod
    def check(
        path: str,
        state: dict,
        size: tuple[int, int] | None = None,
        frames: int | None = None,
        object_ids: Collection[int] | None = None,
    ) -> None:
        """Refuse (SpoolError) a spool file that is not the one ``state`` describes; changes nothing. Every
        record is read and checked here (frames below ``frames``, masks of ``size``, objects among
        ``object_ids``, scores in [0, 1]), so a resumed run never finds a damaged one half-way."""
        with _open_checked(path, state, writable=False) as f:
            for frame, spans in _checked_index(state, frames).items():
                for offset, length in spans:
                    f.seek(offset)
                    _parse(f.read(length), frame, size, object_ids, build=False)

    def state(self) -> dict:
        self._file.flush()
        return {"length": self._file.seek(0, os.SEEK_END), "index": {k: list(v) for k, v in self._index.items()}}

    def put(self, frame: int, object_ids: Sequence[int], masks: np.ndarray, scores: np.ndarray) -> None:
        """masks: bool [B, H, W]; scores: float [B] (presence probabilities)."""
        n, h, w = masks.shape
        parts = [_RECORD.pack(b"MASK", frame, n, h, w)]
        for oid, m, s in zip(object_ids, masks, scores):
            runs = mask_runs(m)
            parts += [_OBJECT.pack(int(oid), float(s), len(runs)), runs.tobytes()]
        blob = b"".join(parts)
        self._file.seek(0, os.SEEK_END)
        self._index.setdefault(frame, []).append((self._file.tell(), len(blob)))
        self._file.write(blob)

    def pop(self, frame: int) -> dict[int, tuple[np.ndarray, float]]:
        """Frame's results: object id -> (bool [H, W] mask, score)."""
        out: dict[int, tuple[np.ndarray, float]] = {}
        for offset, length in self._index.pop(frame, []):
            self._file.seek(offset)
            out.update(_parse(self._file.read(length), frame, self.size))
        return out

    def close(self) -> None:
        self._file.close()


def _parse(
    blob: bytes,
    frame: int,
    size: tuple[int, int] | None,
    object_ids: Collection[int] | None = None,
    build: bool = True,
) -> dict[int, tuple[np.ndarray, float]]:
    """A record's masks (``build=False``: checked only, no mask is made)."""

    def bad(why: str) -> SpoolError:
        return SpoolError(f"the spool's record of frame {frame} is damaged ({why})")

    if len(blob) < _RECORD.size:
        raise bad("short record")
    magic, f, n, h, w = _RECORD.unpack_from(blob)
    if magic != b"MASK" or f != frame or (size is not None and (h, w) != tuple(size)):
        raise bad("wrong header")
    pos, out = _RECORD.size, {}
    for _ in range(n):
        if pos + _OBJECT.size > len(blob):
            raise bad("short object")
        oid, score, count = _OBJECT.unpack_from(blob, pos)
        pos += _OBJECT.size
        if not 0.0 <= score <= 1.0:  # NaN fails too
            raise bad(f"object {oid} has score {score}")
        if object_ids is not None and oid not in object_ids:
            raise bad(f"object {oid} is not tracked")
        if pos + 4 * count > len(blob):
            raise bad("runs past the record")
        runs = np.frombuffer(blob, dtype="<u4", count=count, offset=pos).astype(np.int64)
        pos += 4 * count
        if not build:
            if not runs_cover(runs, h, w):
                raise bad("its run lengths do not cover the mask")
            continue
        try:
            out[oid] = (mask_from_runs(runs, h, w), float(score))
        except ValueError as e:
            raise bad(str(e)) from None
    if pos != len(blob):
        raise bad("trailing bytes")
    return out


def _open_checked(path: str, state: dict, writable: bool):
    try:
        fd = os.open(path, (os.O_RDWR if writable else os.O_RDONLY) | os.O_NOFOLLOW)
    except OSError as e:
        raise SpoolError(f"the spool {path!r} cannot be opened ({e.strerror})") from None
    f = os.fdopen(fd, "r+b" if writable else "rb")
    length = state.get("length") if isinstance(state, dict) else None
    size = os.fstat(fd).st_size
    if not isinstance(length, int) or not len(MAGIC) <= length <= size or f.read(len(MAGIC)) != MAGIC:
        f.close()
        raise SpoolError(f"the spool {path!r} is not the one the checkpoint wrote ({size} bytes)")
    return f


def _checked_index(state: dict, frames: int | None = None) -> dict[int, list[tuple[int, int]]]:
    """The index, refused unless its frames are in the video and its spans are records that do not
    overlap within the file (which bounds their number by the file's size)."""
    index = state.get("index")
    if not isinstance(index, dict):
        raise SpoolError("the checkpoint's spool index is damaged")
    out: dict[int, list[tuple[int, int]]] = {}
    for frame, spans in index.items():
        if not whole(frame) or frame < 0 or (frames is not None and frame >= frames) or not isinstance(spans, list):
            raise SpoolError(f"the checkpoint's spool index is damaged (frame {str(frame)[:20]})")
        out[frame] = []
        for span in spans:
            if (
                not isinstance(span, (list, tuple))
                or len(span) != 2
                or not all(whole(v) and v >= 0 for v in span)
                or span[0] < len(MAGIC)
                or span[1] < _RECORD.size
                or span[0] + span[1] > state["length"]
            ):
                raise SpoolError(f"the checkpoint's spool index is damaged (frame {frame})")
            out[frame].append((span[0], span[1]))
    end = 0
    for offset, length in sorted(span for spans in out.values() for span in spans):
        if offset < end:
            raise SpoolError(f"the checkpoint's spool index is damaged (records overlap at byte {offset})")
        end = offset + length
    return out
