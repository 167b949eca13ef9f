"""The ``tracker`` command: a Hydra app over ``configs/config.yaml``. The only module that sees Hydra
config objects; everything below it takes plain values.

    tracker source.path=clip.mp4 prompts.path=prompts.yaml
    tracker source.path=clip.mp4 prompts.box=[10,20,200,220] prompts.frame=0
    tracker experiment=demo
"""

from __future__ import annotations

import errno
import logging
import os
import platform
import signal
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, ListConfig, OmegaConf

import tracker

from ..paths import config_dir
from ..threads import apply_threads, resolve_threads, usable_cores
from ..transaction import OutputError, OutputTransaction, check_not_in_outputs, check_output_dir, missing_dirs
from . import config_checks

log = logging.getLogger("tracker")

_CONFIGS = str(config_dir())

# Folders that did not exist before this process's run(s), by output folder: a failed run removes those
# it leaves empty. Filled when Hydra resolves hydra.run.dir, before Hydra creates it.
_CREATED: dict[str, list[Path]] = {}


def _run_dir(out: str | None, default: str) -> str:
    """hydra.run.dir: output_dir when given, else Hydra's dated folder. A path that cannot be a folder
    becomes "." here (Hydra would fail on it with a traceback) and is refused by run() with one line."""
    path = out or default
    try:
        check_output_dir(path)
    except OutputError:
        return "."
    _CREATED.setdefault(os.path.abspath(path), missing_dirs(path))
    return path


# Registered here, in the CLI layer, before any config is composed.
if not OmegaConf.has_resolver("tracker.run_dir"):
    OmegaConf.register_new_resolver("tracker.run_dir", _run_dir)


_USER_PATHS = (
    "source.path",
    "prompts.path",
    "model.checkpoint",
    "output_dir",
    "dataset.root",
    "pred",
    "gt",
    "train.data_root",
    "train.val_root",
)


def _absolute_paths(cfg: DictConfig) -> None:
    """Relative paths the user gave are relative to the folder the command started in, also under
    ``hydra.job.chdir=true`` (which moves the process into the run folder first)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return
    cwd = Path(HydraConfig.get().runtime.cwd)
    for key in _USER_PATHS:
        value = OmegaConf.select(cfg, key, default=None)
        if isinstance(value, str) and value and "://" not in value and value != "-" and not Path(value).is_absolute():
            OmegaConf.update(cfg, key, str(cwd / value))


def _output_dir(cfg: DictConfig) -> tuple[Path, list[Path]]:
    """The run's output folder, checked, and the folders made for it (removed again if it fails). In a
    sweep (``-m``), ``output_dir=X`` gives each job its own ``X/<job number>``."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if cfg.output_dir:
        out = Path(cfg.output_dir)
        if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
            out = out / str(HydraConfig.get().job.num)
    else:
        out = Path(HydraConfig.get().runtime.output_dir)
    check_output_dir(out)
    return out, _CREATED.setdefault(os.path.abspath(out), missing_dirs(out))


def _remove_created() -> None:
    """After a failure: remove the folders made for this job that are still empty (Hydra makes the
    output folder before the job starts; a check may fail before the transaction does it)."""
    for dirs in _CREATED.values():
        for d in dirs:
            try:
                d.rmdir()
            except OSError:
                break
    _CREATED.clear()


def _concurrent_jobs() -> int:
    """Jobs running at once in this sweep: the joblib launcher's n_jobs, else 1."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return 1
    hc = HydraConfig.get()
    launcher = hc.launcher
    if hc.mode != RunMode.MULTIRUN or "joblib" not in str(launcher.get("_target_", "")).lower():
        return 1
    n = launcher.get("n_jobs") or 1
    return usable_cores() if n < 0 else int(n)


def _set_threads(cfg: DictConfig) -> int:
    n = resolve_threads(cfg.threads, _concurrent_jobs())
    apply_threads(n)
    return n


@contextmanager
def _logged_to(path: Path) -> Iterator[None]:
    """Copy the run's log into the staged set (it moves with the commit: the handler keeps its file)."""
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
        handler.close()


