"""Pictures of where memory policies fail: one clip of a long-video family tracked by each policy (toy
model), a row per policy under the ground truth, a column per chosen frame, each object's mask filled in
its DAVIS colour and outlined in white (what is not filled is no tracked object's mask).

    python scripts/failure_pictures.py --family lookalike --seed 9001 --index 3 --at 30 60 90 120 \
        --out docs/failures/lookalike.png
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SCALE = 2
LABEL_W = 84


def _overlay(rgb: np.ndarray, labels: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """uint8 [SCALE*H, SCALE*W, 3]: the frame [H, W, 3] enlarged, each object of the label map [H, W] (0:
    none) filled in its colour and outlined in white."""
    from tracker.experiments.metrics import seg2bmap

    # Not tracker.io.annotation.annotate: its colour for object 1 is the blue of the look-alike family's
    # discs, so a mask there looks like the untracked copy; a white outline tells them apart.
    rgb = rgb.repeat(SCALE, 0).repeat(SCALE, 1).astype(np.float32)
    labels = labels.repeat(SCALE, 0).repeat(SCALE, 1)
    for oid in (int(i) for i in np.unique(labels) if i):
        m = labels == oid
        rgb[m] = 0.35 * rgb[m] + 0.65 * np.minimum(palette[oid] * 2, 255)
        rgb[seg2bmap(m)] = 255
    return rgb.clip(0, 255).astype(np.uint8)


def main() -> None:
    from tracker.api import load_model
    from tracker.engine.policies import memory_policy
    from tracker.experiments.datasets import load_sequences
    from tracker.experiments.hard import FAMILIES, write_hard_dataset
    from tracker.experiments.vos import run_dataset
    from tracker.io.sinks.png import davis_palette
    from tracker.threads import apply_threads, usable_cores

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--family", required=True, choices=FAMILIES)
    ap.add_argument("--seed", type=int, default=9001)
    ap.add_argument("--index", type=int, default=0, help="which clip of the seed's set (0-based)")
    ap.add_argument("--frames", type=int, default=150)
    ap.add_argument("--policies", nargs="+", default=["sam2", "samurai", "dam4sam", "gated"])
    ap.add_argument("--at", nargs="+", type=int, required=True, help="the frames to show")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    if any(not 0 <= t < args.frames for t in args.at):
        ap.error(f"--at {args.at}: frames run from 0 to {args.frames - 1}")

    apply_threads(usable_cores())
    model = load_model("toy", device="cpu")
    palette = np.array(davis_palette(), dtype=np.float32).reshape(-1, 3)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        names = write_hard_dataset(tmp / "data", args.family, args.index + 1, args.seed, args.frames)
        seq = next(s for s in load_sequences("davis", tmp / "data") if s.name == names[args.index])
        rows: list[tuple[str, list[np.ndarray]]] = [("truth", [seq.label_map(t) for t in args.at])]
        scores = {}
        for p in args.policies:
            res, _ = run_dataset(model, [seq], tmp / p, "davis", memory=lambda p=p: memory_policy(p), prefetch=0)
            lt = res["longterm"]["sequences"][seq.name]
            scores[p] = {"J": round(res["dataset"]["J-Mean"], 3), "DRE": lt["DRE"]}
            pred = tmp / p / "predictions" / seq.name
            rows.append((p, [np.array(Image.open(pred / f"{seq.frame_files[t].stem}.png")) for t in args.at]))
        frames = [np.array(Image.open(seq.frame_files[t]).convert("RGB")) for t in args.at]

    h, w = frames[0].shape[:2]
    sheet = Image.new("RGB", (LABEL_W + len(frames) * (w * SCALE + 4), 18 + len(rows) * (h * SCALE + 4)), "white")
    draw = ImageDraw.Draw(sheet)
    for j, t in enumerate(args.at):
        draw.text((LABEL_W + j * (w * SCALE + 4) + 4, 3), f"frame {t}", fill="black")
    for i, (name, labels) in enumerate(rows):
        y = 18 + i * (h * SCALE + 4)
        draw.text((4, y + 4), name, fill="black")
        if name in scores:
            draw.text((4, y + 20), f"J {scores[name]['J']:.2f}", fill="black")
            dre = scores[name]["DRE"]
            draw.text((4, y + 34), "DRE -" if dre is None else f"DRE {dre:.2f}", fill="black")
        for j, (rgb, lab) in enumerate(zip(frames, labels)):
            cell = Image.fromarray(_overlay(rgb, lab, palette))
            sheet.paste(cell, (LABEL_W + j * (w * SCALE + 4), y))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.out.suffix.lower() == ".png":  # the backgrounds' noise makes a full-colour PNG 4x larger
        sheet = sheet.quantize(colors=64, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    sheet.save(args.out, optimize=True)
    print(json.dumps({"out": str(args.out), "sequence": seq.name, "scores": scores}))


if __name__ == "__main__":
    main()
