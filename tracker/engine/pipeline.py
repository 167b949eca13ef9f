"""The run: source -> propagation -> sinks, with decode and encode overlapping the model in bounded
background threads. No Hydra here: the CLI turns its config into these plain arguments."""

from __future__ import annotations

import logging
import queue
import resource
import threading
import time
from collections.abc import Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

from ..io.clip import ClipSource
from ..io.sinks import Sink
from ..records import Frame, FrameMasks
from .propagation import FrameSource, Propagator

log = logging.getLogger("tracker")

ESTIMATE_AFTER = 3  # frames timed after the first (which carries the start-up) before the estimate is said
ESTIMATE_MIN_S = 60.0  # a run expected to end sooner than this gets no estimate
QUICK_SIZE = 512  # the image size the estimate suggests when the model's is larger

_END = object()


@dataclass
class Timings:
    decode_s: float = 0.0
    model_s: float = 0.0
    encode_s: float = 0.0
    wall_s: float = 0.0
    frames: int = 0
    compile_s: float = 0.0  # of model_s, torch.compile's (model.compile; a cached compile loads in seconds)

    def as_dict(self) -> dict:
        fps = self.frames / self.wall_s if self.wall_s > 0 else None
        return {
            "frames": self.frames,
            "wall_s": round(self.wall_s, 3),
            "decode_s": round(self.decode_s, 3),
            "model_s": round(self.model_s, 3),
            "encode_s": round(self.encode_s, 3),
            "compile_s": round(self.compile_s, 3),
            "fps": round(fps, 3) if fps else None,
        }


class SinkWriter:
    """Feeds (frame, masks) to every sink in a background thread through a bounded queue."""

    def __init__(self, sinks: Sequence[Sink], depth: int, timings: Timings, in_video=None) -> None:
        self.sinks, self.timings, self.in_video = list(sinks), timings, in_video
        self._q: queue.Queue = queue.Queue(max(1, depth))
        self._error: BaseException | None = None
        self._th = threading.Thread(target=self._work, name="tracker-encode", daemon=True)
        self._th.start()

    def _work(self) -> None:
        while True:
            item = self._q.get()
            try:
                if item is _END:
                    return
                if self._error is not None:
                    continue  # drain after a failure so the producer never blocks
                t0 = time.perf_counter()
                frame, masks = item
                if self.in_video is not None:  # a run over part of a video: outputs speak its frame numbers
                    frame, masks = self.in_video(frame, masks)
                masks = masks.exclusive()  # every output holds one object per pixel (FrameMasks.exclusive)
                for s in self.sinks:
                    s.write(frame, masks)
                self.timings.encode_s += time.perf_counter() - t0
            except BaseException as e:
                self._error = e
            finally:
                self._q.task_done()

    def drain(self) -> None:
        """Wait until every frame put so far is written (the sinks are then idle)."""
        self._q.join()
        if self._error is not None:
            raise self._error

    def put(self, frame: Frame, masks: FrameMasks) -> None:
        if self._error is not None:
            raise self._error
        self._q.put((frame, masks))

    def abort(self) -> None:
        """Stop after a failure elsewhere; the sinks' own errors no longer matter."""
        self._error = self._error or RuntimeError("aborted")
        self._q.put(_END)
        self._th.join(timeout=30)

    def finish(self) -> None:
        self._q.put(_END)
        self._th.join()
        if self._error is not None:
            raise self._error


@contextmanager
def _entered(sinks: Sequence[Sink]):
    """Every sink entered (opened), and exited in reverse order however the run ends."""
    with ExitStack() as stack:
        for s in sinks:
            stack.enter_context(s)
        yield sinks


def _duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    if minutes < 1:
        return f"{seconds:.0f} s"
    return f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{minutes} min"


def estimate_line(per_frame: float, frames_left: int, image_size: int | None) -> str:
    """What the rest of a run will take, said once early: '~15 s/frame: about 1 h 15 min for the 300
    frames left; model.image_size=512 is roughly 4x faster'."""
    line = f"~{per_frame:.2g} s/frame: about {_duration(per_frame * frames_left)} for the {frames_left} frames left"
    if image_size is not None and image_size > QUICK_SIZE:
        # SAM 2's cost grows with the pixels it sees (the encoder and the memory attention alike).
        line += f"; model.image_size={QUICK_SIZE} is roughly {(image_size / QUICK_SIZE) ** 2:.0f}x faster"
    return line


class Estimate:
    """Times the frames after the first and logs :func:`estimate_line` once, for runs long enough to care."""

    def __init__(self, total: int | None, image_size: int | None, clock=time.perf_counter) -> None:
        self.total, self.image_size, self.clock = total, image_size, clock
        self._first: float | None = None

    def frame(self, done: int) -> None:
        if self.total is None:
            return
        if done == 1:
            self._first = self.clock()
        elif done == 1 + ESTIMATE_AFTER and self._first is not None:
            per_frame = (self.clock() - self._first) / ESTIMATE_AFTER
            left = self.total - done
            if per_frame * left >= ESTIMATE_MIN_S:
                log.info(estimate_line(per_frame, left, self.image_size))


