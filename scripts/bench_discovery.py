"""Benchmark: objects found, not only given (tracker/discovery/), with the shipped toy model on this CPU.

1. Quality on fresh synthetic sequences (scripts/make_synthetic_dataset.py's generator: 2-4 objects that
   move, occlude each other, leave the frame and come back; 160x120, 24 frames) of a seed that was never
   used to tune anything (the generator's thresholds were tuned on seeds 3000-3011 and 3100):
   a. ``prompts=detections`` from ground-truth boxes jittered by up to 2 px, as a MOTChallenge file
      (ids kept, later boxes re-prompt drifting masks): J&F of the mask PNGs (DAVIS metrics);
   b. ``experiment=discover`` (``prompts=auto discover.every=4``): the share of ground-truth objects
      recovered (one id with mean IoU >= 0.5 over the object's visible frames) and the spurious ids per
      sequence (mean IoU < 0.3 with every object), scored from ``masks.jsonl``
      (tracker/experiments/discovery.py).
2. Speed on a 1280x720 and a 320x240 frame of the demo world: the generator (decoder over the grid,
   filters, NMS) and the upsampling of its kept masks, median of 10; end-to-end fps of ``tracker`` on
   120-frame H.264 clips of both sizes: the demo's two objects given, with ``discover.every`` 0, 4 and
   16, and ``prompts=auto`` with ``discover.every`` 0 (found on frame 0 only) and 4. (The toy model finds
   nothing at 720p: it was trained on 160x120 frames, and the texture downscaled from 720p is not what
   it knows; the 720p runs measure the generator's cost, the 320x240 ones a run that finds objects.)
Every run goes through ``tracker.apps.cli.run`` (the command's own code path). Run it on a quiet machine.

    python scripts/bench_discovery.py --json benchmarks/bench_discovery_cpu.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tracker.api import compose_config  # noqa: E402
from tracker.apps import cli  # noqa: E402
from tracker.experiments.discovery import read_tracks, score_discovery  # noqa: E402
from tracker.experiments.metrics import score_sequence, summarize  # noqa: E402
from tracker.experiments.synthetic import mot_rows, write_dataset  # noqa: E402


def run(*overrides: str) -> dict:
    return cli.run(compose_config(["progress=false", *overrides]))


def quality(root: Path, names: list[str], work: Path) -> dict:
    det_scores, per_seq = [], []
    found = objects = spurious = 0
    for i, name in enumerate(names):
        labs = [np.asarray(Image.open(p)) for p in sorted((root / "Annotations" / "480p" / name).glob("*.png"))]
        frames = root / "JPEGImages" / "480p" / name
        mot = work / f"{name}.txt"
        mot.write_text("\n".join(mot_rows(labs, jitter=2, seed=i)) + "\n")
        out = work / f"det_{name}"
        rec = run(
            "model=toy",
            "source=images",
            f"source.path={frames}",
            "prompts=detections",
            f"prompts.path={mot}",
            f"output_dir={out}",
            "sink.annotated=false",
        )
        preds = [np.asarray(Image.open(out / "masks" / f"{t:05d}.png")) for t in range(len(labs))]
        seq_scores = score_sequence(name, labs, preds)
        det_scores += seq_scores
        out = work / f"auto_{name}"
        auto = run(
            "experiment=discover",
            "source=images",
            f"source.path={frames}",
            f"output_dir={out}",
            "sink.annotated=false",
            "sink.png=false",
        )
        _, tracks = read_tracks(out / "masks.jsonl")
        s = score_discovery(labs, tracks)
        found, objects, spurious = found + s["recovered"], objects + s["objects"], spurious + s["spurious"]
        per_seq.append(
            {
                "sequence": name,
                "detections_jf": round(summarize(seq_scores)["J&F-Mean"], 4),  # type: ignore[arg-type]
                "reprompts": rec.get("reprompts", {}).get("total", 0),
                **{k: s[k] for k in ("objects", "recovered", "tracks", "spurious")},
                "joined": auto["discovery"]["joined"],
                "best_iou_per_object": s["best_iou_per_object"],
            }
        )
        print(json.dumps(per_seq[-1]), flush=True)
    return {
        "detections": {"J&F-Mean": round(summarize(det_scores)["J&F-Mean"], 4)},  # type: ignore[arg-type]
        "auto": {
            "objects": objects,
            "recovered": found,
            "recovered_share": round(found / objects, 4),
            "spurious": spurious,
            "spurious_per_sequence": round(spurious / len(names), 3),
        },
        "sequences": per_seq,
    }


def _generator_ms(model, gen, rgb: np.ndarray) -> dict:
    """Median timings of 10 runs on one frame: resize + image encoder, generator, upsampling kept masks."""
    h, w = rgb.shape[:2]
    enc, gen_ms, up = [], [], []
    for _ in range(10):
        t0 = time.perf_counter()
        feats = model.image_features(model.preprocess(rgb))
        t1 = time.perf_counter()
        cands = gen.generate(feats)
        t2 = time.perf_counter()
        [c.video_mask((h, w)) for c in cands]
        t3 = time.perf_counter()
        enc.append((t1 - t0) * 1000)
        gen_ms.append((t2 - t1) * 1000)
        up.append((t3 - t2) * 1000)
    return {
        "frame": f"{w}x{h}",
        "masks_kept": len(cands),
        "resize_and_image_encoder_ms_p50": round(statistics.median(enc), 1),
        "generator_ms_p50": round(statistics.median(gen_ms), 1),
        "upsample_kept_masks_ms_p50": round(statistics.median(up), 2),
    }


def speed(work: Path, frames: int) -> dict:
    import yaml
    from omegaconf import OmegaConf

    from tracker.discovery import GeneratorSettings, MaskGenerator
    from tracker.engine.sam import build_model
    from tracker.experiments.demo import demo_prompts, demo_sequence, write_demo_clip
    from tracker.threads import apply_threads, resolve_threads

    apply_threads(resolve_threads("auto"))
    cfg = compose_config(["experiment=discover"])
    model = build_model(OmegaConf.to_container(cfg.model.arch.model, resolve=True), cfg.model.checkpoint, "cpu")
    gen = MaskGenerator(model, GeneratorSettings(**OmegaConf.to_container(cfg.generator, resolve=True)))
    out: dict = {
        "grid_prompts": len(gen._grid),
        "points_per_prompt": gen.settings.points_per_prompt,
        "model_input": f"{model.image_size}x{model.image_size}",
        "generator": [_generator_ms(model, gen, demo_sequence(2, w, h, 0).frame(0)[0]) for w, h in SIZES],
    }
    # End to end: the demo's two objects given (boxes on frame 0) plus discovery every 4 frames, against
    # the same run without it; and, where the toy sees objects, prompts=auto finding them all.
    for w, h in SIZES:
        clip = write_demo_clip(work / f"clip_{w}x{h}.mp4", frames, w, h, 0)
        spec = demo_prompts(frames, w, h, 0)
        doc = {"objects": [{"id": p.object_id, "prompts": [{"frame": 0, "box": list(p.box)}]} for p in spec.prompts]}
        prompts = work / f"prompts_{w}x{h}.yaml"
        prompts.write_text(yaml.safe_dump(doc))
        runs = {}
        for name, args in (
            ("given_every_0", ["prompts=file", f"prompts.path={prompts}", "discover.every=0"]),
            ("given_every_4", ["prompts=file", f"prompts.path={prompts}", "discover.every=4"]),
            ("given_every_16", ["prompts=file", f"prompts.path={prompts}", "discover.every=16"]),
            ("auto_every_0", ["discover.every=0"]),
            ("auto_every_4", ["discover.every=4"]),
        ):
            dest = work / f"e2e_{w}x{h}_{name}"
            rec = run("experiment=discover", f"source.path={clip}", f"output_dir={dest}", *args)
            joined = rec.get("discovery", {}).get("joined", [])
            runs[name] = {"fps": rec["fps"], "wall_s": rec["wall_s"], "objects": len(rec["objects"])}
            runs[name]["joined"] = len(joined)
        out[f"end_to_end_{w}x{h}_{frames}_frames"] = runs
    return out


SIZES = [(1280, 720), (320, 240)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sequences", type=int, default=20)
    ap.add_argument("--seed", type=int, default=8642)
    ap.add_argument("--frames", type=int, default=120, help="length of the 720p clip of the speed part")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-discovery-") as tmp:
        work = Path(tmp)
        names = write_dataset(work / "data", args.sequences, seed=args.seed, frames=24)
        result = {
            "command": "python scripts/bench_discovery.py " + " ".join(sys.argv[1:]),
            "machine": {"cpu": platform.processor() or platform.machine(), "python": platform.python_version()},
            "model": "toy (tracker/weights/toy.pt)",
            "dataset": {
                "generator": "scripts/make_synthetic_dataset.py",
                "seed": args.seed,
                "sequences": args.sequences,
                "frames": 24,
                "size": "160x120",
            },
            "quality": quality(work / "data", names, work),
            "speed": speed(work, args.frames),
        }
    print(
        json.dumps(
            {k: v for k, v in result.items() if k != "quality"}
            | {"quality": {k: v for k, v in result["quality"].items() if k != "sequences"}},
            indent=2,
        )
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
