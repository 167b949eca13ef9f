"""Online runs (``mode=online``, and every live source): forward-only tracking of a stream whose length
is not known, its outputs written under their final names while it runs.

    tracker source.path=rtsp://camera/stream prompts.path=prompts.yaml          (until the stream ends)
    ffmpeg ... -f mpegts - | tracker source.path=- prompts.box=[10,10,80,80]
    tracker source=camera source.device=/dev/video0 prompts.path=p.yaml live.realtime=true
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..io.live import LiveSource, camera_options, check_camera, stream_kind
from ..io.prompts import PromptError
from ..io.sinks import SINKS, write_json_atomic
from ..io.source import SOURCES, check_source_path, open_source
from .errors import one_line
from .model import build
from .outputs import check_inputs_apart, logged_to, open_sinks, output_folder, planned, run_threads, save_config
from .prepare import make_propagator, prepare
from .prompts import PromptInput, PromptPlan, discovery_record, make_discovery, read_prompts
from .record import base_record
from .spec import RunSpec
from .transaction import LiveOutputs, check_no_earlier_outputs

log = logging.getLogger("tracker")


def live_kind(spec: RunSpec) -> str | None:
    """What kind of stream the source is (device, url, stdin, fifo), None for a file."""
    if SOURCES[spec.source.kind].device:
        return "device"
    return stream_kind(spec.source.path) if spec.source.path else None


class LiveStatus:
    """``run.json`` of an online run, rewritten (atomically) at most every ``every_s`` seconds while it
    runs, with ``state`` running, then complete (the stream ended) or interrupted (a signal)."""

    def __init__(self, path: Path, every_s: float, base: dict[str, Any], source: Any) -> None:
        self.path, self.every_s, self.base, self.source = path, float(every_s), base, source
        self._last = 0.0
        self.timings: Any = None
        self.latency: Any = None
        self.extra: Callable[[], dict[str, Any]] = dict  # what is known of the objects so far (those that joined)
        self.error: str | None = None

    def record(self, state: str) -> dict[str, Any]:
        from ..engine.pipeline import peak_rss_mib

        src = self.source
        t = self.timings.as_dict() if self.timings is not None else {"frames": 0}
        return {
            **self.base,
            "state": state,
            # how the input ended: the source's word (eos, timeout, ...); else the run's own
            "ended": getattr(src, "ended", None) or {"failed": "error", "interrupted": "signal"}.get(state),
            **({"error": self.error} if self.error else {}),
            "frames_received": getattr(src, "received", t["frames"]),
            "frames_tracked": t["frames"],
            "frames_skipped": getattr(src, "skipped", 0),
            "latency_ms": self.latency.as_dict() if self.latency is not None else None,
            **self.extra(),
            **{k: v for k, v in t.items() if k != "frames"},
            "peak_rss_mib": peak_rss_mib(),
        }

    def write(self, state: str) -> dict[str, Any]:
        record = self.record(state)
        write_json_atomic(self.path, record)
        self._last = time.monotonic()
        return record

    def on_frame(self, timings: Any, latency: Any) -> None:
        self.timings, self.latency = timings, latency
        if time.monotonic() - self._last >= self.every_s:
            self.write("running")


def _check(spec: RunSpec) -> tuple[str, str | None]:
    """(the path or device read, its stream kind), checked."""
    kind, path = spec.source.kind, spec.source.path
    if SOURCES[kind].device:
        path = spec.source.options["device"]
        check_camera(path)
    elif not path:
        raise PromptError("source.path is not set: pass source.path=URL, - (standard input), a FIFO or a video")
    live = live_kind(spec)  # None: a file, read online
    if live is None:
        check_source_path(path, kind)
    elif not SOURCES[kind].streams:
        raise PromptError(f"source.path {path!r} is a stream: read it with source=pyav (FFmpeg)")
    if spec.dataset is not None:
        raise PromptError("dataset runs are file runs: drop mode=online")
    if spec.resume:
        raise PromptError("resume=true continues a file run: an online run has nothing to resume; drop resume=true")
    if not spec.source.frames.everything:
        raise PromptError(
            "source.start/stop/stride/max_frames choose frames of a file run: an online run reads the stream as it "
            "comes; drop them, or use mode=file for a video file"
        )
    fixed = [k for k in spec.sinks.enabled if not SINKS[k].live]
    if fixed:
        raise PromptError(f"sink.{fixed[0]}=true is not written while a stream runs: set it false for mode=online")
    return str(path), live


def _open(spec: RunSpec, path: str, keep: set[int], threads: int) -> tuple[Any, Any, Any, dict[int, float]]:
    """(source, frames, info, arrival times): a live reader for streams and devices; decord / opencv /
    images read a file online, frame by frame."""
    kind, opts = spec.source.kind, spec.source.options
    device = SOURCES[kind].device
    if SOURCES[kind].streams:
        source = LiveSource(
            path,
            timeout=spec.source.timeout,
            realtime=spec.realtime,
            keep=keep,
            format=opts.get("format") if device else None,
            options=camera_options(opts.get("width"), opts.get("height"), opts.get("fps")) if device else None,
            threads=opts.get("threads") or threads,
        ).open()
        return source, source.frames(), source.info, source.arrival
    source = open_source(kind, path, **opts)
    arrival: dict[int, float] = {}

    def stamped():
        for f in source.frames():
            arrival[f.index] = time.monotonic()
            yield f

    return source, stamped(), source.info, arrival


def run_online(spec: RunSpec, started: float, model: Any = None) -> dict[str, Any]:
    path, live = _check(spec)
    given = read_prompts(spec)
    names = planned(spec)
    check_inputs_apart(spec, names, given, path if live in (None, "fifo") else None)
    check_no_earlier_outputs(output_folder(spec), names)
    threads = run_threads(spec)
    keep = {p.frame_index for p in given.spec.prompts}
    if spec.prompts.kind == "auto":  # real time drops frames, never those the objects are found on
        keep |= set(spec.prompts.frames or (0,))
    source, frames, info, arrival = _open(spec, path, keep, threads)
    try:
        plan = prepare(spec, given, threads, video=source).plan  # detections become prompts here
        if given.detections and isinstance(source, LiveSource):
            source.keep = {q.frame_index for q in plan.spec.prompts}
        record = _track(spec, path, given, plan, source, frames, info, arrival, threads, model)
    finally:
        if isinstance(source, LiveSource):
            source.close()
    record["total_s"] = round(time.perf_counter() - started, 3)
    lat = record["latency_ms"] or {}
    log.info(
        "done (%s): %d frames received, %d tracked, %d skipped; latency p50 %s ms, p95 %s ms -> %s",
        record.get("ended") or "end",
        record["frames_received"],
        record["frames_tracked"],
        record["frames_skipped"],
        lat.get("p50_ms"),
        lat.get("p95_ms"),
        spec.output.folder,
    )
    return record


def _log_start(spec: RunSpec, plan: PromptPlan, path: str, info: Any, model: Any, threads: int) -> None:
    log.info(
        "tracking %d object(s) online from %s (%dx%d) on %s, %d thread(s)%s",
        len(plan.spec.object_ids),
        path,
        info.width,
        info.height,
        model.device,
        threads,
        ", real time (frames may be dropped)" if spec.realtime else "",
    )


def _track(
    spec: RunSpec,
    path: str,
    given: PromptInput,
    plan: PromptPlan,
    source: Any,
    frames: Any,
    info: Any,
    arrival: dict[int, float],
    threads: int,
    model: Any,
) -> dict[str, Any]:
    from ..engine.pipeline import run_live_pipeline

    model = model if model is not None else build(spec.model)
    discovery = make_discovery(spec, model, info, plan)
    with (
        LiveOutputs(output_folder(spec), planned(spec), list(spec.output.created)) as tx,
        logged_to(tx.path("run.log")),
    ):
        save_config(spec, tx.staging)
        sinks = open_sinks(spec, tx.staging, info, plan.spec.labels, Path(path).name, None)  # live ones (_check)
        for s in sinks:
            s.make_live()
        base = base_record(spec, model, "online", threads)
        base.update(
            source={"path": path, "kind": spec.source.kind, **vars(info)},
            objects={str(k): v for k, v in plan.spec.labels.items()},
            outputs=sorted(s.target.name for s in sinks),
            realtime=spec.realtime,
        )
        status = LiveStatus(tx.path("run.json"), spec.status_every_s, base, source)
        status.write("running")
        _log_start(spec, plan, path, info, model, threads)
        propagator = make_propagator(spec, model, plan, discovery, live=True)
        status.extra = lambda: discovery_record(plan.spec, discovery, propagator)
        state = "interrupted"  # a signal (KeyboardInterrupt): the stream did not end, the run was stopped
        try:
            timings, latency = run_live_pipeline(
                propagator,
                frames,
                info,
                plan.spec.prompts,
                plan.spec.object_ids,
                sinks,
                arrival,
                on_frame=status.on_frame,
                progress=spec.progress,
                queue_depth=spec.prefetch,
            )
            status.timings, status.latency = timings, latency
            state = "complete"
        except Exception as e:
            state, status.error = "failed", one_line(e)
            raise
        finally:
            record = status.write(state)
    return record
