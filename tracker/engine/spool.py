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
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..masks import mask_from_runs, mask_runs

MAGIC = b"TRKSPOOL1\n"
_RECORD = struct.Struct("<4sIIII")  # b"MASK", frame, objects, height, width
_OBJECT = struct.Struct("<qfI")  # object id, score, number of runs (uint32 each, after it)


class SpoolError(ValueError):
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
    def check(path: str, state: dict) -> None:
        """Refuse (SpoolError) a spool file that is not the one ``state`` describes; changes nothing."""
        _open_checked(path, state, writable=False).close()
        _checked_index(state)

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


def _parse(blob: bytes, frame: int, size: tuple[int, int] | None) -> dict[int, tuple[np.ndarray, float]]:
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
        if pos + 4 * count > len(blob):
            raise bad("runs past the record")
        runs = np.frombuffer(blob, dtype="<u4", count=count, offset=pos).astype(np.int64)
        pos += 4 * count
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


def _checked_index(state: dict) -> dict[int, list[tuple[int, int]]]:
    index = state.get("index")
    if not isinstance(index, dict):
        raise SpoolError("the checkpoint's spool index is damaged")
    out: dict[int, list[tuple[int, int]]] = {}
    for frame, spans in index.items():
        if not isinstance(frame, int) or not isinstance(spans, list):
            raise SpoolError("the checkpoint's spool index is damaged")
        out[frame] = []
        for span in spans:
            if (
                not isinstance(span, (list, tuple))
                or len(span) != 2
                or not all(isinstance(v, int) and v >= 0 for v in span)
                or span[0] < len(MAGIC)
                or span[0] + span[1] > state["length"]
            ):
                raise SpoolError(f"the checkpoint's spool index is damaged (frame {frame})")
            out[frame].append((span[0], span[1]))
    return out
