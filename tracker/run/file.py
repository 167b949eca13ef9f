"""A run over a video file (or a frame folder, or the demo clip): every pass SAM 2 needs, frames out in
order, the outputs as one transaction; resumable from ``OUT/.resume/`` when its sinks allow it."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..engine.spool import CheckpointError
from ..files import write_atomic
from ..io.prompts import PromptError, prompts_yaml
from ..io.sinks import SINKS, Sink, write_json_atomic
from ..io.source import SOURCES, check_source_path, open_source
from ..threads import apply_threads
from .model import build, memory_sizes, toy_meets_real_video
from .outputs import (
    check_inputs_apart,
    logged_to,
    open_sinks,
    output_folder,
    planned,
    run_threads,
    save_config,
    source_options,
)
from .prepare import make_propagator, prepare
from .prompts import PromptInput, PromptPlan, discovers, discovery_record, make_discovery, read_prompts
from .record import base_record, finished_record
from .resume import ResumeError, ResumeStore, check_checkpoint, damaged, fingerprint
from .spec import RunSpec
from .transaction import OutputTransaction

log = logging.getLogger("tracker")

DEMO_FILES = ("demo_input.mp4", "demo_score.json")
PROMPTS_FILE = "prompts.yaml"
PROMPTS_HEAD = "# tracker prompts, given to tracker.run() in Python (schema: tracker/io/prompts.py)\n"


def _resumable(spec: RunSpec, given: PromptInput | None, extra_sinks: Any) -> bool:
    """A run over a file, with sinks that can continue (the studio's results and the demo's score cannot);
    its staging and checkpoints live in OUT/.resume/."""
    joins = given is not None and discovers(spec, given)
    fixed = [k for k in spec.sinks.enabled if not SINKS[k].resumable]
    resumable = spec.resume_every > 0 and given is not None and not extra_sinks and not joins and not fixed
    if spec.resume and not resumable:
        why = (
            "resume_every=0"
            if spec.resume_every <= 0
            else "a demo run"
            if given is None
            else "a run whose objects join or are re-prompted as it goes"
            if joins
            else f"a run with sink.{fixed[0]}=true"
            if fixed
            else "this run"
        )
        raise PromptError(f"resume=true: {why} keeps no checkpoints: drop resume=true")
    return resumable


def run_file(spec: RunSpec, started: float, model: Any = None, extra_sinks: Any = ()) -> dict:
    """Checks first (prompts, source, collisions), then the run as one output transaction."""
    out = output_folder(spec)
    path, demo = spec.source.path, spec.demo
    given: PromptInput | None = None
    if demo is None:
        if not path:
            raise PromptError("source.path is not set: pass source.path=VIDEO (or experiment=demo)")
        given = read_prompts(spec)
        check_source_path(path, spec.source.kind)
    kept = (PROMPTS_FILE,) if spec.prompts.given is not None else ()
    names = planned(spec, *(DEMO_FILES if demo is not None else ()), *kept)
    check_inputs_apart(spec, names, given, path)
    resumable = _resumable(spec, given, extra_sinks)
    threads = run_threads(spec)
    with OutputTransaction(out, list(spec.output.created), resumable=resumable, resuming=spec.resume) as tx:
        # A resumed run is checked against its checkpoint before anything is written: a refusal leaves
        # OUT/.resume as it was.
        ready = _prepare(spec, tx, path, given, threads) if demo is None else None
        with logged_to(tx.path("run.log")):
            save_config(spec, tx.staging)
            if spec.prompts.given is not None:  # kept as the file that runs the same again (prompts.path=)
                write_atomic(tx.path(PROMPTS_FILE), prompts_yaml(spec.prompts.given, PROMPTS_HEAD))
            score = None
            if demo is not None:
                from ..experiments.demo import GroundTruthScore, demo_prompts, write_demo_clip

                path = str(write_demo_clip(tx.path("demo_input.mp4"), demo.frames, demo.width, demo.height, demo.seed))
                given = PromptInput(demo_prompts(demo.frames, demo.width, demo.height, demo.seed))
                score = GroundTruthScore(tx.path("demo_score.json"), demo.frames, demo.width, demo.height, demo.seed)
                log.info("demo: wrote a synthetic %d-frame clip with two moving objects", demo.frames)
                ready = _prepare(spec, tx, path, given, threads)
            assert ready is not None
            shown = str(out / "demo_input.mp4") if demo is not None else str(path)
            record = _track(spec, tx, ready, shown, started, model, [score] if score else [], extra_sinks)
            tx.commit()
    if score is not None:
        log.info(
            "demo: J&F-Mean %.3f against the exact ground truth (J %.3f, F %.3f)%s",
            score.summary["J&F-Mean"],
            score.summary["J-Mean"],
            score.summary["F-Mean"],
            " -- random weights: noise expected" if spec.model.checkpoint is None else "",
        )
    log.info(
        "done: %d frames in %.1fs (%.2f fps; decode %.1fs, model %.1fs, encode %.1fs) -> %s",
        record["frames"],
        record["wall_s"],
        record["frames"] / max(record["wall_s"], 1e-9),
        record["decode_s"],
        record["model_s"],
        record["encode_s"],
        out,
    )
    return record


@dataclass
class _Ready:
    """A file run once its inputs are open and checked: the source, the plan, and (resumable runs) the
    checkpoint store, the fingerprint later checkpoints carry, the checkpoint resumed from."""

    path: str
    source: Any
    plan: PromptPlan
    threads: int
    sinks: list[Sink]
    store: ResumeStore | None = None
    fp: dict | None = None
    ckpt: dict | None = None


def _refused(e: CheckpointError) -> ResumeError:
    """A damaged spool or engine state refuses the resume (ResumeError keeps OUT/.resume as it is)."""
    return ResumeError(f"resume=true: {e}: run without resume=true to start over")


def _prepare(spec: RunSpec, tx: OutputTransaction, path: str, given: PromptInput, threads: int) -> _Ready:
    """Open the source, plan the prompts, and for a resumed run load and check its checkpoint and spool;
    nothing is written here."""
    from ..engine.spool import MaskSpool

    video = open_source(spec.source.kind, path, **source_options(spec, threads))
    prepared = prepare(spec, given, threads, video)
    source, plan = prepared.source, prepared.plan
    if video.info.has_audio and not source.info.has_audio:
        log.info("annotated.mp4 has no sound: the run reads %s", spec.source.frames.describe(video.info.num_frames))
    audio = Path(path) if SOURCES[spec.source.kind].audio else None
    # Made here (nothing is written until a sink is entered), so a resumed run checks their positions first.
    sinks = open_sinks(spec, tx.staging, source.info, plan.spec.labels, Path(path).name, audio)
    ready = _Ready(path, source, plan, threads, sinks)
    if tx.resumable:
        ready.store = ResumeStore(tx.out)
        # A resumed run hashes the source only when its time changed (difference() asks for it).
        ready.fp = fingerprint(spec.config, path, plan.spec, content=not spec.resume)
        if spec.resume:
            ckpt = ready.store.load(ready.fp)
            sizes = memory_sizes(spec.model)
            check_checkpoint(ckpt, ready.store.path, source.info.num_frames or 0, plan.spec.object_ids, sizes)
            info = source.info
            tracked = {i for g in ckpt["engine"]["groups"] for i in g["object_ids"]}
            try:
                MaskSpool.check(
                    str(ready.store.spool), ckpt["engine"]["spool"], (info.height, info.width), info.num_frames, tracked
                )
            except CheckpointError as e:
                raise _refused(e) from None
            _check_positions(ckpt, sinks, ready.store.path)
            ready.ckpt, ready.fp = ckpt, ckpt["fingerprint"]  # later checkpoints carry the source's hash
            ready.threads = int(ckpt["threads"])  # the same arithmetic as the run it continues
    return ready


def _check_positions(ckpt: dict, sinks: list[Sink], path: Path) -> None:
    """Each sink's checkpointed position, checked by that sink against its partial output."""
    if len(ckpt["sinks"]) != len(sinks):
        raise damaged(path, f"{len(ckpt['sinks'])} sink positions for {len(sinks)} outputs")
    for sink, position in zip(sinks, ckpt["sinks"]):
        problem = sink.check_position(position, ckpt["emitted"])
        if problem is not None:
            raise damaged(path, f"{sink.target.name}: {problem}")


