"""Random access to a video's frames for the page: JPEG bytes and RGB arrays, in bounded caches, with
the neighbours of each requested frame decoded ahead in the background."""

from __future__ import annotations

import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np

from ..io.source import PyAVSource, SourceError


class _LRU(OrderedDict):
    def __init__(self, capacity: int) -> None:
        super().__init__()
        self.capacity = max(1, int(capacity))

    def get_fresh(self, key):
        if key in self:
            self.move_to_end(key)
            return self[key]
        return None

    def add(self, key, value) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.capacity:
            self.popitem(last=False)


class FrameStore:
    """Frames by index from a source (``info``, ``frames(start, stop)``; a :class:`PyAVSource` keeps one
    decoder open and steps forward instead of seeking). ``jpeg_cache`` encoded frames and ``rgb_cache``
    decoded ones are kept; ``prefetch`` frames after (and one before) each request are made ahead."""

    def __init__(self, source, jpeg_cache: int = 64, rgb_cache: int = 4, prefetch: int = 2, quality: int = 90):
        self.source = source
        self.info = source.info
        self.num_frames = int(source.info.num_frames)
        self._cursor = source.cursor() if isinstance(source, PyAVSource) else None
        self._jpeg = _LRU(jpeg_cache)
        self._rgb = _LRU(rgb_cache)
        self._decode_lock = threading.Lock()  # one decoder
        self._cache_lock = threading.Lock()
        self.prefetch = int(prefetch)
        self.quality = int(quality)
        self._last = -1  # the frame asked for last (which way the page moves)
        self._ahead = ThreadPoolExecutor(max_workers=1, thread_name_prefix="studio-frames") if prefetch else None
        self._queued: set[int] = set()

    def _decode(self, index: int) -> np.ndarray:
        with self._decode_lock:
            if self._cursor is not None:
                return self._cursor.frame(index).rgb
            frame = next(iter(self.source.frames(index, index + 1)), None)
        if frame is None:
            raise SourceError(f"frame {index} cannot be decoded: the video ends before it")
        return frame.rgb

    def rgb(self, index: int) -> np.ndarray:
        """uint8 [H, W, 3] of frame ``index`` (IndexError out of range)."""
        if not 0 <= index < self.num_frames:
            raise IndexError(f"frame {index} is out of range: the video has {self.num_frames} frames")
        with self._cache_lock:
            hit = self._rgb.get_fresh(index)
        if hit is not None:
            return hit
        rgb = self._decode(index)
        with self._cache_lock:
            self._rgb.add(index, rgb)
        return rgb

    def jpeg(self, index: int) -> bytes:
        """Frame ``index`` as JPEG bytes; its neighbours are then made in the background."""
        data = self._jpeg_now(index)
        self._prefetch(index)
        return data

    def _jpeg_now(self, index: int) -> bytes:
        with self._cache_lock:
            hit = self._jpeg.get_fresh(index)
        if hit is not None:
            return hit
        rgb = self.rgb(index)
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        if not ok:
            raise SourceError(f"frame {index} cannot be encoded as JPEG")
        data = buf.tobytes()
        with self._cache_lock:
            self._jpeg.add(index, data)
        return data

    def _prefetch(self, index: int) -> None:
        if self._ahead is None:
            return
        # Forward first: stepping on costs one decoded frame. The frame before costs a seek (up to a GOP
        # of decoding): made ahead only when the page steps back one frame, never while it plays (whose
        # look-ahead requests come before the frame it shows).
        back, self._last = index == self._last - 1, index
        wanted = [index + k for k in range(1, self.prefetch + 1)] + ([index - 1] if back else [])
        for i in wanted:
            if not 0 <= i < self.num_frames:
                continue
            with self._cache_lock:
                if i in self._jpeg or i in self._queued:
                    continue
                self._queued.add(i)
            self._ahead.submit(self._make_ahead, i)

    def _make_ahead(self, index: int) -> None:
        try:
            self._jpeg_now(index)
        except Exception:  # a damaged frame is reported when it is asked for
            pass
        finally:
            with self._cache_lock:
                self._queued.discard(index)

    def close(self) -> None:
        if self._ahead is not None:
            self._ahead.shutdown(wait=True, cancel_futures=True)
        if self._cursor is not None:
            with self._decode_lock:
                self._cursor.close()
