"""Benchmark: the ``threads`` setting, alone and beside one competing CPU-bound process.

The demo's synthetic clip (two moving objects, toy model) at 320x180 is tracked end to end by the real
CLI, once per (condition, setting), each in a fresh process; frames per second come from its run.json.
Settings: ``default`` (torch's own choice, one thread per core: what tracker did before ``threads``),
``threads=1`` and ``threads=auto``. The competitor is a pure-Python busy loop: one core's worth of work.
Run it on an otherwise quiet machine.

    python scripts/bench_threads.py --frames 2000 --json benchmarks/bench_threads_cpu.json
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

from tracker.threads import resolve_threads, usable_cores  # noqa: E402


def run_once(out: Path, frames: int, threads: str, timeout: float) -> dict:
    cmd = [
        sys.executable,
        "-m",
        "tracker.apps.cli",
        "experiment=demo",
        f"demo.frames={frames}",
        "demo.width=320",
        "demo.height=180",
        "progress=false",
        "sink.png=false",
        f"threads={threads}",
        f"output_dir={out}",
    ]
    t0 = time.perf_counter()
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"threads": threads, "finished": False, "timeout_s": timeout}
    if res.returncode != 0:
        raise SystemExit(f"run failed ({threads}): {res.stderr[-2000:]}")
    rec = json.loads((out / "run.json").read_text())
    return {
        "threads": threads,
        "model_threads": rec["threads"],
        "finished": True,
        "frames": rec["frames"],
        "fps": rec["fps"],
        "wall_s": rec["wall_s"],
        "process_s": round(time.perf_counter() - t0, 2),
        "demo_jf": rec["demo_score"]["J&F-Mean"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=2000)
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds before a run is recorded as unfinished")
    ap.add_argument("--json", type=Path, default=Path("bench_threads.json"))
    args = ap.parse_args()

    settings = {"default": str(usable_cores()), "threads=1": "1", "threads=auto": "auto"}
    results: dict = {
        "clip": {"frames": args.frames, "width": 320, "height": 180, "model": "toy"},
        "usable_cores": usable_cores(),
        "auto_threads": resolve_threads("auto"),
        "competitor": "python -c 'while True: pass'",
        "runs": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        for condition in ("alone", "beside_competitor"):
            competitor = None
            if condition == "beside_competitor":
                competitor = subprocess.Popen([sys.executable, "-c", "while True: pass"])
            try:
                for name, value in settings.items():
                    r = run_once(Path(tmp) / f"{condition}_{value}", args.frames, value, args.timeout)
                    results["runs"].setdefault(condition, {})[name] = r
                    print(condition, name, r, flush=True)
            finally:
                if competitor is not None:
                    competitor.kill()
                    competitor.wait()
    busy = results["runs"]["beside_competitor"]
    best_other = max((busy[k].get("fps") or 0.0) for k in ("default", "threads=1"))
    results["auto_vs_best_other_beside_competitor"] = round((busy["threads=auto"].get("fps") or 0.0) / best_other, 3)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
