"""Engine behaviour beyond parity: bounded state over a long run, order of emission, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import model_cfg, moving_shapes, write_video

from tracker.engine.memory import Sam2Memory, memory_reads, pointer_reads
from tracker.engine.policies import memory_policy
from tracker.engine.propagation import Propagator
from tracker.engine.sam import build_model
from tracker.engine.types import Passes
from tracker.io.source import PyAVSource
from tracker.masks import fill_holes, to_video_masks
from tracker.records import Prompt


@pytest.fixture(scope="module")
def model():
    return build_model(model_cfg(128)["arch"]["model"], seed=0, fill_hole_area=0)


def test_read_patterns_match_sam2_note():
    # r = 1: frames t-1 .. t-6, earliest first (t_pos 1 is the oldest)
    assert memory_reads(100, False, 7, 1) == [94, 95, 96, 97, 98, 99]
    assert memory_reads(100, True, 7, 1) == [106, 105, 104, 103, 102, 101]
    # r = 2: every 2nd frame plus the last one
    assert memory_reads(101, False, 7, 2) == [90, 92, 94, 96, 98, 100]
    assert pointer_reads(20, False, 16) == list(range(19, 4, -1))


def test_state_stays_bounded_over_a_long_video(tmp_path, model):
    n = 120  # far past what SAM 2 reads back (6 memories, 15 pointers) in every pass
    path = write_video(tmp_path / "long.mp4", moving_shapes(n, 64, 48))
    prompts = [
        Prompt(1, 0, box=(5, 10, 25, 30)),
        Prompt(2, 60, points=((40, 30, 1),)),
        Prompt(3, 60, box=(30, 20, 60, 45)),
    ]
    pr = Propagator(model, passes=Passes(reverse_chunk=16))
    seen: list[list[dict]] = []
    steps = []

    def hook(frame, reverse, ids, low_res):
        steps.append((frame, reverse, ids))
        seen.append(pr.retained())

    pr.step_hook = hook
    emitted = [fm.frame_index for _, fm in pr.run(PyAVSource(path), prompts)]
    assert emitted == list(range(n))
    nm1, ptrs = model.num_maskmem - 1, model.max_obj_ptrs - 1
    assert (nm1, ptrs) == (6, 15)
    for snapshot in seen:
        for g in snapshot:
            assert g["fwd_memories"] <= nm1 and g["bwd_memories"] <= nm1, g
            assert g["fwd_pointers"] <= ptrs and g["bwd_pointers"] <= ptrs, g
            assert g["prompt_frames"] <= 1 and g["low_res_kept"] == 0, g
    # objects 2 and 3 share prompt frames, so they run as one batch; object 1 alone
    assert {ids for _, _, ids in steps} == {(1,), (2, 3)}
    # every (group, frame) is computed exactly once
    assert len(steps) == len(set(steps)) == 2 * n


def _no_steps(model):
    def hook(*a):
        raise AssertionError("a frame was processed before the prompts were validated")

    return Propagator(model, step_hook=hook)


@pytest.mark.parametrize(
    "prompt, ids, match",
    [
        (lambda: Prompt(1, 32, box=(1, 1, 10, 10)), None, "prompt frame 32 is out of range"),
        (lambda: Prompt(1, 0, mask=np.ones((10, 10), bool)), None, "mask has shape 10x10"),
        (lambda: Prompt(7, 0, box=(1, 1, 10, 10)), [1, 2], "unknown object id 7"),
        (lambda: Prompt(1, 0, box=(1, 1, 500, 10)), None, "outside the 160x120 image"),
    ],
)
def test_bad_prompts_fail_before_any_frame(clip32, model, prompt, ids, match):
    with pytest.raises(ValueError, match=match):
        list(_no_steps(model).run(PyAVSource(clip32), [prompt()], object_ids=ids))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"points": ()}, "empty prompt"),
        ({"box": (50, 10, 20, 40)}, r"box \[50, 10, 20, 40\] is inverted"),
        ({"points": ((10, 10, 2),)}, "point label 2 is unknown"),
        ({"mask": np.ones((2, 3, 4), bool)}, "must be 2-D"),
    ],
)
def test_bad_prompt_records(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Prompt(1, 0, **kwargs)


def test_duplicate_prompt_frame_rejected(clip32, model):
    with pytest.raises(ValueError, match="two prompts on frame 3"):
        prompts = [Prompt(1, 3, box=(1, 1, 9, 9)), Prompt(1, 3, points=((5, 5, 1),))]
        list(_no_steps(model).run(PyAVSource(clip32), prompts))


def test_fill_holes_and_video_masks():
    low = np.full((1, 32, 32), 5.0, dtype=np.float32)
    low[0, 10:12, 10:12] = -3.0  # a 4-pixel hole: filled
    low[0, 20:30, 0:10] = -3.0  # a 100-pixel region: kept
    filled = fill_holes(low, 8)
    assert (filled[0, 10:12, 10:12] == np.float32(0.1)).all()
    assert (filled[0, 20:30, 0:10] == -3.0).all()
    assert (low[0, 10:12, 10:12] == -3.0).all(), "the input is not modified"
    masks = to_video_masks(filled, (64, 64))
    assert masks.dtype == bool and masks.shape == (1, 64, 64)
    assert masks[0, 21, 21] and not masks[0, 50, 5]


def test_video_masks_match_torch_bilinear():
    import torch
    import torch.nn.functional as F

    x = np.random.default_rng(0).normal(size=(3, 32, 32)).astype(np.float32)
    ref = F.interpolate(torch.from_numpy(x)[:, None], size=(121, 97), mode="bilinear", align_corners=False)
    assert (to_video_masks(x, (121, 97)) == (ref[:, 0] > 0).numpy()).mean() > 0.9999


def test_without_backward_objects_are_empty_before_their_first_prompt(clip32, model):
    steps = []
    pr = Propagator(
        model, passes=Passes(backward=False), step_hook=lambda t, rev, ids, low: steps.append((t, rev, ids))
    )
    out = list(pr.run(PyAVSource(clip32), [Prompt(1, 0, box=(20, 30, 60, 70)), Prompt(2, 10, box=(90, 60, 140, 100))]))
    assert [fm.frame_index for _, fm in out] == list(range(32))
    assert not any(rev for _, rev, _ in steps)
    assert all(not fm.mask_of(2).any() and fm.scores[1] == 0.0 for _, fm in out[:10])
    assert {t for t, _, ids in steps if ids == (2,)} == set(range(10, 32))


class _PromptFramesOnly(Sam2Memory):
    """A policy that never writes a tracked frame: SAM 2 reads the prompt frames alone, and the state keeps
    nothing else; ``state`` counts the frames it refused (carried through checkpoints)."""

    name = "prompt_frames_only"

    def __init__(self) -> None:
        self.refused = 0

    def write(self, g, t, reverse, entry, low_res, score) -> None:
        self.refused += 1

    def state(self) -> dict:
        return {"refused": self.refused}

    def load_state(self, state: dict) -> None:
        self.refused = state["refused"]


def test_the_engine_takes_its_memory_policy(tmp_path):
    """The memory seam: the policy object decides what enters memory. The default (Sam2Memory) is the
    engine's behaviour when none is given; another policy changes the masks and what is kept."""
    from tracker.api import load_model

    model = load_model("toy")
    path = write_video(tmp_path / "c.mp4", moving_shapes(12, 64, 48))
    prompts = [Prompt(1, 0, box=(5, 10, 25, 30)), Prompt(2, 4, box=(30, 20, 60, 45))]
    plain = [fm.masks for _, fm in Propagator(model).run(PyAVSource(path), prompts)]
    same = [fm.masks for _, fm in Propagator(model, memory_policy("sam2")).run(PyAVSource(path), prompts)]
    assert all(np.array_equal(a, b) for a, b in zip(plain, same))
    policy = _PromptFramesOnly()
    pr = Propagator(model, policy)
    kept = []
    pr.step_hook = lambda *a: kept.append(pr.retained())
    other = [fm.masks for _, fm in pr.run(PyAVSource(path), prompts)]
    assert policy.refused > 0 and all(g["fwd_pointers"] == g["bwd_pointers"] == 0 for s in kept for g in s)
    assert any(not np.array_equal(a, b) for a, b in zip(plain, other))