def _save_config(cfg: DictConfig, folder: Path) -> None:
    """``.hydra/config.yaml`` and ``overrides.yaml``, as Hydra writes them, but inside the staged set."""
    from hydra.core.hydra_config import HydraConfig

    d = folder / ".hydra"
    d.mkdir(exist_ok=True)  # a resumed run writes its own over the first one's
    (d / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    overrides = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
    (d / "overrides.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(overrides)))


def _versions() -> dict[str, str]:
    import av
    import cv2
    import numpy
    import torch

    try:
        from importlib.metadata import version

        sam2_version = version("sam2")
    except Exception:
        sam2_version = "unknown"
    return {
        "tracker": tracker.__version__,
        "sam2": sam2_version,
        "torch": torch.__version__,
        "av": av.__version__,
        "opencv": cv2.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
    }


def _build_model(cfg: DictConfig):
    from ..engine.sam import build_model

    m = cfg.model
    if m.checkpoint is None:
        log.warning("model.checkpoint is null: RANDOM weights, the masks are noise (pass model.checkpoint=PATH)")
    model = build_model(
        OmegaConf.to_container(m.arch.model, resolve=True),  # type: ignore[arg-type]
        checkpoint=m.checkpoint,
        device=m.device,
        compile=m.compile,
        fill_hole_area=m.fill_hole_area,
        seed=cfg.seed,
    )
    model.auto_points = m.auto_points
    return model


def _checkpoint(cfg: DictConfig) -> Path | None:
    """model.checkpoint's file, checked before any frame is decoded (None: random weights)."""
    if not cfg.model.checkpoint:
        return None
    from ..engine.sam import existing_checkpoint

    return existing_checkpoint(cfg.model.checkpoint)


def _device_name(model) -> str:
    import torch

    return str(model.device) if model.device.type != "cuda" else torch.cuda.get_device_name()


def _peak_gpu_mib() -> float:
    import torch

    return round(torch.cuda.max_memory_allocated() / 2**20, 1) if torch.cuda.is_available() else 0.0


def _record(cfg: DictConfig, model, timings, started: float, **extra: Any) -> dict[str, Any]:
    """run.json: the resolved config, versions, device, what ran, time split and peak memory."""
    from ..engine.pipeline import peak_rss_mib

    return {
        "config": OmegaConf.to_container(cfg, resolve=True),
        "versions": _versions(),
        "device": _device_name(model),
        **extra,
        **timings.as_dict(),
        "total_s": round(time.perf_counter() - started, 3),
        "peak_rss_mib": peak_rss_mib(),
        "peak_gpu_mib": _peak_gpu_mib(),
    }


def run_dataset_config(cfg: DictConfig, started: float) -> dict[str, Any]:
    """``dataset=davis|sav``: track every sequence (VOS protocol), write predictions, evaluate."""
    from ..experiments.datasets import load_sequences
    from ..experiments.vos import run_dataset
    from ..io.sinks import write_json_atomic

    plain = OmegaConf.to_container(cfg, resolve=True)
    config_checks.dataset_run(plain)  # type: ignore[arg-type]
    d = cfg.dataset
    if not d.root:
        raise ValueError("dataset.root is not set: pass dataset.root=PATH (e.g. scripts/make_synthetic_dataset.py)")
    out, created = _output_dir(cfg)
    planned = ["predictions", "results.json", "results.csv", "run.json", "run.log", ".hydra", "videos"]
    check_not_in_outputs(out, planned, [("dataset.root", d.root), ("model.checkpoint", _checkpoint(cfg))])
    threads = _set_threads(cfg)
    seqs = load_sequences(d.layout, d.root, d.split, d.resolution, d.shard, d.num_shards)
    with OutputTransaction(out, created) as tx, _logged_to(tx.path("run.log")):
        _save_config(cfg, tx.staging)
        model = _build_model(cfg)
        results, timings = run_dataset(
            model,
            seqs,
            tx.staging,
            d.layout,
            prompt=d.prompt,
            annotated_video=d.annotated_video,
            reverse_chunk=cfg.propagation.reverse_chunk,
            prefetch=cfg.propagation.prefetch,
            progress=cfg.progress,
        )
        record = _record(
            cfg, model, timings, started, threads=threads, sequences=[s.name for s in seqs], results=results["dataset"]
        )
        write_json_atomic(tx.path("run.json"), record)
        tx.commit()
    return record


def _video_sinks(cfg: DictConfig) -> list[str]:
    """The names each enabled sink writes (tracks_labels.txt: MOT and MOTS class names)."""
    s = cfg.sink
    written = {
        "annotated": ["annotated.mp4"],
        "png": ["masks"],
        "jsonl": ["masks.jsonl"],
        "mot": ["tracks.csv", "tracks_labels.txt"],
        "coco": ["instances.json"],
        "yolo": ["yolo"],
        "mots": ["tracks_mots.txt", "tracks_labels.txt"],
    }
    return sorted({n for key, names in written.items() if s[key] for n in names})


def _spec_from_config(cfg: DictConfig):
    """The prompts of a video run (file or command line), validated before any frame is decoded."""
    from ..io.prompts import MAX_OBJECT_ID, PromptError, TrackSpec, load_prompts, quick_prompts

    p = cfg.prompts
    max_id = 255 if cfg.sink.png else MAX_OBJECT_ID
    if p.kind == "auto":  # the generator finds the objects on prompts.frames while the run goes on
        return TrackSpec(labels={}, prompts=())
    if p.kind == "detections":
        from ..io.detections import read_detections

        if not p.path:
            raise PromptError("prompts=detections needs prompts.path=FILE (and prompts.format=mot|coco|yolo)")
        return read_detections(p.path, p.format)
    if p.path:
        return load_prompts(p.path, max_id=max_id)
    if p.box is not None or p.points is not None:
        return quick_prompts(
            frame=p.frame,
            box=OmegaConf.to_container(p.box) if isinstance(p.box, ListConfig) else p.box,
            points=OmegaConf.to_container(p.points) if isinstance(p.points, ListConfig) else p.points,
            object_id=p.id,
            label=p.label,
            max_id=max_id,
        )
    raise PromptError(
        "nothing to track: pass prompts.path=FILE, or prompts.box=[x0,y0,x1,y1] / "
        "prompts.points=[[x,y,1]] with prompts.frame=N"
    )


def discovers(cfg: DictConfig, spec: Any = None) -> bool:
    """Whether objects may join or be re-prompted while the run goes on (no checkpoints then). ``spec``:
    the detections read (boxes without ids join as they come)."""
    p = cfg.prompts
    idless = isinstance(spec, list) and any(d.track_id is None for d in spec)
    by_boxes = p.kind == "detections" and (p.reprompt_iou > 0 or p.format == "yolo" or idless)
    return cfg.discover.every > 0 or p.kind == "auto" or by_boxes


def plan_prompts(cfg: DictConfig, spec: Any, info) -> tuple[Any, dict, dict]:
    """(the prompts spec, re-prompt boxes frame -> {id: box}, id-less boxes frame -> [box]) once the
    video's size is known: detections are read into prompts here."""
    from ..io.prompts import PromptError

    n = info.num_frames
    if cfg.prompts.kind == "auto" and n is not None:
        late = [f for f in cfg.prompts.frames if f >= n]
        if late:
            raise PromptError(f"prompts.frames holds frame {late[0]}, the video has {n} frames: use 0..{n - 1}")
    if not isinstance(spec, list):
        return spec, {}, {}
    from ..io.detections import detection_plan

    p = cfg.prompts
    max_id = 255 if cfg.sink.png else 2**31 - 1
    plan = detection_plan(spec, info.width, info.height, p.min_score, max_id, normalised=p.format == "yolo")
    return plan.spec, (plan.later if p.reprompt_iou > 0 else {}), plan.unmatched


def make_discovery(cfg: DictConfig, model, info, spec, unmatched: dict):
    """The run's :class:`tracker.discovery.Discovery`, or None when nothing joins mid-run."""
    from ..discovery import Discovery, DiscoverySettings, GeneratorSettings, MaskGenerator

    generates = cfg.discover.every > 0 or cfg.prompts.kind == "auto"
    if not generates and not unmatched:
        return None
    d = cfg.discover
    frames = list(cfg.prompts.frames) if cfg.prompts.kind == "auto" else []
    settings = DiscoverySettings(
        every=d.every,
        frames=tuple(frames[1:]),
        new_iou=d.new_iou,
        max_covered=d.max_covered,
        confirm=d.confirm,
        match_iou=cfg.prompts.get("match_iou", 0.3),
        max_objects=d.max_objects,
    )
    generator = None
    if generates:
        generator = MaskGenerator(model, GeneratorSettings(**OmegaConf.to_container(cfg.generator, resolve=True)))
    return Discovery(
        settings,
        (info.height, info.width),
        next_id=max(spec.object_ids, default=0) + 1,
        generator=generator,
        detections=unmatched,
        seed_frame=frames[0] if frames else None,
        max_id=255 if cfg.sink.png else 2**31 - 1,
    )


def discovery_record(spec, discovery, propagator) -> dict[str, Any]:
    """run.json's objects (ids -> labels, joined ones included) and what joined, was dropped, re-prompted."""
    objects = {str(k): v for k, v in spec.labels.items()}
    out: dict[str, Any] = {"objects": objects}
    if discovery is not None:
        objects.update({str(j.object_id): None for j in discovery.joined if j.kept})
        out["discovery"] = discovery.summary()
    if propagator.reprompted:
        per: dict[str, int] = {}
        for r in propagator.reprompted:
            per[str(r["id"])] = per.get(str(r["id"]), 0) + 1
        out["reprompts"] = {"total": len(propagator.reprompted), "by_object": per}
    return out


def _make_sinks(cfg: DictConfig, tx: OutputTransaction, info, spec, audio_from: Path | None, shown_path: str):
    """The enabled sinks, writing into ``tx``; returns (sinks, the annotated video's sink or None)."""
    from ..io.sinks import AnnotatedVideoSink, CocoSink, JsonlSink, MotSink, MotsSink, PngMasksSink, YoloSink

    s = cfg.sink
    sinks: list = []
    video_sink = None
    if s.annotated:
        video_sink = AnnotatedVideoSink(
            tx.path("annotated.mp4"),
            info,
            audio_from,
            labels=spec.labels,
            crf=s.crf,
            preset=s.preset,
            alpha=s.alpha,
        )
        sinks.append(video_sink)
    if s.png:
        sinks.append(PngMasksSink(tx.path("masks")))
    if s.jsonl:
        sinks.append(JsonlSink(tx.path("masks.jsonl"), labels=spec.labels))
    if s.mot:
        sinks.append(MotSink(tx.path("tracks.csv"), labels=spec.labels))
    if s.coco:
        sinks.append(CocoSink(tx.path("instances.json"), info, spec.labels, Path(shown_path).name))
    if s.yolo:
        sinks.append(YoloSink(tx.path("yolo"), spec.labels))
    if s.mots:
        sinks.append(MotsSink(tx.path("tracks_mots.txt"), spec.labels))
    return sinks, video_sink


def run(cfg: DictConfig, model: Any = None, extra_sinks: Sequence[Any] = ()) -> dict[str, Any]:
    """Check the config, then run the pipeline as one output transaction; returns run.json's content.

    ``model``: a loaded SamModel for ``cfg.model`` (the studio's; None: built here). ``extra_sinks``:
    context managers with ``write(frame, masks)`` that see every frame too (the studio's results)."""
    from ..engine.pipeline import run_pipeline
    from ..engine.propagation import Propagator
    from ..io.live import stream_kind
    from ..io.prompts import PromptError
    from ..io.sinks import write_json_atomic
    from ..io.source import check_source_path, open_source

    started = time.perf_counter()
    if cfg.get("dataset"):
        return run_dataset_config(cfg, started)
    plain = OmegaConf.to_container(cfg, resolve=True)
    config_checks.video_run(plain)  # type: ignore[arg-type]
    out, created = _output_dir(cfg)
    src_cfg = dict(plain["source"])  # type: ignore[index]
    kind = src_cfg.pop("kind")
    path = src_cfg.pop("path")
    src_cfg.pop("timeout", None)  # live inputs only
    live = "device" if kind == "camera" else stream_kind(path) if path else None
    if live is not None or cfg.mode == "online":
        if cfg.mode == "file":
            raise PromptError(f"source.path {path!r} is a live stream ({live}): use mode=online (or mode=auto)")
        from .live import run_live

        return run_live(cfg, plain, out, created, started, model=model)
    demo = cfg.get("demo") if not path else None
    if demo is None:
        if not path:
            raise PromptError("source.path is not set: pass source.path=VIDEO (or experiment=demo)")
        spec = _spec_from_config(cfg)
        check_source_path(path, kind)
    planned = [*_video_sinks(cfg), "run.json", "run.log", ".hydra"]
    if demo is not None:
        planned += ["demo_input.mp4", "demo_score.json"]
    inputs = [("source.path", path), ("prompts.path", cfg.prompts.path), ("model.checkpoint", _checkpoint(cfg))]
    if demo is None and not isinstance(spec, list):
        inputs += [("prompts mask", f) for f in spec.mask_files]
    check_not_in_outputs(out, planned, inputs)
    threads = _set_threads(cfg)
    if kind == "pyav" and not src_cfg.get("threads"):
        src_cfg["threads"] = threads

    # Resumable: a run over a file, with sinks that can continue (the studio's results and the demo's
    # score cannot); its staging and checkpoints live in OUT/.resume/.
    joins = demo is None and discovers(cfg, spec)
    resumable = cfg.resume_every > 0 and demo is None and not extra_sinks and not joins
    if cfg.resume and not resumable:
        why = (
            "resume_every=0"
            if cfg.resume_every <= 0
            else "a demo run"
            if demo is not None
            else "a run whose objects join or are re-prompted as it goes"
            if joins
            else "this run"
        )
        raise PromptError(f"resume=true: {why} keeps no checkpoints: drop resume=true")
    with (
        OutputTransaction(out, created, resumable=resumable, resuming=bool(cfg.resume)) as tx,
        _logged_to(tx.path("run.log")),
    ):
        _save_config(cfg, tx.staging)
        score = None
        if demo is not None:
            from ..experiments.demo import GroundTruthScore, demo_prompts, write_demo_clip

            path = str(write_demo_clip(tx.path("demo_input.mp4"), demo.frames, demo.width, demo.height, demo.seed))
            spec = demo_prompts(demo.frames, demo.width, demo.height, demo.seed)
            score = GroundTruthScore(tx.path("demo_score.json"), demo.frames, demo.width, demo.height, demo.seed)
            log.info("demo: wrote a synthetic %d-frame clip with two moving objects", demo.frames)
        source = open_source(kind, path, **src_cfg)
        info = source.info
        spec, reprompts, unmatched = plan_prompts(cfg, spec, info)
        shown_path = str(out / "demo_input.mp4") if demo is not None else str(path)
        Propagator.check_prompts(spec.prompts, info, spec.object_ids, allow_empty=joins)

        model = model if model is not None else _build_model(cfg)
        discovery = make_discovery(cfg, model, info, spec, unmatched)
        sinks, video_sink = _make_sinks(cfg, tx, info, spec, Path(path) if kind != "images" else None, shown_path)
        if score is not None:
            sinks.append(score)

        store = ckpt = fp = None
        if resumable:
            from .resume import ResumeStore, fingerprint

            store = ResumeStore(out)
            fp = fingerprint(plain, path, spec)  # type: ignore[arg-type]
            if cfg.resume:
                ckpt = store.load(fp)
                threads = int(ckpt["threads"])  # the same arithmetic as the run it continues
                apply_threads(threads)
                log.info("resuming at frame %d (%s pass) from %s", ckpt["emitted"], ckpt["stage"], store.path)
            for i, sink in enumerate(sinks):
                sink.keep_on_failure = True
                if hasattr(sink, "segmented"):
                    sink.segmented = True
                if ckpt is not None:
                    sink.resume_from(ckpt["sinks"][i])
        propagator = Propagator(
            model,
            reverse_chunk=cfg.propagation.reverse_chunk,
            prefetch=cfg.propagation.prefetch,
            checkpoint_every=cfg.resume_every if resumable else 0,
            spool_path=str(store.spool) if store is not None else None,
            discovery=discovery,
            reprompts=reprompts,
            reprompt_iou=cfg.prompts.get("reprompt_iou", 0.0),
        )
        log.info(
            "tracking %d object(s)%s through %s (%dx%d, %s frames) on %s, %d thread(s)",
            len(spec.object_ids),
            " and those it finds" if discovery is not None else "",
            shown_path,
            info.width,
            info.height,
            info.num_frames,
            model.device,
            threads,
        )
        timings = run_pipeline(
            propagator,
            source,
            spec.prompts,
            spec.object_ids,
            [*sinks, *extra_sinks],
            queue_depth=cfg.propagation.prefetch,
            progress=cfg.progress,
            on_checkpoint=(lambda c, positions: store.save(fp, threads, c, positions)) if store is not None else None,
            resume=ckpt["engine"] if ckpt is not None else None,
        )
        resume_info = {}
        if store is not None:
            resume_info["checkpoints"] = store.summary()
        if ckpt is not None:
            resume_info["resumed_from"] = {"frame": ckpt["emitted"], "stage": ckpt["stage"]}
        record = _record(
            cfg,
            model,
            timings,
            started,
            threads=threads,
            source={"path": shown_path, "kind": kind, **vars(info)},
            **discovery_record(spec, discovery, propagator),
            outputs=sorted(str(x.target.name) for x in sinks),
            **({"audio": video_sink.audio} if video_sink is not None else {}),
            **({"demo_score": score.summary} if score is not None else {}),
            **resume_info,
        )
        write_json_atomic(tx.path("run.json"), record)
        tx.commit()
    if score is not None:
        log.info(
            "demo: J&F-Mean %.3f against the exact ground truth (J %.3f, F %.3f)%s",
            score.summary["J&F-Mean"],
            score.summary["J-Mean"],
            score.summary["F-Mean"],
            " -- random weights: noise expected" if cfg.model.checkpoint is None else "",
        )
    log.info(
        "done: %d frames in %.1fs (%.2f fps; decode %.1fs, model %.1fs, encode %.1fs) -> %s",
        timings.frames,
        timings.wall_s,
        timings.frames / max(timings.wall_s, 1e-9),
        timings.decode_s,
        timings.model_s,
        timings.encode_s,
        out,
    )
    return record


# ---- entry points: one error line, exit codes, signals, --help ----------------------------------------

_EXAMPLES = """\
  tracker source.path=clip.mp4 prompts.path=prompts.yaml model=sam2.1_hiera_l model.checkpoint=ckpt.pt
  tracker source.path=clip.mp4 prompts.box=[100,80,260,240] prompts.frame=0
  tracker experiment=demo
  tracker dataset=davis dataset.root=data/davis model=toy
  tracker source.path=clip.mp4 prompts=auto discover.every=4   (find the objects; new ones join every 4 frames)
  tracker source.path=clip.mp4 prompts=detections prompts.path=gt.txt sink.mots=true   (MOT boxes -> MOTS masks)
  tracker -m source.path=a.mp4,b.mp4 prompts.path=p.yaml output_dir=runs/ab   (runs/ab/0, runs/ab/1)
  tracker source.path=rtsp://camera/stream prompts.path=p.yaml live.realtime=true   (online, until it ends)
  tracker source.path=long.mp4 prompts.path=p.yaml output_dir=runs/long resume=true   (after a kill)
  tracker-studio source.path=clip.mp4   (a page: click on objects, see masks, track, correct)"""


def _help() -> str:
    """A short --help: the groups and their options, the keys worth knowing, examples. (Hydra's own
    lists SAM 2's whole architecture; ``--cfg job`` still prints everything, ``--hydra-help`` Hydra's.)"""
    from ..api import compose_config

    root = config_dir()
    groups = [d.name for d in sorted(root.iterdir()) if d.is_dir() and d.name not in ("hydra", "train")]
    lines = ["tracker: track objects through a video with SAM 2. Overrides are KEY=VALUE (Hydra).", "", _EXAMPLES]
    lines += ["", "Config groups (GROUP=OPTION):"]
    for g in groups:
        lines.append(f"  {g}: {', '.join(sorted(p.stem for p in (root / g).glob('*.yaml')))}")
    cfg = OmegaConf.to_container(compose_config(), resolve=False)
    lines += ["", "Keys (defaults):"]

    def leaves(node: Any, prefix: str) -> None:
        for k, v in node.items():
            if k == "arch":
                continue
            if k == "generator" and not prefix:  # a dozen thresholds: named, not listed
                lines.append("  generator.*: the automatic mask generator's grid and thresholds (run_common.yaml)")
                continue
            if isinstance(v, dict):
                leaves(v, f"{prefix}{k}.")
            else:
                shown = "null" if v is None else str(v).lower() if isinstance(v, bool) else v
                lines.append(f"  {prefix}{k}={shown}")

    leaves(cfg, "")
    lines += ["", "tracker --cfg job prints the whole composed config; --hydra-help lists Hydra's own options."]
    return "\n".join(lines)


class Interrupted(KeyboardInterrupt):
    """SIGINT, SIGTERM or SIGHUP, raised in the main thread so every cleanup path runs."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_debug = False
_failed = False
_prog = "tracker"


def _stopping(signum: int, frame: Any) -> None:
    # A second signal during the cleanup is ignored: raising again would cut the cleanup short.
    for s in _SIGNALS:
        signal.signal(s, signal.SIG_IGN)
    raise Interrupted(signum)


def _one_line(e: BaseException) -> str:
    """The error as one line: our own errors say the bad value and the fix already."""
    if isinstance(e, OSError) and e.errno == errno.ENOSPC:
        where = repr(e.filename) if e.filename else "the outputs"
        return f"no space left on the device writing {where}: free space or pick another output_dir"
    if isinstance(e, MemoryError):
        return "out of memory: lower model.image_size, or track fewer objects at once"
    if isinstance(e, OSError) and e.strerror:
        return f"{e.strerror}: {e.filename!r}" if e.filename else e.strerror
    text = " ".join(str(e).split())
    if type(e).__module__.startswith("hydra"):
        # Hydra's messages run over several lines: keep what names the value, drop its search path.
        text = text.split(" Config search path:")[0]
        if text.startswith("Multiple values for"):
            text += " (a group in the defaults takes no '+': e.g. experiment=demo)"
        cause = e.__cause__ or e.__context__
        first = str(cause).strip().splitlines()[0] if cause is not None and str(cause).strip() else ""
        if first and first not in text:
            text += f" ({first})"
    if not isinstance(e, ValueError) and not type(e).__module__.startswith("hydra"):
        text = f"{type(e).__name__}: {text} (unexpected: run again with debug=true for the traceback)"
    text = text or type(e).__name__
    return text if len(text) <= 400 else text[:397] + "..."


def _entry(app: Callable[[], Any], prog: str) -> None:
    """Run a Hydra app: any failure is one ``PROG: error:`` line and exit 2; signals exit 128+N after
    the same cleanup; ``debug=true`` shows the traceback."""
    global _debug, _prog, _failed
    _prog, _failed = prog, False
    _CREATED.clear()
    if prog == "tracker" and app is _app and any(a in ("--help", "-h") for a in sys.argv[1:]):
        print(_help())
        return
    os.environ.setdefault("HYDRA_FULL_ERROR", "1")  # Hydra's errors reach us instead of its own report
    # stderr is for the error line: Python warnings go to the log (stdout and run.log), and the one about
    # random weights is logged by _build_model already.
    logging.captureWarnings(True)
    warnings.filterwarnings("ignore", message="model.checkpoint is null", category=UserWarning)
    _debug = any(a.lower() in ("debug=true", "debug=1") for a in sys.argv[1:])
    for s in _SIGNALS:
        signal.signal(s, _stopping)
    try:
        app()
    except Interrupted as e:
        print(
            f"{prog}: interrupted ({signal.Signals(e.signum).name}); outputs of an unfinished run are removed",
            file=sys.stderr,
        )
        sys.exit(128 + e.signum)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; outputs of an unfinished run are removed", file=sys.stderr)
        sys.exit(130)
    except Exception as e:
        if _debug:
            traceback.print_exc()
        print(f"{prog}: error: {_one_line(e)}", file=sys.stderr)
        sys.exit(2)
    if _failed:
        sys.exit(2)


def _job(task: Callable[[DictConfig], Any]) -> Callable[[DictConfig], None]:
    """Wrap a Hydra task: its error is reported here, one line per failed job (Hydra would add lines of
    its own), and ``_entry`` exits 2 once every job of a sweep has run."""

    def job(cfg: DictConfig) -> None:
        global _debug, _failed
        _debug = _debug or cfg.get("debug") is True
        try:
            _absolute_paths(cfg)
            task(cfg)
        except Exception as e:
            _remove_created()
            _failed = True
            if _debug:
                traceback.print_exc()
            print(f"{_prog}: error: {_one_line(e)}", file=sys.stderr, flush=True)
        except BaseException:
            _remove_created()
            raise
        _CREATED.clear()

    job.__name__ = task.__name__
    job.__doc__ = task.__doc__
    return job


@hydra.main(config_path=_CONFIGS, config_name="config", version_base="1.3")
@_job
def _app(cfg: DictConfig) -> None:
    run(cfg)


@hydra.main(config_path=_CONFIGS, config_name="eval", version_base="1.3")
@_job
def _eval_app(cfg: DictConfig) -> None:
    """``tracker-eval pred=DIR gt=DIR``: J&F of a prediction folder against ground truth."""
    from ..experiments.datasets import gt_sequences
    from ..experiments.evaluate import evaluate, format_table, results_dict, write_results

    plain = OmegaConf.to_container(cfg, resolve=True)
    config_checks.choice(plain, "layout", ("davis", "sav"))  # type: ignore[arg-type]
    if not cfg.pred or not cfg.gt:
        raise ValueError("pass pred=PREDICTIONS_DIR gt=GROUND_TRUTH_DIR")
    out, created = _output_dir(cfg)
    planned = ["results.json", "results.csv", "run.log", ".hydra"]
    check_not_in_outputs(out, planned, [("pred", cfg.pred), ("gt", cfg.gt)])
    results = results_dict(evaluate(Path(cfg.pred), gt_sequences(cfg.gt, cfg.layout)))
    with OutputTransaction(out, created) as tx, _logged_to(tx.path("run.log")):
        _save_config(cfg, tx.staging)
        write_results(tx.staging, results)
        tx.commit()
    print(format_table(results))
    log.info("wrote %s and %s", out / "results.csv", out / "results.json")


@hydra.main(config_path=_CONFIGS, config_name="train", version_base="1.3")
@_job
def _train_app(cfg: DictConfig) -> None:
    """``tracker-train``: train / fine-tune SAM 2 on a DAVIS-layout dataset (tracker/experiments/train.py). Its output
    folder is a resumable training state (last.pt), not a transaction: each file is written atomically."""
    from ..experiments.train import TrainSettings, train

    plain = OmegaConf.to_container(cfg, resolve=True)
    config_checks.model(plain)  # type: ignore[arg-type]
    t = cfg.train
    if not t.data_root:
        raise ValueError("train.data_root is not set: pass train.data_root=DATASET (DAVIS layout)")
    out, _ = _output_dir(cfg)
    out.mkdir(parents=True, exist_ok=True)
    try:
        settings = TrainSettings(out_dir=str(out), seed=cfg.seed, **OmegaConf.to_container(t, resolve=True))
    except TypeError as e:
        raise ValueError(f"train: {e}: see configs/train/default.yaml for the keys") from None
    apply_threads(resolve_threads(config_checks.threads(plain)))  # type: ignore[arg-type]
    m = cfg.model
    from ..engine.sam import build_model

    model = build_model(
        OmegaConf.to_container(m.arch.model, resolve=True),  # type: ignore[arg-type]
        checkpoint=None,
        device=m.device,
        fill_hole_area=m.fill_hole_area,
        seed=cfg.seed,
    )
    history = train(model, settings, checkpoint_from=m.checkpoint, progress=cfg.progress)
    last = [h for h in history if "loss" in h][-1]
    log.info("done: step %d, loss %.4f -> %s", last["step"], last["loss"], out)


def main() -> None:
    _entry(_app, "tracker")


def train_main() -> None:
    _entry(_train_app, "tracker")


def eval_main() -> None:
    _entry(_eval_app, "tracker")


def report_main() -> None:
    from ..experiments.report import main as report

    _entry(report, "tracker-report")


if __name__ == "__main__":
    main()
