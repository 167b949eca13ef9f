"""Benchmark: memory policies on the long-video families (tracker/experiments/hard.py), with the toy model.

Per family x policy: J&F, J-Mean, J&F over the 20 frames after each re-appearance, VOTS robustness / NRE /
DRE / ADQ, identity switches, fps and peak RSS. Each (family, policy) runs in a child process of its own
(its peak RSS its own). Sequences come from seeds the policies were never tuned on (--seed).

    python scripts/bench_long_video.py --sequences 20 --frames 200 --json benchmarks/bench_long_video_cpu.json
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


def child(args: argparse.Namespace) -> dict:
    from tracker.api import load_model
    from tracker.engine.memory import memory_policy
    from tracker.experiments.datasets import load_sequences
    from tracker.experiments.vos import run_dataset
    from tracker.threads import apply_threads, usable_cores

    apply_threads(usable_cores())
    seqs = load_sequences("davis", Path(args.root))
    model = load_model("toy", device="cpu")
    t0 = time.perf_counter()
    results, timings = run_dataset(
        model, seqs, Path(args.out), "davis", memory=lambda: memory_policy(args.policy), prefetch=4
    )
    wall = time.perf_counter() - t0
    lt = results["longterm"]["dataset"]
    ds = results["dataset"]
    pick = ("J&F-Mean", "J-Mean", "F-Mean")
    return {
        "family": args.family,
        "policy": args.policy,
        "sequences": len(seqs),
        **{k: None if ds[k] is None else round(ds[k], 4) for k in pick},
        **{k: None if v is None else round(v, 4) for k, v in lt.items()},
        "fps": round(timings.frames / wall, 2),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> None:
    from tracker.engine.memory import MEMORY_POLICIES
    from tracker.experiments.hard import FAMILIES

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--families", nargs="+", default=list(FAMILIES), choices=FAMILIES)
    ap.add_argument("--policies", nargs="+", default=sorted(MEMORY_POLICIES))
    ap.add_argument("--sequences", type=int, default=20)
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--seed", type=int, default=9001)
    ap.add_argument("--json", type=Path, default=Path("bench_long_video.json"))
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--root", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--family", help=argparse.SUPPRESS)
    ap.add_argument("--policy", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return

    from tracker.experiments.hard import write_hard_dataset

    records = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for fam in args.families:
            root = tmp / fam
            write_hard_dataset(root, fam, args.sequences, args.seed, args.frames)
            for policy in args.policies:
                cmd = [sys.executable, __file__, "--child", "--root", str(root), "--out", str(tmp / f"{fam}_{policy}")]
                cmd += ["--family", fam, "--policy", policy]
                res = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, TQDM_DISABLE="1"))
                if res.returncode != 0:
                    sys.stderr.write(res.stderr[-3000:])
                    raise SystemExit(f"benchmark child failed: {' '.join(cmd)}")
                rec = json.loads(res.stdout.strip().splitlines()[-1])
                records.append(rec)
                print(json.dumps(rec), flush=True)
    report = {"frames": args.frames, "seed": args.seed, "model": "toy", "records": records}
    from tracker.io.sinks.base import write_json_atomic

    args.json.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.json, report)
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
