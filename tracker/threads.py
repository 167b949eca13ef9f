"""A bounded background producer: runs an iterator in a worker thread, at most ``depth`` items ahead.

Errors in the worker are re-raised in the consumer; closing the consumer's generator stops the worker.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
_END = object()


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def in_background(
    items: Iterable[T], depth: int, name: str, on_time: Callable[[float], None] | None = None
) -> Iterator[T]:
    """Yield ``items`` produced by a worker thread; ``on_time`` gets the seconds spent producing each."""
    q: queue.Queue = queue.Queue(max(1, depth))
    stopping = threading.Event()

    def put(item: object) -> bool:
        while not stopping.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            it = iter(items)
            while True:
                t0 = time.perf_counter()
                item = next(it, _END)
                if on_time is not None:
                    on_time(time.perf_counter() - t0)
                if not put(item) or item is _END:
                    return
        except BaseException as e:  # handed to the consumer
            put(_Failed(e))

    th = threading.Thread(target=work, name=name, daemon=True)
    th.start()
    try:
        while True:
            item = q.get()
            if item is _END:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item
    finally:
        stopping.set()
        th.join(timeout=5)
