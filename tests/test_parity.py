"""Parity: our streaming engine against upstream SAM2VideoPredictor, same weights, same frames.

Both are fed the very same preprocessed frames (upstream's frame loader is replaced by ours), fp32 on
CPU, hole filling off on both (upstream skips it on CPU installs). Low-res mask logits of every
object on every frame must match within rtol = atol = 1e-4.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import model_cfg
from parity import ours, upstream

from tracker.records import Prompt


def _check(path, prompts, extra=None, n=32, on_model=None):
    cfg = model_cfg(128, extra)
    model, got, emitted = ours(cfg, path, prompts, on_model=on_model)
    ref = upstream(model, cfg, path, prompts)
    ids = sorted({p.object_id for p in prompts})
    assert emitted == list(range(n))
    assert set(got) == set(ref) == {(o, t) for o in ids for t in range(n)}
    worst = max((got[k] - ref[k]).abs().max().item() for k in ref)
    for k in sorted(ref):
        assert torch.allclose(got[k], ref[k], rtol=1e-4, atol=1e-4), f"object/frame {k}: max diff {worst}"
    # the masks are not trivially equal (e.g. all background): they vary across frames
    assert len({round(float(ref[k].mean()), 4) for k in ref}) > n // 2
    return model


def test_a_one_object_box_frame0(clip32):
    _check(clip32, [Prompt(1, 0, box=(20, 30, 60, 70))])


def test_b_three_objects_points_and_boxes(clip32):
    _check(
        clip32,
        [
            Prompt(1, 0, box=(20, 30, 60, 70)),
            Prompt(2, 0, points=((110, 80, 1),)),
            Prompt(5, 0, points=((40, 50, 1), (120, 20, 0)), box=(10, 10, 150, 110)),
        ],
    )


def test_c_middle_frame_forward_then_backward(clip32):
    _check(clip32, [Prompt(3, 17, points=((80, 50, 1), (30, 90, 0)))])


def test_e_correction_on_frames_0_and_20(clip32):
    _check(
        clip32,
        [
            Prompt(1, 0, box=(20, 30, 60, 70)),
            Prompt(1, 20, points=((95, 50, 1), (60, 50, 0))),
        ],
    )


def test_f_mask_prompt_and_mask_refined_by_points(clip32):
    mask = np.zeros((120, 160), dtype=bool)
    mask[30:70, 20:60] = True
    mask2 = np.zeros((120, 160), dtype=bool)
    mask2[60:100, 90:140] = True
    _check(clip32, [Prompt(1, 0, mask=mask), Prompt(2, 9, mask=mask2, points=((110, 80, 1),))])


@pytest.mark.parametrize("first", [0, 14])
def test_g_memory_stride_2(clip32, first):
    _check(
        clip32,
        [Prompt(1, first, box=(20, 30, 60, 70)), Prompt(2, first, points=((100, 80, 1),))],
        extra=["model.memory_stride=2"],
    )


def test_d_objects_with_different_first_prompt_frames(clip32):
    """Objects prompted on frames 0, 11 and 25 (three groups): each equals upstream run on it alone, and
    once two have memories of the same layout (frame 11 + 16 on: as many pointers, as many memories) they
    are tracked as one batch. The work that is the same for every object is done once per frame: the
    memory encoder's projection of the frame and the first self-attention, on batch 1; and each frame goes
    through the image encoder once, though several passes visit it."""
    events: list[tuple[str, int]] = []

    def count(model):
        net = model.net

        def hook(name):
            return lambda mod, args, out: events.append((name, int(args[0].shape[0])))

        net.image_encoder.register_forward_hook(hook("image"))
        track_many = model.track_many

        def frame_visit(*args, **kwargs):  # one call: every group tracked on one frame in one pass
            events.append(("frame", 0))
            return track_many(*args, **kwargs)

        model.track_many = frame_visit
        net.memory_encoder.pix_feat_proj.register_forward_hook(hook("proj"))
        net.memory_encoder.mask_downsampler.register_forward_hook(hook("masks"))
        net.memory_attention.layers[0].self_attn.register_forward_hook(hook("sa0"))

    prompts = [
        Prompt(1, 0, box=(20, 30, 60, 70)),
        Prompt(2, 11, points=((100, 80, 1),)),
        Prompt(4, 25, box=(70, 60, 120, 100)),
    ]
    model = _check(clip32, prompts, on_model=count)
    # every frame through the image encoder once, though the prompt, warm-up, backward and forward passes
    # all visit some frames (features kept on disk between passes)
    assert sum(name == "image" for name, _ in events) == 32
    # each group tracks 31 frames (forward after its prompt frame, backward before it): 93 group-steps
    assert model.batches <= 93 - 5
    assert 0 < model.heads_seconds < model.seconds  # the heads' share (bench_long_video.py's own cost)
    frames, current = [], None
    for name, batch in events:
        if name == "frame":
            current = {"proj": [], "masks": [], "sa0": []}
            frames.append(current)
        elif current is not None and name in current:
            current[name].append(batch)
    tracked = frames
    assert len(tracked) > 40
    for f in tracked:
        assert f["proj"] == [1] and f["sa0"] == [1]  # once per frame, batch 1, whatever the objects
    assert any(f["masks"] == [2] for f in tracked)  # two objects of two groups in one batch


def test_the_ported_upstream_functions_are_the_installed_sams():
    """tracker/engine/sam2_port.py follows these sam2 functions as they were when ported: a sam2 whose
    source differs is a port to redo (the parity tests above check the outputs)."""
    import hashlib
    import importlib
    import inspect

    from tracker.engine.sam2_port import UPSTREAM

    for name, digest in UPSTREAM.items():
        module, cls, fn = name.rsplit(".", 2)
        source = inspect.getsource(getattr(getattr(importlib.import_module(module), cls), fn))
        assert hashlib.sha256(source.encode()).hexdigest()[:16] == digest, f"{name} changed: port it again"
