"""Evaluation of predictions against ground truth (J, F and their statistics, see tracker.experiments.metrics),
a results table, and ``results.csv`` / ``results.json``."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .datasets import DatasetError, VosSequence, read_png
from .metrics import LONGTERM, METRICS, ObjectScores, score_sequence, summarize, summarize_longterm


def read_prediction(pred_root: Path, seq: VosSequence, t: int) -> np.ndarray:
    """The predicted label map of annotated frame t, in the ground truth's layout."""
    ann = seq.annotations[t]
    stem = seq.frame_files[t].stem
    folder = Path(pred_root) / seq.name
    if not folder.is_dir():
        raise DatasetError(f"sequence {seq.name}: the prediction folder {folder} does not exist")
    gt = seq.label_map(t)
    if isinstance(ann, Path):
        path = folder / f"{stem}.png"
        if not path.is_file():
            raise DatasetError(f"sequence {seq.name}: prediction {path} is missing")
        lab = read_png(path, seq.name)
    else:
        lab = np.zeros(gt.shape, dtype=np.uint8)
        for oid in sorted(ann):
            path = folder / f"{oid:03d}" / f"{stem}.png"
            if not path.is_file():
                raise DatasetError(f"sequence {seq.name}: prediction {path} is missing")
            m = read_png(path, seq.name) > 0
            if m.shape != gt.shape:
                break
            lab[m] = oid
    if lab.shape != gt.shape:
        raise DatasetError(
            f"sequence {seq.name}: prediction for frame {stem} is {lab.shape[1]}x{lab.shape[0]}, the ground "
            f"truth is {gt.shape[1]}x{gt.shape[0]}"
        )
    return lab


def evaluate(pred_root: Path, sequences: Sequence[VosSequence]) -> list[ObjectScores]:
    objects: list[ObjectScores] = []
    for seq in sequences:
        ts = seq.annotated
        gts = [seq.label_map(t) for t in ts]
        preds = [read_prediction(pred_root, seq, t) for t in ts]
        objects += score_sequence(seq.name, gts, preds)
    return objects


def results_dict(objects: Sequence[ObjectScores]) -> dict:
    names = sorted({o.sequence for o in objects})
    return {
        "dataset": summarize(objects),
        "sequences": {n: summarize([o for o in objects if o.sequence == n]) for n in names},
        "longterm": {
            "dataset": summarize_longterm(objects),
            "sequences": {n: summarize_longterm([o for o in objects if o.sequence == n]) for n in names},
        },
        "objects": [
            {
                "sequence": o.sequence,
                "id": o.object_id,
                "J": list(o.j),
                "F": list(o.f),
                "presence": dict(zip("TFMHN", o.presence)),
                "reappear": list(o.reappear),
                "switches": o.switches,
            }
            for o in objects
        ],
    }


def objects_from_results(data: dict) -> list[ObjectScores]:
    """The per-object scores of a results.json (one written before the long-term figures has none)."""
    out = []
    for o in data["objects"]:
        presence = tuple(int(o.get("presence", {}).get(k, 0)) for k in "TFMHN")
        out.append(
            ObjectScores(
                o["sequence"],
                int(o["id"]),
                tuple(o["J"]),
                tuple(o["F"]),
                presence,  # type: ignore[arg-type]
                tuple(o.get("reappear", ())),
                int(o.get("switches", 0)),
            )
        )
    return out


def _fmt(value: float | None, digits: int) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def format_table(results: dict) -> str:
    head = ["sequence", *METRICS]
    rows = [[n, *(_fmt(v[m], 3) for m in METRICS)] for n, v in results["sequences"].items()]
    rows.append(["ALL", *(_fmt(results["dataset"][m], 3) for m in METRICS)])
    table = _table(head, rows)
    lt = results.get("longterm")
    if lt and any(v["ADQ"] is not None or v["J&F-Reappear"] is not None for v in lt["sequences"].values()):
        # objects that leave and come back: the long-term figures too
        head = ["sequence", *LONGTERM]
        rows = [[n, *(_fmt(v[m], 3) for m in LONGTERM)] for n, v in lt["sequences"].items()]
        rows.append(["ALL", *(_fmt(lt["dataset"][m], 3) for m in LONGTERM)])
        table += "\n\n" + _table(head, rows)
    return table


def _table(head: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    line = lambda r: "  ".join(str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(r, widths)))  # noqa: E731
    return "\n".join([line(head), line(["-" * w for w in widths]), *map(line, rows)])


def write_results(out_dir: Path, results: dict) -> None:
    """results.json (with per-object per-frame values, so shards can be merged) and results.csv."""
    out_dir = Path(out_dir)
    tmp = out_dir / "results.json.partial"
    tmp.write_text(json.dumps(results, indent=1) + "\n")
    os.replace(tmp, out_dir / "results.json")
    tmp = out_dir / "results.csv.partial"
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        lt = results.get("longterm") or {"dataset": {}, "sequences": {}}
        w.writerow(["sequence", *METRICS, *LONGTERM])
        for n, v in results["sequences"].items():
            extra = lt["sequences"].get(n, {})
            w.writerow([n, *(_fmt(v[m], 5) for m in METRICS), *(_fmt(extra.get(m), 5) for m in LONGTERM)])
        extra = lt["dataset"]
        w.writerow(
            ["ALL", *(_fmt(results["dataset"][m], 5) for m in METRICS), *(_fmt(extra.get(m), 5) for m in LONGTERM)]
        )
    os.replace(tmp, out_dir / "results.csv")
