"""GPU check: one prepared command for the GPU machine, within a time budget (8 minutes by default).

    bash scripts/gpu_check.sh OUT                      # on the GPU machine (installs the carried wheels)
    python scripts/gpu_check.py --out OUT --device cpu --quick   # the CPU dry run (tests/test_gpu_check.py)
    bash scripts/gpu_check.sh OUT --sections speed memory --models sam2.1_hiera_t --objects 1 20   # a rerun

Sections, in order of importance (a section that would not fit the budget is recorded as skipped):
  1. parity in fp32 (TF32 off): ours vs upstream SAM2VideoPredictor, the CPU suite's scenarios and tolerance;
  2. bf16 autocast: the toy model's J&F on the synthetic test set, fp32 vs bf16 (within 0.01), and ours vs
     upstream both under bf16 (mask agreement >= 0.99);
  3. propagation benchmark: SAM 2.1 tiny and large (random weights), 1 / 5 / 20 objects, ours vs upstream
     vs upstream_vos (vos_optimized) vs ours_compiled (model.compile; compile times apart), fps and peak
     GPU memory; then ours alone: 8 objects prompted on 8 different frames against 1 object, float32
     against bfloat16 at 20 objects, and 128 objects;
  4. memory: ours at 300 and at 3000 frames (peak GPU memory must stay within 1.1x);
  5. end to end: the tracker CLI on a 1080p clip with all sinks vs propagation alone on that clip.
Writes OUT/gpu_check.json (benchmark records, as scripts/bench_propagation.py writes them) and
OUT/gpu_check_summary.json (every check), and prints the table last.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

FULL = {
    "parity_cases": None,  # all
    "parity_frames": 32,
    "jf_sequences": (20, 24),
    "bench_models": ["sam2.1_hiera_t", "sam2.1_hiera_l"],
    "bench_size": (1280, 720, 300, 1024),  # width, height, frames, image_size
    "bench_objects": [1, 5, 20],
    "bench_impls": ["ours", "upstream", "upstream_vos", "ours_compiled"],
    "objects_cases": [
        (1, 0, "bfloat16"),
        (8, 10, "bfloat16"),
        (20, 0, "float32"),
        (20, 0, "bfloat16"),
        (128, 0, "bfloat16"),  # issue 41: >= 10 fps on an H200
    ],
    "memory_frames": (300, 3000),
    "bf16_parity_cases": ["a_one_box", "b_three_objects"],
    "memory_size": (640, 360),  # the frame count is what matters; a smaller clip encodes faster
    "e2e": (1920, 1080, 120),
}
SECTIONS = ("parity", "bf16", "speed", "objects", "memory", "e2e")
QUICK = {
    "parity_cases": ["a_one_box"],  # prompted on frame 0: runs on the short clip (tests/test_parity.py has them all)
    "parity_frames": 10,
    "jf_sequences": (2, 6),
    "bench_models": ["sam2.1_hiera_t"],
    "bench_size": (96, 64, 8, 128),
    "bench_objects": [2],
    "bench_impls": ["ours", "upstream"],
    "objects_cases": [],  # the speed section's child with --stagger / --dtype: the dry run skips it
    "memory_frames": (),  # the same child as the speed section: the dry run skips it
    "bf16_parity_cases": ["a_one_box"],
    "memory_size": (96, 64),
    "e2e": (96, 64, 8),
}


class Budget:
    """Seconds left to start new work; 0 given: no budget (the CPU dry run in the tests runs every section,
    however busy the machine is)."""

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds if seconds > 0 else float("inf")

    def left(self) -> float:
        return self.end - time.monotonic()

    def timeout(self) -> float | None:
        """For subprocess.run: None when there is no budget."""
        return None if self.end == float("inf") else max(self.left(), 1)


def parity(plan: dict, device: str, tmp: Path, bf16: bool = False, names: list[str] | None = None) -> list[dict]:
    import torch
    from helpers import model_cfg, moving_shapes, write_video
    from parity import cases, compare

    # IEEE float32 for both sides (the new API only: torch refuses to read flags set through both)
    torch.backends.cuda.matmul.fp32_precision = torch.backends.cudnn.conv.fp32_precision = "ieee"
    frames = plan["parity_frames"]
    clip = tmp / "parity.mp4"
    if not clip.exists():
        write_video(clip, moving_shapes(frames, 160, 120))
    out = []
    for name, (prompts, extra) in cases().items():
        wanted = names if names is not None else plan["parity_cases"]
        if wanted is not None and name not in wanted:
            continue
        r = compare(model_cfg(128, extra), clip, prompts, device=device, bf16=bf16)
        out.append(
            {
                "case": name,
                "bf16": bf16,
                "max_abs_diff": r["max_abs_diff"],
                "allclose_1e-4": r["allclose_1e-4"],
                "mask_agreement": round(r["mask_agreement"], 5),
                "frames_in_order": r["emitted"] == list(range(frames)),
            }
        )
    return out


def jf_fp32_vs_bf16(plan: dict, device: str, tmp: Path) -> dict:
    from tracker.api import load_model
    from tracker.experiments.datasets import load_sequences
    from tracker.experiments.synthetic import write_dataset
    from tracker.experiments.vos import run_dataset

    n, frames = plan["jf_sequences"]
    root = tmp / "synth_test"
    if not root.exists():
        write_dataset(root, n, seed=31337, frames=frames)
    seqs = load_sequences("davis", root)
    result = {}
    for bf16 in (False, True):
        model = load_model("toy", device=device, dtype="bfloat16" if bf16 else "float32")
        res, _ = run_dataset(model, seqs, tmp / f"jf_{bf16}", "davis", prefetch=0)
        result["bf16" if bf16 else "fp32"] = round(res["dataset"]["J&F-Mean"], 4)
    result["diff"] = round(abs(result["bf16"] - result["fp32"]), 4)
    result["ok"] = result["diff"] <= 0.01
    return result


def bench(
    model: str,
    impl: str,
    objects: int,
    frames: int,
    size: tuple,
    device: str,
    budget: Budget,
    video: Path | None,
    stagger: int = 0,
    dtype: str = "auto",
) -> dict:
    width, height, _, image_size = size
    cmd = [sys.executable, str(ROOT / "scripts" / "bench_propagation.py"), "--child", "--video", str(video)]
    cmd += ["--impl", impl, "--objects", str(objects), "--image-size", str(image_size), "--model", model]
    cmd += ["--device", device, "--stagger", str(stagger), "--dtype", dtype]
    record = {"impl": impl, "model": model, "objects": objects, "frames": frames, "image_size": image_size}
    record.update(stagger=stagger, dtype=dtype)
    if budget.left() < 20:
        return {**record, "skipped": "time budget"}
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=budget.timeout())
    except subprocess.TimeoutExpired:
        return {**record, "skipped": "ran past the time budget"}
    if res.returncode != 0:
        return {**record, "error": res.stderr.strip().splitlines()[-1] if res.stderr.strip() else "failed"}
    return json.loads(res.stdout.strip().splitlines()[-1])


def make_clip(path: Path, width: int, height: int, frames: int) -> Path:
    from helpers import moving_shapes, write_video

    if not path.exists():
        write_video(path, moving_shapes(frames, width, height))
    return path


def end_to_end(plan: dict, device: str, tmp: Path, budget: Budget) -> dict:
    width, height, frames = plan["e2e"]
    clip = make_clip(tmp / "e2e.mp4", width, height, frames)
    image_size = plan["bench_size"][3]
    out = tmp / "e2e_out"
    box = f"prompts.box=[{width // 8},{height // 8},{width // 3},{height // 3}]"
    cmd = [sys.executable, "-m", "tracker.apps.cli", f"source.path={clip}", box, f"output_dir={out}"]
    cmd += ["model=sam2.1_hiera_t", "model.random_weights=true", f"model.image_size={image_size}"]
    cmd += [f"model.device={device}", "progress=false"]
    cmd += ["sink.coco=true", "sink.yolo=true"]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=budget.timeout())
    except subprocess.TimeoutExpired:
        return {"skipped": "ran past the time budget"}
    if res.returncode != 0:
        return {"error": res.stderr.strip()[-500:]}
    run = json.loads((out / "run.json").read_text())
    alone = bench("sam2.1_hiera_t", "ours", 1, frames, (width, height, frames, image_size), device, budget, clip)
    e2e = {k: run[k] for k in ("frames", "fps", "wall_s", "decode_s", "model_s", "encode_s", "peak_gpu_mib")}
    e2e["propagation_only_fps"] = alone.get("fps")
    if alone.get("fps"):
        e2e["ratio"] = round(run["fps"] / alone["fps"], 3)
    return e2e


def table(records: list[dict], summary: dict) -> str:
    lines = [f"device: {summary['device']}   torch {summary['torch']}   ({summary['elapsed_s']} s)"]
    head = f"{'section':8} {'model':16} {'impl':13} {'obj':>4} {'frames':>6} {'px':>5} {'dtype':>8} {'fps':>9}"
    lines.append(f"{head} {'peak GPU MiB':>12} {'compile s':>9}")
    for r in records:
        fps = r.get("fps", r.get("skipped", r.get("error", "?")))
        lines.append(
            f"{r['section']:8} {r['model']:16} {r['impl']:13} {r['objects']:>4} {r['frames']:>6} {r['image_size']:>5} "
            f"{r.get('dtype', ''):>8} {fps!s:>9} {r.get('peak_gpu_mib', ''):>12} {r.get('compile_s', ''):>9}"
        )
    for name, value in summary["checks"].items():
        lines.append(f"check {name}: {value}")
    return "\n".join(lines)


def speedups(records: list[dict]) -> dict:
    out = {}
    by = {(r["model"], r["impl"], r["objects"]): r.get("fps") for r in records}
    for (model, impl, k), fps in by.items():
        if not impl.startswith("ours") or not fps:
            continue
        for other in ("upstream", "upstream_vos"):
            if by.get((model, other, k)):
                out[f"{model} {k} obj {impl}/{other}"] = round(fps / by[(model, other, k)], 2)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--quick", action="store_true", help="tiny sizes: the CPU dry run")
    ap.add_argument("--budget-s", type=float, default=450.0, help="stop starting new work after this long (0: never)")
    # a second, shorter call can rerun what the first one's budget cut (the full check does not fit one call)
    ap.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    ap.add_argument("--models", nargs="+", help="speed section: these models only (objects section: the first)")
    ap.add_argument("--objects", nargs="+", type=int, help="speed section: these object counts only")
    ap.add_argument("--impls", nargs="+", choices=FULL["bench_impls"], help="speed section: these only")
    args = ap.parse_args()
    import torch

    plan = dict(QUICK if args.quick else FULL)
    plan["bench_models"] = args.models or plan["bench_models"]
    plan["bench_objects"] = args.objects or plan["bench_objects"]
    plan["bench_impls"] = args.impls or plan["bench_impls"]
    wanted = set(args.sections)
    budget = Budget(args.budget_s)
    started = time.monotonic()
    args.out.mkdir(parents=True, exist_ok=True)
    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else args.device
    checks: dict = {}
    records: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        p32 = parity(plan, args.device, tmp) if "parity" in wanted else []
        if p32:
            checks["parity fp32 (all within 1e-4)"] = all(r["allclose_1e-4"] and r["frames_in_order"] for r in p32)
            checks["parity fp32 max abs diff"] = max(r["max_abs_diff"] for r in p32)
        if "bf16" in wanted and budget.left() > 60:
            jf = jf_fp32_vs_bf16(plan, args.device, tmp)
            checks["toy J&F fp32 / bf16 / |diff| <= 0.01"] = f"{jf['fp32']} / {jf['bf16']} / {jf['ok']}"
            pbf = parity(plan, args.device, tmp, bf16=True, names=plan["bf16_parity_cases"])
            checks["ours vs upstream under bf16: min mask agreement (>= 0.99)"] = min(r["mask_agreement"] for r in pbf)
        width, height, frames, image_size = plan["bench_size"]
        clip = make_clip(tmp / "bench.mp4", width, height, frames) if wanted & {"speed", "objects"} else None
        # upstream_vos last: its compilation may take minutes; what the budget cuts is recorded as skipped
        for impl in plan["bench_impls"] if "speed" in wanted else []:
            for model in plan["bench_models"]:
                for k in plan["bench_objects"]:
                    rec = bench(model, impl, k, frames, plan["bench_size"], args.device, budget, clip)
                    records.append({"section": "speed", **rec})
                    print(json.dumps(rec), flush=True)
        checks.update(speedups(records))
        by_case = {}
        for k, stagger, dtype in plan["objects_cases"] if "objects" in wanted else []:
            model = plan["bench_models"][0]
            rec = bench(model, "ours", k, frames, plan["bench_size"], args.device, budget, clip, stagger, dtype)
            records.append({"section": "objects", **rec})
            by_case[(k, stagger, dtype)] = rec.get("fps")
            print(json.dumps(rec), flush=True)
        one = by_case.get((1, 0, "bfloat16"))
        if one and by_case.get((8, 10, "bfloat16")):
            checks["8 objects on 8 prompt frames / 1 object, time (<= 2)"] = round(
                one / by_case[(8, 10, "bfloat16")], 2
            )
        if by_case.get((20, 0, "float32")) and by_case.get((20, 0, "bfloat16")):
            checks["20 objects bf16 / fp32 fps"] = round(by_case[(20, 0, "bfloat16")] / by_case[(20, 0, "float32")], 2)
        if by_case.get((128, 0, "bfloat16")):
            checks["128 objects fps (>= 10 on an H200)"] = by_case[(128, 0, "bfloat16")]
        mem = {}
        mw, mh = plan["memory_size"]
        for n in plan["memory_frames"] if "memory" in wanted else ():
            video = make_clip(tmp / f"mem_{n}.mp4", mw, mh, n)
            rec = bench("sam2.1_hiera_t", "ours", 1, n, (mw, mh, n, image_size), args.device, budget, video)
            records.append({"section": "memory", **rec})
            mem[n] = rec.get("peak_gpu_mib") if args.device.startswith("cuda") else rec.get("peak_rss_mib")
        a, b = plan["memory_frames"] or (0, 0)
        if mem.get(a) and mem.get(b):
            checks[f"peak memory {b} / {a} frames (<= 1.1)"] = round(mem[b] / mem[a], 3)
        if "e2e" in wanted:
            e2e = end_to_end(plan, args.device, tmp, budget)
            checks["end to end / propagation only fps (>= 0.9)"] = e2e.get("ratio", e2e)
            checks["end to end split (decode / model / encode s)"] = (
                f"{e2e.get('decode_s')} / {e2e.get('model_s')} / {e2e.get('encode_s')}"
            )
    summary = {
        "device": device_name,
        "torch": torch.__version__,
        "elapsed_s": round(time.monotonic() - started, 1),
        "checks": checks,
        "parity": p32,
    }
    (args.out / "gpu_check.json").write_text(json.dumps(records, indent=1) + "\n")
    (args.out / "gpu_check_summary.json").write_text(json.dumps(summary, indent=1, default=str) + "\n")
    print(table(records, summary))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    os.environ.setdefault("TQDM_DISABLE", "1")  # upstream's per-run progress bars would bury the table
    main()
