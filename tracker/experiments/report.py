"""``tracker-report MULTIRUN_DIR``: one table (markdown + CSV) and one plot (J&F vs fps) over every run
of a sweep. Runs that differ only in ``dataset.shard`` are merged: their per-object scores are pooled
and the statistics recomputed; fps is total frames over total wall time."""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from pathlib import Path

import yaml

from .evaluate import objects_from_results
from .metrics import summarize, summarize_longterm

_SHARD_KEYS = ("dataset.shard=",)


def _overrides(job_dir: Path) -> list[str]:
    f = job_dir / ".hydra" / "overrides.yaml"
    return list(yaml.safe_load(f.read_text()) or []) if f.is_file() else []


def collect(root: Path) -> list[dict]:
    """One row per configuration: its overrides (shards merged), scores, frames, wall time, fps."""
    groups: dict[tuple[str, ...], dict] = {}
    for res_file in sorted(root.rglob("results.json")):
        job = res_file.parent
        overrides = _overrides(job)
        key = tuple(o for o in overrides if not o.startswith(_SHARD_KEYS) and not o.startswith("dataset.num_shards="))
        run = json.loads((job / "run.json").read_text()) if (job / "run.json").is_file() else {}
        g = groups.setdefault(key, {"objects": [], "frames": 0, "wall_s": 0.0, "jobs": 0})
        g["objects"] += objects_from_results(json.loads(res_file.read_text()))
        g["frames"] += int(run.get("frames", 0))
        g["wall_s"] += float(run.get("wall_s", 0.0))
        g["jobs"] += 1
    common = set.intersection(*(set(k) for k in groups)) if len(groups) > 1 else set()
    rows = []
    for key, g in groups.items():
        s = {**summarize(g["objects"]), **summarize_longterm(g["objects"])}
        rows.append(
            {
                "config": " ".join(o for o in key if o not in common) or "(defaults)",
                "common": " ".join(o for o in key if o in common),
                "jobs": g["jobs"],
                "sequences": len({o.sequence for o in g["objects"]}),
                "objects": len(g["objects"]),
                **{k: None if v is None else round(v, 4) for k, v in s.items()},
                "fps": round(g["frames"] / g["wall_s"], 3) if g["wall_s"] > 0 else None,
            }
        )
    return sorted(rows, key=lambda r: -(r["J&F-Mean"] if r["J&F-Mean"] is not None else -1.0))


def _markdown(rows: list[dict]) -> str:
    cols = ["config", "jobs", "sequences", "objects", "J&F-Mean", "J-Mean", "F-Mean", "J-Decay", "F-Decay"]
    if any(r["J&F-Reappear"] is not None or r["ADQ"] is not None for r in rows):  # objects left and came back
        cols += ["J&F-Reappear", "Robustness", "DRE", "ADQ", "ID-Switches"]
    cols.append("fps")
    lines = [f"All runs: `{rows[0]['common']}`", ""] if rows[0]["common"] else []
    lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join("n/a" if r[c] is None else str(r[c]) for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _atomic(path: Path, write) -> None:
    tmp = path.with_name(path.name + ".partial")
    write(tmp)
    os.replace(tmp, path)


def write_report(root: Path, rows: list[dict]) -> None:
    _atomic(root / "report.md", lambda p: p.write_text(_markdown(rows)))

    def write_csv(p: Path) -> None:
        with open(p, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)

    _atomic(root / "report.csv", write_csv)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    for r in (r for r in rows if r["J&F-Mean"] is not None):
        ax.scatter(r["fps"] or 0, r["J&F-Mean"], s=40)
        ax.annotate(r["config"], (r["fps"] or 0, r["J&F-Mean"]), fontsize=7, xytext=(4, 4), textcoords="offset points")
    ax.set_xlabel("frames per second (end to end)")
    ax.set_ylabel("J&F-Mean")
    ax.set_title(f"{root.name}: {len(rows)} configuration(s)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    _atomic(root / "report.png", lambda p: fig.savefig(p, format="png"))
    plt.close(fig)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # type: ignore[override]
        # One line (argparse would print its usage too): tracker.apps.cli reports it as "tracker-report: error:".
        raise ValueError(f"{message}: usage: tracker-report MULTIRUN_DIR")


def main(argv: list[str] | None = None) -> None:
    ap = _Parser(prog="tracker-report", description=__doc__)
    ap.add_argument("multirun_dir", type=Path)
    args = ap.parse_args(argv)
    root: Path = args.multirun_dir
    if not root.is_dir():
        print(f"tracker-report: error: {root} is not a folder: pass a Hydra multirun directory", file=sys.stderr)
        sys.exit(2)
    rows = collect(root)
    if not rows:
        print(
            f"tracker-report: error: no results.json under {root}: run a sweep with dataset=... first", file=sys.stderr
        )
        sys.exit(2)
    write_report(root, rows)
    print(_markdown(rows), end="")
    print(f"wrote {root / 'report.md'}, {root / 'report.csv'}, {root / 'report.png'}")
