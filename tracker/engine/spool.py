"""Results computed before their frame may be emitted (prompt frames, warm-up and backward passes), parked
on disk as COCO RLE until the forward sweep reaches their frame; and the engine's checkpoints."""

from __future__ import annotations

import io
import pickle
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pycocotools import mask as mask_utils


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
    """Results produced before their frame may be emitted, as COCO RLE in a temp file on disk."""

    def __init__(self, path: str | None = None, state: dict | None = None) -> None:
        """``path``: a file that outlives the process (resumable runs), else an anonymous temp file.
        ``state`` (from :meth:`state`): reopen ``path`` as it was then."""
        if path is None:
            self._file = tempfile.TemporaryFile(prefix="tracker-spool-")
        elif state is None:
            self._file = open(path, "w+b")
        else:
            self._file = open(path, "r+b")
            self._file.truncate(state["length"])
        self._index: dict[int, list[tuple[int, int]]] = dict(state["index"]) if state else {}

    def state(self) -> dict:
        self._file.flush()
        return {"length": self._file.seek(0, io.SEEK_END), "index": {k: list(v) for k, v in self._index.items()}}

    def put(self, frame: int, object_ids: Sequence[int], masks: np.ndarray, scores: np.ndarray) -> None:
        rles = mask_utils.encode(np.asfortranarray(masks.transpose(1, 2, 0).astype(np.uint8)))
        blob = pickle.dumps((tuple(object_ids), rles, scores.astype(np.float32)))
        self._file.seek(0, io.SEEK_END)
        self._index.setdefault(frame, []).append((self._file.tell(), len(blob)))
        self._file.write(blob)

    def pop(self, frame: int) -> dict[int, tuple[np.ndarray, float]]:
        out: dict[int, tuple[np.ndarray, float]] = {}
        for offset, length in self._index.pop(frame, []):
            self._file.seek(offset)
            ids, rles, scores = pickle.loads(self._file.read(length))
            masks = mask_utils.decode(rles)
            for i, oid in enumerate(ids):
                out[oid] = (masks[:, :, i].astype(bool), float(scores[i]))
        return out

    def close(self) -> None:
        self._file.close()