def test_memory_policy_by_name():
    assert isinstance(memory_policy("sam2"), Sam2Memory)
    with pytest.raises(ValueError, match="memory=.nope. is unknown: use one of dam4sam, gated, guard, sam2, samurai"):
        memory_policy("nope")
    with pytest.raises(ValueError, match="memory=sam2: .*configs/memory/sam2.yaml"):
        memory_policy("sam2", window=3)


def test_a_long_run_says_early_how_long_it_will_take(caplog):
    """Three frames after the first are timed; the line says the rest and the quicker size to try."""
    from tracker.engine.pipeline import Estimate, estimate_line

    assert estimate_line(15.0, 300, 1024) == (
        "~15 s/frame: about 1 h 15 min for the 300 frames left; model.image_size=512 is roughly 4x faster"
    )
    assert estimate_line(0.5, 200, 512) == "~0.5 s/frame: about 2 min for the 200 frames left"
    clock = iter([100.0, 145.0])  # frame 1 at 100 s, frame 4 at 145 s: 15 s a frame
    with caplog.at_level("INFO", logger="tracker"):
        est = Estimate(304, 1024, clock=lambda: next(clock))
        for done in range(1, 10):
            est.frame(done)
    assert [r.getMessage() for r in caplog.records] == [estimate_line(15.0, 300, 1024)]
    caplog.clear()
    clock = iter([0.0, 0.3])  # a short run: nothing said
    with caplog.at_level("INFO", logger="tracker"):
        est = Estimate(40, 256, clock=lambda: next(clock))
        for done in range(1, 10):
            est.frame(done)
    assert caplog.records == []


