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


def _cpu_times(cpus: set[int]) -> tuple[int, int] | None:
    """(idle, total) jiffies summed over ``cpus``, from /proc/stat (None where there is none)."""
    try:
        lines = Path("/proc/stat").read_text().splitlines()
    except OSError:
        return None
    idle = total = 0
    for line in lines:
        name, *fields = line.split()
        if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus:
            values = [int(v) for v in fields[:8]]
            idle += values[3] + values[4]  # idle + iowait
            total += sum(values)
    return (idle, total) if total else None


def idle_cores(window: float = 0.25) -> float | None:
    """How many of this process's cores other processes leave idle, sampled over ``window`` seconds."""
    try:
        cpus = set(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None
    a = _cpu_times(cpus)
    time.sleep(window)
    b = _cpu_times(cpus)
    if a is None or b is None or b[1] <= a[1]:
        return None
    return len(cpus) * (b[0] - a[0]) / (b[1] - a[1])


def resolve_threads(value: int | str, jobs: int = 1) -> int:
    """``threads=auto``: the cores this process may use that other processes leave idle (a core counts
    when at least 3/4 idle), shared among the ``jobs`` running at once; else the number.

    Measured on 2 cores (scripts/bench_threads.py, benchmarks/bench_threads_cpu.json): torch's default of
    one thread per core is the fastest on an idle machine but runs about 3x slower beside one other busy
    process (its OpenMP threads wait for each other on a core they do not get), where one thread keeps
    its speed.
    """
    if value != "auto":
        return int(value)
    cores = usable_cores()
    idle = idle_cores()
    free = cores if idle is None else min(cores, int(idle + 0.25))
    return max(1, free // max(1, jobs))


def apply_threads(n: int) -> None:
    """Give torch and OpenCV ``n`` threads (the decoder gets its own count from the source)."""
    import cv2
    import torch

    torch.set_num_threads(n)
    cv2.setNumThreads(n)


def current_threads() -> tuple[int, int]:
    """(torch's, OpenCV's) thread counts now, for :func:`restore_threads`."""
    import cv2
    import torch

    return torch.get_num_threads(), cv2.getNumThreads()


def restore_threads(saved: tuple[int, int]) -> None:
    import cv2
    import torch

    torch.set_num_threads(saved[0])
    cv2.setNumThreads(saved[1])
