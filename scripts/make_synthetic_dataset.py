"""Write a synthetic DAVIS-layout VOS benchmark with exact ground truth (see tracker/experiments/synthetic.py).

python scripts/make_synthetic_dataset.py data/synth --sequences 20 --seed 7 --frames 32
python scripts/make_synthetic_dataset.py data/long --family lookalike crossing --sequences 20 --frames 200

--family: the long-video families of tracker/experiments/hard.py (100-600 frames, every frame annotated).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tracker.experiments.hard import FAMILIES, write_hard_dataset  # noqa: E402
from tracker.experiments.synthetic import write_dataset  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("root", type=Path)
    ap.add_argument("--sequences", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--width", type=int, default=160)
    ap.add_argument("--height", type=int, default=120)
    ap.add_argument("--min-objects", type=int, default=2)
    ap.add_argument("--max-objects", type=int, default=4)
    ap.add_argument("--split", default="val")
    ap.add_argument("--family", nargs="+", choices=FAMILIES, help="long-video families instead of the standard set")
    a = ap.parse_args()
    if a.family:
        for fam in a.family:
            names = write_hard_dataset(a.root, fam, a.sequences, a.seed, a.frames, a.width, a.height, a.split)
            print(f"wrote {len(names)} {fam} sequences to {a.root} (split {a.split})")
        return
    names = write_dataset(
        a.root, a.sequences, a.seed, a.frames, a.width, a.height, (a.min_objects, a.max_objects), split=a.split
    )
    print(f"wrote {len(names)} sequences to {a.root} (split {a.split}): {' '.join(names)}")


if __name__ == "__main__":
    main()
