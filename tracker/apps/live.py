"""Online runs (``mode=online``, and every live source): forward-only tracking of a stream whose length
is not known, its outputs written under their final names while it runs. Called by ``cli.run``.

    tracker source.path=rtsp://camera/stream prompts.path=prompts.yaml          (until the stream ends)
    ffmpeg ... -f mpegts - | tracker source.path=- prompts.box=[10,10,80,80]
    tracker source=camera source.device=/dev/video0 prompts.path=p.yaml live.realtime=true
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from ..transaction import LiveOutputs, check_not_in_outputs
from . import cli

log = logging.getLogger("tracker")


class LiveStatus:
    """``run.json`` of an online run, rewritten (atomically) at most every ``every_s`` seconds while it
    runs, with ``state`` running, then complete (the stream ended) or interrupted (a signal)."""

    def __init__(self, path: Path, every_s: float, base: dict[str, Any], source) -> None:
        self.path, self.every_s, self.base, self.source = path, float(every_s), base, source
        self._last = 0.0
        self.timings = None
        self.latency = None
        self.extra = dict  # what is known of the objects so far (those that joined)

    def record(self, state: str) -> dict[str, Any]:
        from ..engine.pipeline import peak_rss_mib

        src = self.source
        t = self.timings.as_dict() if self.timings is not None else {"frames": 0}
        return {
            **self.base,
            "state": state,
            "ended": getattr(src, "ended", None),
            "frames_received": getattr(src, "received", t["frames"]),
            "frames_tracked": t["frames"],
            "frames_skipped": getattr(src, "skipped", 0),
            "latency_ms": self.latency.as_dict() if self.latency is not None else None,
            **self.extra(),
            **{k: v for k, v in t.items() if k != "frames"},
            "peak_rss_mib": peak_rss_mib(),
        }

    def write(self, state: str) -> dict[str, Any]:
        from ..io.sinks import write_json_atomic

        record = self.record(state)
        write_json_atomic(self.path, record)
        self._last = time.monotonic()
        return record

    def on_frame(self, timings, latency) -> None:
        self.timings, self.latency = timings, latency
        if time.monotonic() - self._last >= self.every_s:
            self.write("running")


def run_live(cfg: DictConfig, plain: dict, out: Path, created: list, started: float, model: Any = None) -> dict:
    from ..engine.pipeline import run_live_pipeline
    from ..engine.propagation import Propagator
    from ..io.live import LiveSource, camera_options, check_camera, stream_kind
    from ..io.prompts import PromptError
    from ..io.source import check_source_path, open_source

    src_cfg = dict(plain["source"])
    kind, path = src_cfg.pop("kind"), src_cfg.pop("path")
    if kind == "camera":
        path = src_cfg["device"]
        check_camera(path)
    elif not path:
        raise PromptError("source.path is not set: pass source.path=URL, - (standard input), a FIFO or a video")
    live = "device" if kind == "camera" else stream_kind(path)  # None: a file, read online
    if live is None:
        check_source_path(path, kind)
    elif kind not in ("pyav", "camera"):
        raise PromptError(f"source.path {path!r} is a stream: read it with source=pyav (FFmpeg)")
    if cfg.get("dataset"):
        raise PromptError("dataset runs are file runs: drop mode=online")
    if cfg.resume:
        raise PromptError("resume=true continues a file run: an online run has nothing to resume; drop resume=true")
    spec = cli._spec_from_config(cfg)
    planned = [*cli._video_sinks(cfg), "run.json", "run.log", ".hydra"]
    inputs = [("prompts.path", cfg.prompts.path), ("model.checkpoint", cli._checkpoint(cfg))]
    if live in (None, "fifo"):
        inputs.append(("source.path", path))
    if not isinstance(spec, list):
        inputs += [("prompts mask", f) for f in spec.mask_files]
    check_not_in_outputs(out, planned, inputs)
    threads = cli._set_threads(cfg)
    keep = {p.frame_index for p in spec.prompts} if not isinstance(spec, list) else set()
    if cfg.prompts.kind == "auto":  # real time drops frames, never those the objects are found on
        keep |= set(cfg.prompts.frames)

    if kind in ("pyav", "camera"):
        source = LiveSource(
            path,
            timeout=src_cfg["timeout"],
            realtime=cfg.live.realtime,
            keep=keep,
            format=src_cfg.get("format") if kind == "camera" else None,
            options=camera_options(src_cfg.get("width"), src_cfg.get("height"), src_cfg.get("fps"))
            if kind == "camera"
            else None,
            threads=src_cfg.get("threads") or threads,
        ).open()
        frames, info, arrival = source.frames(), source.info, source.arrival
    else:  # decord / opencv / images on a file: online mode over its frames, in order
        src_cfg.pop("timeout", None)
        source = open_source(kind, path, **src_cfg)
        info = source.info
        arrival = {}

        def stamped():
            for f in source.frames():
                arrival[f.index] = time.monotonic()
                yield f

        frames = stamped()
    try:
        detections = isinstance(spec, list)
        spec, reprompts, unmatched = cli.plan_prompts(cfg, spec, info)  # detections become prompts here
        if detections and isinstance(source, LiveSource):
            source.keep = {q.frame_index for q in spec.prompts}
        Propagator.check_prompts(spec.prompts, info, spec.object_ids, allow_empty=cli.discovers(cfg))
        model = model if model is not None else cli._build_model(cfg)
        discovery = cli.make_discovery(cfg, model, info, spec, unmatched)
        with LiveOutputs(out, planned, created) as tx, cli._logged_to(tx.path("run.log")):
            cli._save_config(cfg, tx.staging)
            sinks, _ = cli._make_sinks(cfg, tx, info, spec, None, str(path))
            for s in sinks:
                s.make_live()
            base = {
                "config": plain,
                "versions": cli._versions(),
                "device": cli._device_name(model),
                "mode": "online",
                "threads": threads,
                "source": {"path": str(path), "kind": kind, **vars(info)},
                "objects": {str(k): v for k, v in spec.labels.items()},
                "outputs": sorted(s.target.name for s in sinks),
                "realtime": bool(cfg.live.realtime),
            }
            status = LiveStatus(tx.path("run.json"), cfg.live.status_every_s, base, source)
            status.write("running")
            log.info(
                "tracking %d object(s) online from %s (%dx%d) on %s, %d thread(s)%s",
                len(spec.object_ids),
                path,
                info.width,
                info.height,
                model.device,
                threads,
                ", real time (frames may be dropped)" if cfg.live.realtime else "",
            )
            # Real time: no decode-ahead queue inside the engine, or frames would wait there instead of being
            # dropped (measured: p50 latency 290 ms with the default queue of 8 at 720p).
            prefetch = 0 if cfg.live.realtime else cfg.propagation.prefetch
            propagator = Propagator(
                model,
                prefetch=prefetch,
                backward=False,
                discovery=discovery,
                reprompts=reprompts,
                reprompt_iou=cfg.prompts.get("reprompt_iou", 0.0),
            )
            status.extra = lambda: cli.discovery_record(spec, discovery, propagator)
            state = "interrupted"
            try:
                timings, latency = run_live_pipeline(
                    propagator,
                    frames,
                    info,
                    spec.prompts,
                    spec.object_ids,
                    sinks,
                    arrival,
                    on_frame=status.on_frame,
                    progress=cfg.progress,
                    queue_depth=cfg.propagation.prefetch,
                )
                status.timings, status.latency = timings, latency
                state = "complete"
            finally:
                record = status.write(state)
                record["total_s"] = round(time.perf_counter() - started, 3)
    finally:
        if isinstance(source, LiveSource):
            source.close()
    lat = record["latency_ms"] or {}
    log.info(
        "done (%s): %d frames received, %d tracked, %d skipped; latency p50 %s ms, p95 %s ms -> %s",
        record.get("ended") or "end",
        record["frames_received"],
        record["frames_tracked"],
        record["frames_skipped"],
        lat.get("p50_ms"),
        lat.get("p95_ms"),
        out,
    )
    return record
