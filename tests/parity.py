"""Parity of our streaming engine with upstream SAM2VideoPredictor, on any device: the helpers that
tests/test_parity.py (CPU) and scripts/gpu_check.py (CUDA, fp32 and bf16) share.

Both are fed the very same preprocessed frames (upstream's frame loader is replaced by ours), hole
filling off on both (upstream skips it on CPU installs). The result is every object's low-res mask
logits on every frame, from each side.
"""

from __future__ import annotations

import contextlib

import numpy as np
import sam2.sam2_video_predictor as svp
import torch

from tracker.engine.propagation import Propagator
from tracker.engine.sam import build_model
from tracker.engine.types import Passes
from tracker.io.source import PyAVSource
from tracker.records import Prompt

Logits = dict[tuple[int, int], torch.Tensor]  # (object id, frame) -> float32 [1, S/4, S/4] on the CPU


def ours(cfg: dict, path, prompts: list[Prompt], device: str = "cpu", bf16: bool = False, on_model=None):
    """(model, logits, emitted frame indices) of our engine. ``on_model(model)`` runs before the run."""
    model = build_model(cfg["arch"]["model"], seed=0, fill_hole_area=0, device=device)
    model.dtype = torch.bfloat16 if bf16 else torch.float32
    if on_model is not None:
        on_model(model)
    got: Logits = {}

    def hook(frame, reverse, ids, low_res):
        for i, oid in enumerate(ids):
            assert (oid, frame) not in got, f"object {oid} frame {frame} produced twice"
            got[(oid, frame)] = low_res[i].float().cpu().clone()

    prop = Propagator(model, passes=Passes(reverse_chunk=5), step_hook=hook)
    emitted = [fm.frame_index for _, fm in prop.run(PyAVSource(path), prompts)]
    return model, got, emitted


def upstream(model, cfg: dict, path, prompts: list[Prompt], bf16: bool = False) -> Logits:
    """Upstream with the same weights, one predictor run per set of objects that share a first prompt frame."""
    from hydra.utils import instantiate

    arch = dict(cfg["arch"]["model"], _target_="sam2.sam2_video_predictor.SAM2VideoPredictor", fill_hole_area=0)
    pred = instantiate(arch, _recursive_=True).to(model.device).eval()
    pred.load_state_dict(model.net.state_dict())
    src = PyAVSource(path)
    images = torch.stack([model.preprocess(f.rgb) for f in src.frames()])
    h, w = src.info.height, src.info.width
    first: dict[int, int] = {}
    for p in prompts:
        first[p.object_id] = min(first.get(p.object_id, 1 << 30), p.frame_index)
    out: Logits = {}
    orig = svp.load_video_frames
    svp.load_video_frames = lambda **kw: (images, h, w)
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if bf16 and model.device.type == "cuda" else None
    try:
        with amp or contextlib.nullcontext():
            for f0 in sorted(set(first.values())):
                ids = [o for o in sorted(first) if first[o] == f0]
                state = pred.init_state(video_path="unused")
                for p in sorted((p for p in prompts if p.object_id in ids), key=lambda p: (p.object_id, p.frame_index)):
                    if p.mask is not None:
                        pred.add_new_mask(state, p.frame_index, p.object_id, p.mask)
                    if p.points or p.box is not None:
                        pts = [[x, y] for x, y, _ in p.points] or None
                        labels = [lab for _, _, lab in p.points] or None
                        pred.add_new_points_or_box(
                            state,
                            p.frame_index,
                            p.object_id,
                            points=pts,
                            labels=labels,
                            box=p.box,
                            clear_old_points=p.mask is None,
                        )
                for _ in pred.propagate_in_video(state):
                    pass
                for _ in pred.propagate_in_video(state, reverse=True):
                    pass
                for oid in ids:
                    d = state["output_dict_per_obj"][state["obj_id_to_idx"][oid]]
                    for key in ("cond_frame_outputs", "non_cond_frame_outputs"):
                        for t, o in d[key].items():
                            out[(oid, t)] = o["pred_masks"][0].float().cpu()
    finally:
        svp.load_video_frames = orig
    return out


def cases(width: int = 160, height: int = 120) -> dict[str, tuple[list[Prompt], list[str]]]:
    """The parity scenarios on a 32-frame clip of this size: name -> (prompts, config overrides)."""
    sx, sy = width / 160, height / 120

    def box(x0, y0, x1, y1):
        return (x0 * sx, y0 * sy, x1 * sx, y1 * sy)

    def pts(*p):
        return tuple((x * sx, y * sy, lab) for x, y, lab in p)

    mask = np.zeros((height, width), dtype=bool)
    mask[int(30 * sy) : int(70 * sy), int(20 * sx) : int(60 * sx)] = True
    mask2 = np.zeros((height, width), dtype=bool)
    mask2[int(60 * sy) : int(100 * sy), int(90 * sx) : int(140 * sx)] = True
    return {
        "a_one_box": ([Prompt(1, 0, box=box(20, 30, 60, 70))], []),
        "b_three_objects": (
            [
                Prompt(1, 0, box=box(20, 30, 60, 70)),
                Prompt(2, 0, points=pts((110, 80, 1))),
                Prompt(5, 0, points=pts((40, 50, 1), (120, 20, 0)), box=box(10, 10, 150, 110)),
            ],
            [],
        ),
        "c_middle_frame": ([Prompt(3, 17, points=pts((80, 50, 1), (30, 90, 0)))], []),
        "d_different_first_frames": (
            [
                Prompt(1, 0, box=box(20, 30, 60, 70)),
                Prompt(2, 11, points=pts((100, 80, 1))),
                Prompt(4, 25, box=box(70, 60, 120, 100)),
            ],
            [],
        ),
        "e_correction": (
            [Prompt(1, 0, box=box(20, 30, 60, 70)), Prompt(1, 20, points=pts((95, 50, 1), (60, 50, 0)))],
            [],
        ),
        "f_masks": ([Prompt(1, 0, mask=mask), Prompt(2, 9, mask=mask2, points=pts((110, 80, 1)))], []),
        "g_stride_2": (
            [Prompt(1, 14, box=box(20, 30, 60, 70)), Prompt(2, 14, points=pts((100, 80, 1)))],
            ["model.memory_stride=2"],
        ),
    }


def compare(cfg: dict, path, prompts: list[Prompt], device: str = "cpu", bf16: bool = False) -> dict:
    """Run both sides; the largest absolute difference of the logits, and how many results each gave."""
    model, got, emitted = ours(cfg, path, prompts, device, bf16)
    ref = upstream(model, cfg, path, prompts, bf16)
    worst = max((got[k] - ref[k]).abs().max().item() for k in ref) if set(got) == set(ref) else float("inf")
    close = set(got) == set(ref) and all(torch.allclose(got[k], ref[k], rtol=1e-4, atol=1e-4) for k in ref)
    # masks agreement (logit > 0), the measure that matters under bf16
    agree = [((got[k] > 0) == (ref[k] > 0)).float().mean().item() for k in ref if k in got]
    return {
        "emitted": emitted,
        "keys_equal": set(got) == set(ref),
        "max_abs_diff": worst,
        "allclose_1e-4": close,
        "mask_agreement": float(np.mean(agree)) if agree else 0.0,
        "ours": got,
        "upstream": ref,
    }
