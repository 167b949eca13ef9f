"""Threads: a bounded background producer (an iterator run in a worker thread, at most ``depth`` items
ahead; its errors re-raised in the consumer), and how many compute threads a run may use.
"""

from __future__ import annotations

import math
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
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


def usable_cores() -> int:
    """Cores this process may use: its CPU affinity, capped by a cgroup CPU quota (containers)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    quota = _cgroup_quota()
    if quota is not None:
        cores = min(cores, max(1, math.ceil(quota)))
    return max(1, cores)


def _cgroup_quota() -> float | None:
    try:  # cgroup v2: "max 100000" or "200000 100000"
        q, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        return None if q == "max" else int(q) / int(period)
    except (OSError, ValueError):
        pass
    try:  # cgroup v1
        q = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        period = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
        return None if q <= 0 else q / period
    except (OSError, ValueError):
        return None


def resolve_threads(value: int | str, jobs: int = 1) -> int:
    """``threads=auto``: the usable cores shared among the ``jobs`` running at once; else the number."""
    if value == "auto":
        return max(1, usable_cores() // max(1, jobs))
    return int(value)


def apply_threads(n: int) -> None:
    """Give torch and OpenCV ``n`` threads (the decoder gets its own count from the source)."""
    import cv2
    import torch

    torch.set_num_threads(n)
    cv2.setNumThreads(n)
