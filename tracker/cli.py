"""The ``tracker`` command: a Hydra app over ``configs/config.yaml``. The only module that sees Hydra
config objects; everything below it takes plain values.

    tracker source.path=clip.mp4 prompts.path=prompts.yaml
    tracker source.path=clip.mp4 prompts.box=[10,20,200,220] prompts.frame=0
    tracker +experiment=demo
"""

from __future__ import annotations

import logging
import platform
import sys
import time
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

import tracker

log = logging.getLogger("tracker")

_CONFIGS = str(Path(__file__).resolve().parents[1] / "configs")

# hydra.run.dir = output_dir when given (its .hydra/ config and log land beside the outputs), else
# Hydra's dated folder. Registered here, in the CLI layer, before any config is composed.
if not OmegaConf.has_resolver("tracker.run_dir"):
    OmegaConf.register_new_resolver("tracker.run_dir", lambda out, default: out or default)


def _output_dir(cfg: DictConfig) -> Path:
    if cfg.output_dir:
        out = Path(cfg.output_dir)
    else:
        from hydra.core.hydra_config import HydraConfig

        out = Path(HydraConfig.get().runtime.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    return out


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
    from .sam import build_model

    m = cfg.model
    if m.checkpoint is None:
        log.warning("model.checkpoint is null: RANDOM weights, the masks are noise (pass model.checkpoint=PATH)")
    return build_model(
        OmegaConf.to_container(m.arch.model, resolve=True),  # type: ignore[arg-type]
        checkpoint=m.checkpoint,
        device=m.device,
        compile=m.compile,
        fill_hole_area=m.fill_hole_area,
        seed=cfg.seed,
    )


def _device_name(model) -> str:
    import torch

    return str(model.device) if model.device.type != "cuda" else torch.cuda.get_device_name()


def _peak_gpu_mib() -> float:
    import torch

    return round(torch.cuda.max_memory_allocated() / 2**20, 1) if torch.cuda.is_available() else 0.0


def _record(cfg: DictConfig, model, timings, started: float, **extra: Any) -> dict[str, Any]:
    """run.json: the resolved config, versions, device, what ran, time split and peak memory."""
    from .pipeline import peak_rss_mib

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


def run_dataset_config(cfg: DictConfig, out: Path, started: float) -> dict[str, Any]:
    """``dataset=davis|sav``: track every sequence (VOS protocol), write predictions, evaluate."""
    from .datasets import load_sequences
    from .sinks import write_json_atomic
    from .vos import run_dataset

    d = cfg.dataset
    if not d.root:
        raise ValueError("dataset.root is not set: pass dataset.root=PATH (e.g. scripts/make_synthetic_dataset.py)")
    seqs = load_sequences(d.layout, d.root, d.split, d.resolution, d.shard, d.num_shards)
    model = _build_model(cfg)
    results, timings = run_dataset(
        model,
        seqs,
        out,
        d.layout,
        prompt=d.prompt,
        annotated_video=d.annotated_video,
        reverse_chunk=cfg.propagation.reverse_chunk,
        prefetch=cfg.propagation.prefetch,
        progress=cfg.progress,
    )
    record = _record(cfg, model, timings, started, sequences=[s.name for s in seqs], results=results["dataset"])
    write_json_atomic(out / "run.json", record)
    return record


def run(cfg: DictConfig) -> dict[str, Any]:
    """Resolve the config into plain objects and run the pipeline; returns run.json's content."""
    from .pipeline import run_pipeline
    from .prompts import PromptError, load_prompts, quick_prompts
    from .propagation import Propagator
    from .sinks import AnnotatedVideoSink, JsonlSink, MotSink, PngMasksSink, write_json_atomic
    from .source import open_source

    started = time.perf_counter()
    out = _output_dir(cfg)
    if cfg.get("dataset"):
        return run_dataset_config(cfg, out, started)
    src_cfg = OmegaConf.to_container(cfg.source, resolve=True)
    assert isinstance(src_cfg, dict)
    kind = src_cfg.pop("kind")
    path = src_cfg.pop("path")
    spec = None
    demo_clip = False
    if cfg.get("demo") and not path:
        demo_clip = True
        from .demo import demo_prompts, write_demo_clip

        d = cfg.demo
        path = str(write_demo_clip(out / "demo_input.mp4", d.frames, d.width, d.height, d.seed))
        spec = demo_prompts(d.frames, d.width, d.height, d.seed)
        log.info("demo: wrote a synthetic %d-frame clip with two moving objects to %s", d.frames, path)
    if not path:
        raise PromptError("source.path is not set: pass source.path=VIDEO (or +experiment=demo)")
    source = open_source(kind, path, **src_cfg)
    info = source.info

    p = cfg.prompts
    if spec is None:
        if p.path:
            spec = load_prompts(p.path)
        elif p.box is not None or p.points is not None:
            spec = quick_prompts(
                frame=p.frame,
                box=None if p.box is None else list(p.box),
                points=None if p.points is None else [list(x) for x in p.points],
                object_id=p.id,
                label=p.label,
            )
        else:
            raise PromptError(
                "nothing to track: pass prompts.path=FILE, or prompts.box=[x0,y0,x1,y1] / "
                "prompts.points=[[x,y,1]] with prompts.frame=N"
            )
    Propagator.check_prompts(spec.prompts, info, spec.object_ids)

    model = _build_model(cfg)
    s = cfg.sink
    sinks = []
    if s.annotated:
        sinks.append(
            AnnotatedVideoSink(
                out / "annotated.mp4",
                info,
                Path(path) if kind != "images" else None,
                labels=spec.labels,
                crf=s.crf,
                preset=s.preset,
                alpha=s.alpha,
            )
        )
    if s.png:
        sinks.append(PngMasksSink(out / "masks"))
    if s.jsonl:
        sinks.append(JsonlSink(out / "masks.jsonl", labels=spec.labels))
    if s.mot:
        sinks.append(MotSink(out / "tracks.csv"))
    score = None
    if cfg.get("demo") and demo_clip:
        from .demo import GroundTruthScore

        d = cfg.demo
        score = GroundTruthScore(out / "demo_score.json", d.frames, d.width, d.height, d.seed)
        sinks.append(score)

    propagator = Propagator(model, reverse_chunk=cfg.propagation.reverse_chunk, prefetch=cfg.propagation.prefetch)
    log.info(
        "tracking %d object(s) through %s (%dx%d, %s frames) on %s",
        len(spec.object_ids),
        path,
        info.width,
        info.height,
        info.num_frames,
        model.device,
    )
    timings = run_pipeline(
        propagator,
        source,
        spec.prompts,
        spec.object_ids,
        sinks,
        queue_depth=cfg.propagation.prefetch,
        progress=cfg.progress,
    )
    record = _record(
        cfg,
        model,
        timings,
        started,
        source={"path": str(path), "kind": kind, **vars(info)},
        objects={str(k): v for k, v in spec.labels.items()},
        outputs=sorted(str(x.target.name) for x in sinks),
        **({"demo_score": score.summary} if score is not None else {}),
    )
    write_json_atomic(out / "run.json", record)
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


@hydra.main(config_path=_CONFIGS, config_name="config", version_base="1.3")
def _app(cfg: DictConfig) -> None:
    try:
        run(cfg)
    except (ValueError, FileNotFoundError) as e:
        # Bad input: one line, no traceback, exit 2. Outputs were not renamed into place.
        _fail(e)
    except KeyboardInterrupt:
        print("tracker: interrupted; partial outputs were removed", file=sys.stderr)
        sys.exit(130)


def _fail(e: BaseException) -> None:
    msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    print(f"tracker: error: {msg}", file=sys.stderr)
    sys.exit(2)


@hydra.main(config_path=_CONFIGS, config_name="eval", version_base="1.3")
def _eval_app(cfg: DictConfig) -> None:
    """``tracker-eval pred=DIR gt=DIR``: J&F of a prediction folder against ground truth."""
    from .datasets import gt_sequences
    from .evaluate import evaluate, format_table, results_dict, write_results

    try:
        if not cfg.pred or not cfg.gt:
            raise ValueError("pass pred=PREDICTIONS_DIR gt=GROUND_TRUTH_DIR")
        results = results_dict(evaluate(Path(cfg.pred), gt_sequences(cfg.gt, cfg.layout)))
        out = _output_dir(cfg)
        write_results(out, results)
        print(format_table(results))
        log.info("wrote %s and %s", out / "results.csv", out / "results.json")
    except (ValueError, FileNotFoundError) as e:
        _fail(e)


@hydra.main(config_path=_CONFIGS, config_name="train", version_base="1.3")
def _train_app(cfg: DictConfig) -> None:
    """``tracker-train``: train / fine-tune SAM 2 on a DAVIS-layout dataset (tracker/train.py)."""
    from .train import TrainSettings, train

    try:
        t = cfg.train
        if not t.data_root:
            raise ValueError("train.data_root is not set: pass train.data_root=DATASET (DAVIS layout)")
        out = _output_dir(cfg)
        settings = TrainSettings(out_dir=str(out), seed=cfg.seed, **OmegaConf.to_container(t, resolve=True))
        m = cfg.model
        from .sam import build_model

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
    except (ValueError, FileNotFoundError) as e:
        _fail(e)


def main() -> None:
    _app()


def train_main() -> None:
    _train_app()


def eval_main() -> None:
    _eval_app()


def report_main() -> None:
    from .report import main as report

    report()


if __name__ == "__main__":
    main()