def _track(
    spec: RunSpec,
    tx: OutputTransaction,
    ready: _Ready,
    shown: str,
    started: float,
    model: Any,
    own_sinks: list,
    extra_sinks: Any,
) -> dict:
    """Inside the transaction, logging: build the model and the sinks, run the pipeline (resumed from a
    checkpoint when asked), write run.json."""

    source, plan, store, fp, ckpt, threads = ready.source, ready.plan, ready.store, ready.fp, ready.ckpt, ready.threads
    info = source.info
    model = model if model is not None else build(spec.model)
    if (warning := toy_meets_real_video(model, shown if spec.demo is None else None)) is not None:
        log.warning(warning)
    discovery = make_discovery(spec, model, info, plan)
    sinks: list[Sink] = list(ready.sinks)
    video_sink = next((s for s in sinks if s.target.name == "annotated.mp4"), None)
    sinks += own_sinks
    if ckpt is not None:
        apply_threads(threads)
        log.info("resuming at frame %d (%s pass) from %s", ckpt["emitted"], ckpt["stage"], store.path)  # type: ignore[union-attr]
    if store is not None:
        for i, sink in enumerate(sinks):
            sink.make_resumable()
            if ckpt is not None:
                sink.resume_from(ckpt["sinks"][i])
    spool = str(store.spool) if store is not None else None
    propagator = make_propagator(spec, model, plan, discovery, spool_path=spool)
    _log_start(plan, discovery is not None, shown, info, model, threads)
    try:
        timings = _pipeline(propagator, source, plan, sinks, extra_sinks, spec, store, fp, threads, ckpt)
    except CheckpointError as e:
        raise _refused(e) from None
    sections = _source_section(spec, source, shown)
    sections.update(discovery_record(plan.spec, discovery, propagator))
    sections["outputs"] = sorted(s.target.name for s in sinks)
    if video_sink is not None:
        sections["audio"] = video_sink.audio
    for s in own_sinks:
        sections["demo_score"] = s.summary
    if store is not None:
        sections["checkpoints"] = store.summary()
    if ckpt is not None:
        sections["resumed_from"] = {"frame": ckpt["emitted"], "stage": ckpt["stage"]}
    record = finished_record(base_record(spec, model, "file", threads), timings, started, **sections)
    write_json_atomic(tx.path("run.json"), record)
    return record


