"""Export the weights of a tracker-train checkpoint (last.pt) as a small Meta-format file.

python scripts/export_weights.py runs/toy/last.pt tracker/weights/toy.pt
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from tracker.experiments.train import export_weights  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--dtype", choices=("float16", "bfloat16", "float32"), default="float16")
    a = ap.parse_args()
    size = export_weights(a.checkpoint, a.out, getattr(torch, a.dtype))
    print(f"wrote {a.out} ({size / 1e6:.2f} MB, {a.dtype})")


if __name__ == "__main__":
    main()
