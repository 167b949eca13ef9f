"""Benchmark: memory policies on the long-video families (tracker/experiments/hard.py), with the toy model.

Per family x policy: J&F, J-Mean, J&F over the 20 frames after each re-appearance, VOTS robustness / NRE /
DRE / ADQ, identity switches, fps and peak RSS. Per policy, besides: J&F on the standard 24-frame synthetic
set (what a policy must not lose), peak RSS on a 1000-frame and a 200-frame clip (memory flat in video
length), and its own cost per frame with 1 and with 5 objects: the policies track in lock step with sam2,
10 frames each in turn, and the paired differences give that cost and its standard error (``own_cost``;
separate runs minutes apart differ more on this machine than a policy costs). Each measurement runs in a
child process of its own (its peak RSS its own). Sequences come from seeds the
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
    from tracker.engine.policies import memory_policy
    from tracker.experiments.datasets import load_sequences
    from tracker.experiments.vos import run_dataset
    from tracker.threads import apply_threads, usable_cores

    apply_threads(args.threads or usable_cores())
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
    """Lock-step timing on the first sequence under --root: every policy of ``--policy`` (comma-separated)
    tracks the same objects, ``--chunk`` frames each in turn (the order rotating), ``--reps`` times over.
    Per policy: model seconds per frame and, of them, those in SAM 2's heads, where a policy decides and
    retries; per policy other than sam2: its paired difference to sam2 over the same chunks (mean and
    standard error), its own cost. ``--ids``: the object sets, e.g. ``1,2,1+2`` (default: the first
    ``--objects`` objects)."""
    import itertools

    import numpy as np

    from tracker.engine.policies import memory_policy
    from tracker.engine.propagation import Propagator
    from tracker.engine.types import Passes
    from tracker.experiments.datasets import first_frame_prompts, load_sequences
    from tracker.io.source import ImageFolderSource

    seq = load_sequences("davis", Path(args.root))[0]
    every = list(first_frame_prompts(seq, "mask"))
    if args.ids:
        sets = [[int(x) for x in part.split("+")] for part in args.ids.split(",")]
    else:
        sets = [sorted({p.object_id for p in every})[: args.objects]]
    source = ImageFolderSource(seq.frame_files[0].parent)
    policies = args.policy.split(",")
    records = []
    for ids in sets:
        prompts = [p for p in every if p.object_id in ids]
        per_chunk: dict[str, list[tuple[float, float]]] = {p: [] for p in policies}
        for _ in range(args.reps):
            # prefetch=0: a decoding thread would compete for the cores at moments that differ per policy
            runs = {p: Propagator(model, memory_policy(p), passes=Passes(backward=False, prefetch=0)) for p in policies}
            frames = {p: runs[p].run(source, prompts, ids) for p in policies}
            for k in itertools.count():
                got = {}
                for p in policies[k % len(policies) :] + policies[: k % len(policies)]:
                    m0, h0 = model.seconds, model.heads_seconds
                    n = sum(1 for _ in itertools.islice(frames[p], args.chunk))
                    got[p] = (n, model.seconds - m0, model.heads_seconds - h0)
                if any(n < args.chunk for n, _, _ in got.values()):
                    break  # the last, shorter chunk is left out
                if k:  # the first chunk holds the prompt frame's encoding
                    for p in policies:
                        per_chunk[p].append((got[p][1] / args.chunk, got[p][2] / args.chunk))
        for p in policies:
            a = np.array(per_chunk[p]) * 1000
            rec = {
                "policy": p,
                "objects": len(ids),
                "ids": ids,
                "chunks": len(a),
                "model_ms_per_frame": round(float(a[:, 0].mean()), 3),
                "heads_ms_per_frame": round(float(a[:, 1].mean()), 3),
            }
            if p != "sam2" and "sam2" in policies:
                d = a - np.array(per_chunk["sam2"]) * 1000
                se = d.std(axis=0, ddof=1) / np.sqrt(len(d))
                rec["overhead_ms"] = [round(float(d[:, 0].mean()), 3), round(float(se[0]), 3)]
                rec["heads_overhead_ms"] = [round(float(d[:, 1].mean()), 3), round(float(se[1]), 3)]
            records.append(rec)
    return {"timing": records, "peak_rss_mib": _peak_rss_mib()}


THREADS: list[str] = []  # --threads N, passed on to every child


def run_child(args: list[str]) -> dict:
    cmd = [sys.executable, __file__, "--child", *THREADS, *args]
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


def _timings(tmp: Path, policies: list[str]) -> tuple[list[dict], list[dict]]:
    """Lock-step timings on a 200-frame clip: each of its 5 objects alone, then all 5 (a child each), and
    per policy its own cost per frame with one object (the mean over the five) and with five, and their
    ratio (standard errors propagated): in the whole frame, and in SAM 2's heads alone."""
    import numpy as np

    clip = _clip(tmp, 200)
    ps = ",".join(["sam2", *[p for p in policies if p != "sam2"]])
    records = []
    for ids in ("1,2,3,4,5", "1+2+3+4+5"):
        records += run_child(["--mode", "timing", "--root", str(clip), "--policy", ps, "--ids", ids])["timing"]
    summary = []
    for p in policies:
        if p == "sam2":
            continue
        row: dict = {"policy": p}
        for key in ("overhead_ms", "heads_overhead_ms"):
            one = np.array([r[key] for r in records if r["policy"] == p and r["objects"] == 1])
            five = next(r[key] for r in records if r["policy"] == p and r["objects"] == 5)
            o1, s1 = one[:, 0].mean(), np.sqrt((one[:, 1] ** 2).sum()) / len(one)
            o5, s5 = five
            ratio = o5 / o1
            row[key.replace("overhead_ms", "1_object_ms")] = [round(float(o1), 3), round(float(s1), 3)]
            row[key.replace("overhead_ms", "5_objects_ms")] = five
            row[key.replace("overhead_ms", "ratio")] = [
                round(float(ratio), 2),
                round(float(abs(ratio) * np.hypot(s5 / o5, s1 / o1)), 2),
            ]
        summary.append(row)
    return records, summary


