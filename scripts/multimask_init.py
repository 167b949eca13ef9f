"""Start a three-candidate fine-tune from a checkpoint that tracks with one mask (stage E of the toy model,
tried and not shipped: docs/toy_training/README.md).

python scripts/multimask_init.py tracker/weights/toy.pt runs/stageE_init.pt

SAM 2's decoder has four output tokens: token 0 gives the single mask, tokens 1-3 the three candidates. A
model trained with ``multimask_output_for_tracking: false`` has tokens 1-3 trained only on frames prompted
with one click; tracking with them from there loses every object within a few frames (measured: validation
J&F 0.28 after 200 fine-tuning steps). So tokens 1-3, their hypernetwork MLPs and their rows of the IoU head
start as copies of token 0's, the token embeddings with a little noise so that the best-of-three loss can
send different frames to different candidates (measured: on the toy's data they stay copies of each other).
"""

from __future__ import annotations

import argparse

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--noise", type=float, default=0.1, help="token noise, as a share of token 0's spread")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    sd = torch.load(a.src, map_location="cpu", weights_only=True)["model"]
    g = torch.Generator().manual_seed(a.seed)
    p = "sam_mask_decoder."
    tokens = sd[p + "mask_tokens.weight"].float()
    for k in (1, 2, 3):
        tokens[k] = tokens[0] + a.noise * tokens[0].std() * torch.randn(tokens.shape[1], generator=g)
        for name in [n for n in sd if n.startswith(f"{p}output_hypernetworks_mlps.0.")]:
            sd[name.replace("mlps.0.", f"mlps.{k}.")] = sd[name].clone()
        for part in ("weight", "bias"):
            head = sd[f"{p}iou_prediction_head.layers.2.{part}"]
            head[k] = head[0]
    sd[p + "mask_tokens.weight"] = tokens.to(sd[p + "mask_tokens.weight"].dtype)
    torch.save({"model": sd}, a.dst)
    print(f"wrote {a.dst}: candidate tokens 1-3 from token 0 (noise {a.noise})")


if __name__ == "__main__":
    main()
