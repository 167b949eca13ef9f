"""Benchmark: our streaming engine against upstream SAM2VideoPredictor on the same mp4.

Each (impl, frames, objects) runs in a fresh child process so that peak RSS is its own. Upstream is
timed as users run it: ``init_state`` on the mp4, boxes on frame 0, ``propagate_in_video``, and every
frame's masks read to the CPU. Ours: PyAV source -> Propagator -> bool masks on the CPU. Both use the
same seeded random weights (speed and memory do not depend on the weights' values).

    python scripts/bench_propagation.py --image-size 128 --frames 200 1000 --objects 1 5 --json bench.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def _boxes(objects: int, width: int, height: int) -> list[tuple[float, float, float, float]]:
    boxes = []
    for i in range(objects):
        x0 = (i * width / max(objects, 1)) % (width * 0.8)
        boxes.append((x0, height * 0.2, x0 + width * 0.15, height * 0.6))
    return boxes


def _model_cfg(model: str, image_size: int) -> dict:
    from helpers import model_cfg

    return model_cfg(image_size, [f"model={model}"])


def _child(args: argparse.Namespace) -> dict:
    import torch

    warnings.filterwarnings("ignore")
    from tracker.engine.sam import build_model
    from tracker.io.source import PyAVSource

    cfg = _model_cfg(args.model, args.image_size)
    src = PyAVSource(args.video)
    w, h, n = src.info.width, src.info.height, src.info.num_frames
    boxes = _boxes(args.objects, w, h)
    compiled = args.impl == "ours_compiled"
    model = build_model(
        cfg["arch"]["model"], seed=0, device=args.device, fill_hole_area=cfg["fill_hole_area"], compile=compiled
    )
    device = model.device
    # auto: as upstream runs here (bfloat16 autocast on CUDA, float32 on the CPU)
    dtype = args.dtype if args.dtype != "auto" else ("bfloat16" if device.type == "cuda" else "float32")
    model.dtype = getattr(torch, dtype)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    frames = 0
    compile_s = 0.0
    if args.impl.startswith("ours"):
        from tracker.engine.propagation import Propagator
        from tracker.records import Prompt

        # --stagger k: object i is prompted on frame k*i (upstream cannot run that on one state: ours only)
        prompts = [Prompt(i + 1, min(n - 1, args.stagger * i), box=b) for i, b in enumerate(boxes)]
        if compiled:  # as for upstream_vos: compiling happens on the first frames, timed apart
            for i, _ in enumerate(Propagator(model).run(src, prompts)):
                if i == min(n - 1, 16):
                    break
            if device.type == "cuda":
                torch.cuda.synchronize()
            compile_s = time.perf_counter() - t0
            t0 = time.perf_counter()
        for _, fm in Propagator(model).run(src, prompts):
            frames += 1
            assert fm.masks.shape == (args.objects, h, w)
    else:
        from hydra.utils import instantiate

        # upstream_vos: SAM2VideoPredictorVOS, what build_sam2_video_predictor(vos_optimized=True) builds
        # (torch.compile of every component, max-autotune)
        cls = "SAM2VideoPredictorVOS" if args.impl == "upstream_vos" else "SAM2VideoPredictor"
        arch = dict(cfg["arch"]["model"], _target_=f"sam2.sam2_video_predictor.{cls}")
        arch["fill_hole_area"] = cfg["fill_hole_area"]
        pred = instantiate(arch, _recursive_=True).to(device).eval()
        pred.load_state_dict(model.net.state_dict())
        del model
        ctx = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.no_grad()
        with torch.inference_mode(), ctx:
            state = pred.init_state(video_path=str(args.video))
            if args.impl == "upstream_vos":
                # compilation happens on the first frames: time it apart, then start the timed run over
                for i, b in enumerate(boxes):
                    pred.add_new_points_or_box(state, 0, i + 1, box=b)
                for _ in pred.propagate_in_video(state, max_frame_num_to_track=min(n - 1, 16)):
                    pass
                if device.type == "cuda":
                    torch.cuda.synchronize()
                compile_s = time.perf_counter() - t0
                pred.reset_state(state)
                t0 = time.perf_counter()
            for i, b in enumerate(boxes):
                pred.add_new_points_or_box(state, 0, i + 1, box=b)
            for _, _, masks in pred.propagate_in_video(state):
                frames += 1
                (masks > 0).cpu().numpy()
    if device.type == "cuda":
        torch.cuda.synchronize()
    wall = time.perf_counter() - t0
    assert frames == n, (frames, n)
    return {
        "impl": args.impl,
        "frames": n,
        "objects": args.objects,
        "stagger": args.stagger,
        "dtype": dtype if args.impl.startswith("ours") else ("bfloat16" if device.type == "cuda" else "float32"),
        "image_size": args.image_size,
        "model": args.model,
        "device": str(device) if device.type != "cuda" else torch.cuda.get_device_name(),
        "fps": round(n / wall, 3),
        "wall_s": round(wall, 2),
        "compile_s": round(compile_s, 2),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "peak_gpu_mib": round(torch.cuda.max_memory_allocated() / 2**20, 1) if device.type == "cuda" else 0.0,
    }


def _make_video(path: Path, frames: int, width: int, height: int) -> None:
    from helpers import moving_shapes, write_video

    write_video(path, moving_shapes(frames, width, height))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--image-size", type=int, default=128)
    ap.add_argument("--frames", type=int, nargs="+", default=[200, 1000])
    ap.add_argument("--objects", type=int, nargs="+", default=[1, 5])
    ap.add_argument(
        "--impl", nargs="+", default=["ours", "upstream"], choices=["ours", "ours_compiled", "upstream", "upstream_vos"]
    )
    ap.add_argument("--model", default="sam2.1_hiera_t")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"], help="ours")
    ap.add_argument("--stagger", type=int, default=0, help="ours: object i prompted on frame stagger*i")
    ap.add_argument("--width", type=int, default=320)
    ap.add_argument("--height", type=int, default=240)
    ap.add_argument("--json", type=Path, default=Path("bench_propagation.json"))
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--video", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        args.objects = args.objects[0]
        args.impl = args.impl[0]
        print(json.dumps(_child(args)))
        return

    records = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.frames:
            video = Path(tmp) / f"bench_{n}.mp4"
            _make_video(video, n, args.width, args.height)
            for k in args.objects:
                for impl in args.impl:
                    cmd = [
                        sys.executable,
                        __file__,
                        "--child",
                        "--video",
                        str(video),
                        "--impl",
                        impl,
                        "--objects",
                        str(k),
                        "--image-size",
                        str(args.image_size),
                        "--model",
                        args.model,
                        "--device",
                        args.device,
                    ]
                    out = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ))
                    if out.returncode != 0:
                        sys.stderr.write(out.stderr)
                        raise SystemExit(f"benchmark child failed: {' '.join(cmd)}")
                    rec = json.loads(out.stdout.strip().splitlines()[-1])
                    records.append(rec)
                    print(json.dumps(rec), flush=True)
    tmp_json = args.json.with_suffix(args.json.suffix + ".tmp")
    tmp_json.write_text(json.dumps(records, indent=1) + "\n")
    tmp_json.replace(args.json)
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