def peak_rss_mib() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def run_pipeline(
    propagator: Propagator,
    source: FrameSource,
    prompts: Sequence,
    object_ids: Sequence[int],
    sinks: Sequence[Sink],
    progress: bool = True,
    queue_depth: int = 8,
    on_checkpoint=None,
    resume: dict | None = None,
) -> Timings:
    """Track ``prompts`` through ``source`` into ``sinks``. Sinks are entered here: they are renamed into
    place only if the whole run succeeds.

    ``on_checkpoint(checkpoint, positions)``: at each :class:`Checkpoint` of the propagator (made with
    ``checkpoint_every``), once every frame before it is written; ``positions`` is each sink's
    ``position()``, in ``sinks`` order. ``resume``: a checkpoint's engine state to continue from (the
    sinks were given their positions with ``resume_from``)."""
    from tqdm import tqdm

    from .propagation import Checkpoint

    timings = Timings()
    t_start = time.perf_counter()
    n = source.info.num_frames
    with _entered(sinks) as sinks:
        in_video = source.in_video if isinstance(source, ClipSource) else None
        writer = SinkWriter(sinks, queue_depth, timings, in_video)
        bar = tqdm(total=n, unit="frame", disable=not progress, dynamic_ncols=True, desc="tracking")
        estimate = Estimate(n, getattr(propagator.model, "image_size", None))
        try:
            for item in propagator.run(source, prompts, object_ids, resume=resume):
                if isinstance(item, Checkpoint):
                    writer.drain()
                    if on_checkpoint is not None:
                        on_checkpoint(item, [s.position() for s in sinks])
                    continue
                frame, masks = item
                writer.put(frame, masks)
                timings.frames += 1
                bar.update(1)
                estimate.frame(timings.frames)
        except BaseException:
            writer.abort()
            raise
        finally:
            bar.close()
        writer.finish()
    timings.wall_s = time.perf_counter() - t_start
    timings.model_s = propagator.model.seconds
    timings.compile_s = propagator.model.compile_seconds
    timings.decode_s = propagator.decode_seconds
    return timings


class LatencyStats:
    """Percentiles of a stream of latencies in bounded memory: a 1 ms histogram up to 60 s."""

    def __init__(self, max_ms: int = 60_000) -> None:
        import numpy as np

        self._np = np
        self.counts = np.zeros(max_ms + 1, dtype=np.int64)
        self.n = 0

    def add(self, seconds: float) -> None:
        self.counts[min(int(seconds * 1000.0), len(self.counts) - 1)] += 1
        self.n += 1

    def percentile(self, q: float) -> float | None:
        if not self.n:
            return None
        rank = self._np.searchsorted(self._np.cumsum(self.counts), q / 100.0 * self.n)
        return float(min(rank, len(self.counts) - 1))

    def as_dict(self) -> dict:
        return {"p50_ms": self.percentile(50), "p95_ms": self.percentile(95), "frames": self.n}


def run_live_pipeline(
    propagator: Propagator,
    frames,
    info,
    prompts: Sequence,
    object_ids: Sequence[int],
    sinks: Sequence[Sink],
    arrival: dict[int, float],
    on_frame=None,
    progress: bool = True,
    queue_depth: int = 8,
) -> tuple[Timings, LatencyStats]:
    """Track ``frames`` of unknown count online into live sinks (written under their final names).

    ``arrival``: frame index -> ``time.monotonic()`` when it was decoded (popped here): the latency to its
    masks is measured. ``on_frame(timings, latency)`` is called after every frame (run.json updates).
    Whatever ends the run (the stream's end, a stall, a signal), the frames already tracked are written
    and every sink is finalised."""
    from tqdm import tqdm

    timings, latency = Timings(), LatencyStats()
    t_start = time.perf_counter()
    with _entered(sinks) as sinks:
        writer = SinkWriter(sinks, queue_depth, timings)
        bar = tqdm(total=None, unit="frame", disable=not progress, dynamic_ncols=True, desc="tracking (live)")
        try:
            for frame, masks in propagator.run_online(frames, prompts, object_ids, info):
                arrived = arrival.pop(frame.index, None)
                if arrived is not None:
                    latency.add(time.monotonic() - arrived)
                writer.put(frame, masks)
                timings.frames += 1
                timings.wall_s = time.perf_counter() - t_start
                bar.update(1)
                if on_frame is not None:
                    on_frame(timings, latency)
        finally:
            bar.close()
            # Also after a signal: what was tracked is written, the frames held back for confirmation too.
            try:
                for frame, masks in propagator.release_held():
                    writer.put(frame, masks)
                    timings.frames += 1
            finally:
                writer.finish()
    timings.wall_s = time.perf_counter() - t_start
    timings.model_s = propagator.model.seconds
    timings.compile_s = propagator.model.compile_seconds
    timings.decode_s = propagator.decode_seconds
    return timings, latency
