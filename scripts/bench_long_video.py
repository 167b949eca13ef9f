"""Benchmark: memory policies on the long-video families (tracker/experiments/hard.py), with the toy model.

Per family x policy: J&F, J-Mean, J&F over the 20 frames after each re-appearance, VOTS robustness / NRE /
DRE / ADQ, identity switches, fps and peak RSS. Per policy, besides: J&F on the standard 24-frame synthetic
set (what a policy must not lose), peak RSS on a 1000-frame and a 200-frame clip (memory flat in video
length), and seconds per frame with 1 and with 5 objects (a policy's own cost per extra object). Each
measurement runs in a child process of its own (its peak RSS its own). Sequences come from seeds the
policies were never tuned on (--seed; they were tuned on seed 0).

    python scripts/bench_long_video.py --sequences 20 --frames 150 --json benchmarks/bench_long_video_cpu.json
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
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _peak_rss_mib() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def child(args: argparse.Namespace) -> dict:
    from tracker.api import load_model
    from tracker.engine.memory import memory_policy
    from tracker.experiments.datasets import load_sequences
    from tracker.experiments.vos import run_dataset
    from tracker.threads import apply_threads, usable_cores

    apply_threads(usable_cores())
    model = load_model("toy", device="cpu")
    if args.mode == "timing":
        return timing(model, args)
    seqs = load_sequences("davis", Path(args.root))
    t0 = time.perf_counter()
    results, timings = run_dataset(
        model, seqs, Path(args.out), "davis", memory=lambda: memory_policy(args.policy), prefetch=4
    )
    wall = time.perf_counter() - t0
    ds = results["dataset"]
    pick = ("J&F-Mean", "J-Mean", "F-Mean")
    rec = {
        "family": args.family,
        "policy": args.policy,
        "sequences": len(seqs),
        **{k: None if ds[k] is None else round(ds[k], 4) for k in pick},
    }
    if args.mode == "family":
        lt = results["longterm"]["dataset"]
        rec.update({k: None if v is None else round(v, 4) for k, v in lt.items()})
    return {**rec, "fps": round(timings.frames / wall, 2), "peak_rss_mib": _peak_rss_mib()}


def timing(model, args: argparse.Namespace) -> dict:
    """Track the first sequence under --root with its first ``--objects`` objects, three times per policy of
    ``--policy`` (comma-separated), the policies taking turns: the best model seconds per frame of each, and
    the peak RSS of the process."""
    from tracker.engine.memory import memory_policy
    from tracker.engine.propagation import Propagator
    from tracker.experiments.datasets import first_frame_prompts, load_sequences
    from tracker.io.source import ImageFolderSource

    seq = load_sequences("davis", Path(args.root))[0]
    prompts = [p for p in first_frame_prompts(seq, "mask")]
    ids = sorted({p.object_id for p in prompts})[: args.objects]
    prompts = [p for p in prompts if p.object_id in ids]
    source = ImageFolderSource(seq.frame_files[0].parent)
    policies = args.policy.split(",")
    runs: dict[str, list[tuple[float, float]]] = {p: [] for p in policies}
    frames = 0
    # the best of 3, the policies taking turns in one process: a policy's own cost per frame is a few ms,
    # less than this machine's drift between runs minutes apart
    for _ in range(3):
        for policy in policies:
            prop = Propagator(model, prefetch=4, backward=False, memory=memory_policy(policy))
            model.seconds = 0.0
            t0 = time.perf_counter()
            frames = sum(1 for _ in prop.run(source, prompts, ids))
            runs[policy].append((model.seconds / frames, (time.perf_counter() - t0) / frames))
    records = [
        {
            "policy": policy,
            "objects": len(ids),
            "frames": frames,
            "model_s_per_frame": round(min(r[0] for r in runs[policy]), 5),
            "wall_s_per_frame": round(min(r[1] for r in runs[policy]), 5),
        }
        for policy in policies
    ]
    return {"timing": records, "peak_rss_mib": _peak_rss_mib()}


def run_child(args: list[str]) -> dict:
    cmd = [sys.executable, __file__, "--child", *args]
    res = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, TQDM_DISABLE="1"))
    if res.returncode != 0:
        sys.stderr.write(res.stderr[-3000:])
        raise SystemExit(f"benchmark child failed: {' '.join(cmd)}")
    rec = json.loads(res.stdout.strip().splitlines()[-1])
    print(json.dumps(rec), flush=True)
    return rec


def _clip(tmp: Path, frames: int) -> Path:
    """The RSS and timing clip: one synthetic sequence of ``frames`` frames with 5 objects (seed 77)."""
    from tracker.experiments.synthetic import write_dataset

    root = tmp / f"clip{frames}"
    if not root.exists():
        write_dataset(root, 1, seed=77, frames=frames, objects=(5, 5))
    return root


def _timings(tmp: Path, policies: list[str]) -> list[dict]:
    """Each policy's model seconds per frame on a 200-frame clip with 1 and with 5 objects (one child per
    object count, the policies taking turns in it)."""
    clip = _clip(tmp, 200)
    out = []
    for k in (1, 5):
        res = run_child(["--mode", "timing", "--root", str(clip), "--policy", ",".join(policies), "--objects", str(k)])
        out += res["timing"]
    return out


def main() -> None:
    from tracker.engine.memory import MEMORY_POLICIES
    from tracker.experiments.hard import FAMILIES

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--families", nargs="*", default=list(FAMILIES), choices=FAMILIES)
    ap.add_argument("--policies", nargs="+", default=sorted(MEMORY_POLICIES))
    ap.add_argument("--sequences", type=int, default=20)
    ap.add_argument("--frames", type=int, default=150)
    ap.add_argument("--seed", type=int, default=9001)
    ap.add_argument("--no-extras", action="store_true", help="only the families (no standard set, RSS, timing)")
    ap.add_argument(
        "--standard-seeds",
        nargs="+",
        type=int,
        default=[4242],
        help="seeds of the standard 24-frame sets (4242: the one bench_objects.py scores; more: its spread)",
    )
    ap.add_argument("--standard-only", action="store_true", help="only the standard sets")
    ap.add_argument("--timing-only", action="store_true", help="only the policies' cost per frame")
    ap.add_argument("--json", type=Path, default=Path("bench_long_video.json"))
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--mode", default="family", help=argparse.SUPPRESS)
    ap.add_argument("--root", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--family", help=argparse.SUPPRESS)
    ap.add_argument("--policy", help=argparse.SUPPRESS)
    ap.add_argument("--objects", type=int, default=1, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return

    from tracker.experiments.hard import write_hard_dataset
    from tracker.experiments.synthetic import write_dataset
    from tracker.io.sinks.base import write_json_atomic

    report: dict = {"frames": args.frames, "seed": args.seed, "model": "toy", "records": []}
    args.json.parent.mkdir(parents=True, exist_ok=True)

    def save() -> None:  # after every measurement: a long run that stops keeps what it measured
        write_json_atomic(args.json, report)

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        if args.timing_only:
            args.no_extras, args.families = True, []
            report["timing"] = _timings(tmp, args.policies)
        if not args.no_extras:
            report["standard"] = []
            for seed in args.standard_seeds:
                std = tmp / f"standard{seed}"
                write_dataset(std, 24, seed=seed, frames=24)
                for p in args.policies:
                    out = str(tmp / f"std{seed}_{p}")
                    rec = run_child(["--mode", "standard", "--root", str(std), "--out", out, "--policy", p])
                    report["standard"].append({**rec, "seed": seed})
                    save()
        if args.standard_only:
            args.no_extras, args.families = True, []
        if not args.no_extras:
            clips = {n: _clip(tmp, n) for n in (200, 1000)}
            report["rss"] = []
            for p in args.policies:
                rss = {
                    n: run_child(["--mode", "timing", "--root", str(clips[n]), "--policy", p, "--objects", "2"])
                    for n in clips
                }
                report["rss"].append(
                    {
                        "policy": p,
                        "rss_200_mib": rss[200]["peak_rss_mib"],
                        "rss_1000_mib": rss[1000]["peak_rss_mib"],
                        "ratio": round(rss[1000]["peak_rss_mib"] / rss[200]["peak_rss_mib"], 3),
                    }
                )
                save()
            report["timing"] = _timings(tmp, args.policies)
            save()
        for fam in args.families:
            root = tmp / fam
            write_hard_dataset(root, fam, args.sequences, args.seed, args.frames)
            for policy in args.policies:
                out = str(tmp / f"{fam}_{policy}")
                rec = run_child(["--root", str(root), "--out", out, "--family", fam, "--policy", policy])
                report["records"].append(rec)
                save()
    save()
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