def test_kept_values_give_the_very_same_logits(tmp_path):
    """model.kv_cache: memory attention's values of a memory frame are made once and kept with its entry
    (its keys carry its slot's position, which moves every frame). Every logit equals the path that
    projects the whole memory on every frame, bit for bit (three groups with other prompt frames, a
    correction, both passes, a policy that refuses frames), far fewer memory tokens go through the value
    projection, and what is kept goes when its memory goes."""
    import torch

    n = 32
    path = write_video(tmp_path / "c.mp4", moving_shapes(n, 160, 120))
    prompts = [
        Prompt(1, 0, box=(20, 30, 60, 70)),
        Prompt(1, 20, points=((95, 50, 1), (60, 50, 0))),
        Prompt(2, 11, points=((100, 80, 1),)),
        Prompt(4, 25, box=(70, 60, 120, 100)),
    ]
    runs = {}
    for kept in (False, True):
        for policy in ("sam2", "guard"):
            model = build_model(model_cfg(128)["arch"]["model"], seed=0, fill_hole_area=0, kv_cache=kept)
            rows = []
            v_proj = model.net.memory_attention.layers[0].cross_attn_image.v_proj
            v_proj.register_forward_hook(lambda mod, args, out, rows=rows: rows.append(args[0].shape[:2].numel()))
            pr = Propagator(model, memory_policy(policy), passes=Passes(reverse_chunk=5))
            logits, counts = {}, []

            def hook(frame, reverse, ids, low_res, pr=pr, logits=logits, counts=counts):
                counts.extend(pr.retained())
                for i, oid in enumerate(ids):
                    logits[(oid, frame, reverse)] = low_res[i].float().clone()

            pr.step_hook = hook
            masks = [fm.masks for _, fm in pr.run(PyAVSource(path), prompts)]
            runs[kept, policy] = logits, masks, sum(rows), counts
    for policy in ("sam2", "guard"):
        plain, plain_masks, plain_rows, _ = runs[False, policy]
        kept, kept_masks, kept_rows, counts = runs[True, policy]
        assert plain.keys() == kept.keys() and len(plain) == 3 * n
        assert all(torch.equal(plain[k], kept[k]) for k in plain), policy
        assert all(np.array_equal(a, b) for a, b in zip(plain_masks, kept_masks))
        assert kept_rows < plain_rows / 3, (policy, kept_rows, plain_rows)
        assert all(c["stray_projections"] == 0 for c in counts)
        # per group at most: its memories and prompt frames x 4 layers
        assert all(c["projections"] <= 4 * (c["fwd_memories"] + c["bwd_memories"] + c["prompt_frames"]) for c in counts)
        assert max(c["projections"] for c in counts) > 0
    assert any(not np.array_equal(a, b) for a, b in zip(runs[False, "sam2"][1], runs[False, "guard"][1]))