def _log_start(plan: PromptPlan, finds: bool, shown: str, info: Any, model: Any, threads: int) -> None:
    log.info(
        "tracking %d object(s)%s through %s (%dx%d, %s frames) on %s, %d thread(s)",
        len(plan.spec.object_ids),
        " and those it finds" if finds else "",
        shown,
        info.width,
        info.height,
        info.num_frames,
        model.device,
        threads,
    )


def _source_section(spec: RunSpec, source: Any, shown: str) -> dict[str, Any]:
    """run.json's ``source``: the run's frame count and rate, and for part of a video the range and the
    video's own."""
    section: dict[str, Any] = {"path": shown, "kind": spec.source.kind, **vars(source.info)}
    if not spec.source.frames.everything:
        video_info = source.source.info
        section.update(frames=vars(spec.source.frames), video_frames=video_info.num_frames, video_fps=video_info.fps)
    return {"source": section}


def _pipeline(propagator, source, plan, sinks, extra_sinks, spec: RunSpec, store, fp, threads: int, ckpt):
    from ..engine.pipeline import run_pipeline

    return run_pipeline(
        propagator,
        source,
        plan.spec.prompts,
        plan.spec.object_ids,
        [*sinks, *extra_sinks],
        queue_depth=spec.prefetch,
        progress=spec.progress,
        on_checkpoint=(lambda c, positions: store.save(fp, threads, c, positions)) if store is not None else None,
        resume=ckpt["engine"] if ckpt is not None else None,
    )