def main() -> None:
    from tracker.engine.policies import MEMORY_POLICIES
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
    ap.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch threads per child (default: every usable core; 1 to run two at once)",
    )
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--mode", default="family", help=argparse.SUPPRESS)
    ap.add_argument("--root", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--family", help=argparse.SUPPRESS)
    ap.add_argument("--policy", help=argparse.SUPPRESS)
    ap.add_argument("--objects", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--ids", help=argparse.SUPPRESS)
    ap.add_argument("--reps", type=int, default=3, help=argparse.SUPPRESS)
    ap.add_argument("--chunk", type=int, default=10, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return
    if args.threads:
        THREADS[:] = ["--threads", str(args.threads)]

    from tracker.experiments.hard import MIN_FRAMES, write_hard_dataset
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
            report["timing"], report["own_cost"] = _timings(tmp, args.policies)
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
                    n: run_child(
                        ["--mode", "timing", "--root", str(clips[n]), "--policy", p, "--objects", "2", "--reps", "1"]
                    )
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
            report["timing"], report["own_cost"] = _timings(tmp, args.policies)
            save()
        for fam in args.families:
            root = tmp / fam
            # absence and wild need longer clips for their 100-300 frame absences
            frames = max(args.frames, MIN_FRAMES.get(fam, 0))
            write_hard_dataset(root, fam, args.sequences, args.seed, frames)
            for policy in args.policies:
                out = str(tmp / f"{fam}_{policy}")
                rec = run_child(["--root", str(root), "--out", out, "--family", fam, "--policy", policy])
                report["records"].append({**rec, "frames": frames})
                save()
    save()
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
