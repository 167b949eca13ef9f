"""Resumable runs: the engine's checkpoints (every pass), and ``resume=true`` after SIGKILL."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest
import yaml
from helpers import cli_main
from PIL import Image

from tracker.engine.propagation import Checkpoint, Propagator
from tracker.engine.types import Checkpoints, Passes
from tracker.experiments.demo import demo_sequence, write_demo_clip
from tracker.io.source import open_source
from tracker.records import Prompt

W, H = 320, 240


def _box(seq, t: int, oid: int) -> tuple[float, float, float, float]:
    ys, xs = np.nonzero(seq.frame(t)[1] == oid)
    return (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))


def late_prompts(n: int, seed: int = 0) -> list[Prompt]:
    """Object 1 from frame n//3 (warm-up and backward passes), object 2 on frames 5 and 2n//3."""
    seq = demo_sequence(n, W, H, seed)
    a, b = n // 3, 2 * n // 3
    return [
        Prompt(1, a, box=_box(seq, a, 1)),
        Prompt(2, 5, box=_box(seq, 5, 2)),
        Prompt(2, b, box=_box(seq, b, 2)),
    ]


@pytest.fixture(scope="module")
def toy():
    from tracker.api import load_model

    return load_model("toy")


def test_resuming_from_any_checkpoint_gives_the_same_frames(toy, tmp_path):
    n = 48
    clip = write_demo_clip(tmp_path / "c.mp4", n, W, H, 0)
    prompts = late_prompts(n)
    src = open_source("pyav", clip)
    frames, marks = [], []
    for item in Propagator(toy, passes=Passes(reverse_chunk=4), checkpoints=Checkpoints(6)).run(src, prompts):
        if isinstance(item, Checkpoint):
            marks.append((item, len(frames)))
        else:
            frames.append(item[1])
    plain = [m for _, m in Propagator(toy, passes=Passes(reverse_chunk=4)).run(src, prompts)]
    assert len(frames) == len(plain) == n
    for a, b in zip(frames, plain):
        assert np.array_equal(a.masks, b.masks) and np.array_equal(a.scores, b.scores)
    stages = {m.stage for m, _ in marks}
    assert stages == {"warmup", "backward", "forward"}, stages
    for mark, count in marks:
        assert mark.emitted == count  # every frame before the cut was yielded, none after
    # one cut in each pass (the last one of the warm-up and backward passes, a middle one forward)
    picks = [[m for m, _ in marks if m.stage == st] for st in ("warmup", "backward", "forward")]
    for mark in (picks[0][-1], picks[1][-1], picks[2][len(picks[2]) // 2]):
        rest = list(_resumed(toy, src, prompts, mark, tmp_path))
        assert [m.frame_index for m in rest] == list(range(mark.emitted, n)), mark.stage
        for a, b in zip(rest, frames[mark.emitted :]):
            assert np.array_equal(a.masks, b.masks) and np.array_equal(a.scores, b.scores), (mark.stage, a.frame_index)


def _resumed(toy, src, prompts, mark, tmp_path, memory=lambda: None):
    """Run with a named spool up to ``mark`` again, then continue in a new Propagator from its state
    (``memory``: makes each Propagator's memory policy)."""
    spool = str(tmp_path / f"spool-{mark.stage}-{mark.position}.bin")
    first = Propagator(toy, memory(), passes=Passes(reverse_chunk=4), checkpoints=Checkpoints(6, spool))
    it = first.run(src, prompts)
    state = None
    for item in it:
        if isinstance(item, Checkpoint) and (item.stage, item.position) == (mark.stage, mark.position):
            state = item.state
            break
    it.close()  # the first process dies here
    assert state is not None
    second = Propagator(toy, memory(), passes=Passes(reverse_chunk=4), checkpoints=Checkpoints(6, spool))
    for item in second.run(src, prompts, resume=state):
        if not isinstance(item, Checkpoint):
            yield item[1]


@pytest.mark.parametrize("name", ["gated", "guard"])
def test_a_policys_state_resumes_with_the_run(toy, tmp_path, name):
    """A memory policy other than SAM 2's (filters, counters, chosen frames; guard's last frame seen, from
    which the camera's motion onto the next is measured) continues from a checkpoint as if never stopped."""
    from tracker.engine.policies import memory_policy

    n = 48
    src = open_source("pyav", write_demo_clip(tmp_path / "c.mp4", n, W, H, 0))
    prompts = late_prompts(n)
    policy = lambda: memory_policy(name)  # noqa: E731
    frames, marks = [], []
    for item in Propagator(toy, policy(), passes=Passes(reverse_chunk=4), checkpoints=Checkpoints(6)).run(src, prompts):
        if isinstance(item, Checkpoint):
            marks.append(item)
        else:
            frames.append(item[1])
    forward = [m for m in marks if m.stage == "forward"]
    mark = forward[len(forward) // 2]
    assert mark.state["memory"]["rows"], "the checkpoint carries the policy's rows"
    rest = list(_resumed(toy, src, prompts, mark, tmp_path, policy))
    assert [m.frame_index for m in rest] == list(range(mark.emitted, n))
    for a, b in zip(rest, frames[mark.emitted :]):
        assert np.array_equal(a.masks, b.masks) and np.array_equal(a.scores, b.scores), a.frame_index


# ---- the CLI: SIGKILL, then resume=true -------------------------------------------------------------


N = 150


@pytest.fixture(scope="module")
def long_run(tmp_path_factory):
    """A 150-frame clip, prompts that need every pass, and the outputs of an uninterrupted run."""
    d = tmp_path_factory.mktemp("resume")
    clip = write_demo_clip(d / "clip.mp4", N, W, H, 0)
    prompts = d / "prompts.yaml"
    objects = {}
    for p in late_prompts(N):
        objects.setdefault(p.object_id, []).append({"frame": p.frame_index, "box": [round(v) for v in p.box]})
    prompts.write_text(yaml.safe_dump({"objects": [{"id": k, "prompts": v} for k, v in objects.items()]}))
    ref = d / "ref"
    res = _cli(clip, prompts, ref)
    assert res.returncode == 0, res.stderr
    assert not (ref / ".resume").exists()  # removed when the run completes
    return clip, prompts, ref


def _args(clip: Path, prompts: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "tracker.apps.cli",
        "model=toy",
        f"source.path={clip}",
        f"prompts.path={prompts}",
        f"output_dir={out}",
        "progress=false",
        "threads=1",
        "resume_every=20",
        "propagation.reverse_chunk=8",
        "sink.mot=true",
        *extra,
    ]


def _cli(clip, prompts, out, *extra) -> subprocess.CompletedProcess:
    return subprocess.run(_args(clip, prompts, out, *extra), capture_output=True, text=True, timeout=600)


def _checkpoint(out: Path) -> dict | None:
    import torch

    try:
        return torch.load(out / ".resume" / "checkpoint.pt", map_location="cpu", weights_only=True)
    except Exception:
        return None


def _kill_at(clip, prompts, out, stage: str, min_emitted: int = 0, *extra: str) -> dict:
    proc = subprocess.Popen(_args(clip, prompts, out, *extra), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seen = None
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline:
        ck = _checkpoint(out)
        if ck is not None and ck["stage"] == stage and ck["emitted"] >= min_emitted:
            seen = ck
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert seen is not None, f"the run never reached a {stage} checkpoint"
    return seen


def _frames(video: Path) -> list[float]:
    with av.open(str(video)) as c:
        return [round(float(f.time), 6) for f in c.decode(video=0)]


def _same_outputs(a: Path, b: Path) -> None:
    assert (a / "masks.jsonl").read_bytes() == (b / "masks.jsonl").read_bytes()
    assert (a / "tracks.csv").read_bytes() == (b / "tracks.csv").read_bytes()
    pa, pb = sorted((a / "masks").iterdir()), sorted((b / "masks").iterdir())
    assert [p.name for p in pa] == [p.name for p in pb] and len(pa) == N
    for x, y in zip(pa, pb):
        assert np.array_equal(np.asarray(Image.open(x)), np.asarray(Image.open(y))), x.name
    ta, tb = _frames(a / "annotated.mp4"), _frames(b / "annotated.mp4")
    assert len(ta) == len(tb) == N and ta == tb


@pytest.mark.parametrize("stage, min_emitted", [("backward", 0), ("forward", 60)])
def test_sigkill_then_resume_gives_the_uninterrupted_outputs(long_run, tmp_path, stage, min_emitted):
    clip, prompts, ref = long_run
    out = tmp_path / "out"
    ck = _kill_at(clip, prompts, out, stage, min_emitted)
    assert not (out / "masks.jsonl").exists()  # nothing committed yet
    res = _cli(clip, prompts, out, "resume=true")
    assert res.returncode == 0, res.stderr
    run = json.loads((out / "run.json").read_text())
    assert run["resumed_from"]["stage"] in (ck["stage"], "forward") and run["resumed_from"]["frame"] >= ck["emitted"]
    assert run["frames"] == N - run["resumed_from"]["frame"]
    _same_outputs(ref, out)
    assert not (out / ".resume").exists()


def test_resume_refuses_other_inputs_and_keeps_the_checkpoint(long_run, tmp_path, capfd):
    clip, prompts, ref = long_run
    out = tmp_path / "out"
    _kill_at(clip, prompts, out, "forward", 40)
    other = tmp_path / "other.yaml"
    doc = yaml.safe_load(prompts.read_text())
    doc["objects"][0]["prompts"][0]["box"][0] += 1
    other.write_text(yaml.safe_dump(doc))
    for extra, needle in [
        ((f"prompts.path={other}",), "the prompts differ"),
        (("sink.crf=30",), "the config differs (sink.crf=20 then, 30 now)"),
        (("model.fill_hole_area=3",), "model.fill_hole_area"),
    ]:
        args = _args(clip, prompts, out, "resume=true", *extra)[3:]  # in process: the CLI's own entry point
        if extra[0].startswith("prompts.path="):
            args = [a for a in args if a != f"prompts.path={prompts}"]
        capfd.readouterr()
        code = cli_main(*args)
        lines = capfd.readouterr().err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and needle in lines[0], lines
        assert (out / ".resume" / "checkpoint.pt").is_file()  # a refusal keeps it
    res = _cli(clip, prompts, out, "resume=true")
    assert res.returncode == 0, res.stderr
    _same_outputs(ref, out)
    # nothing left to resume
    res = _cli(clip, prompts, out, "resume=true")
    assert res.returncode == 2 and "has no checkpoint" in res.stderr
    assert (out / "masks.jsonl").read_bytes() == (ref / "masks.jsonl").read_bytes()  # the refusal changed nothing


def test_the_first_forward_checkpoint_comes_early(toy, tmp_path):
    """With checkpoint_every=100 a run stopped at frame 39 used to keep nothing emitted; the first checkpoint
    of the forward pass now comes 10 frames in, then every checkpoint_every."""
    n = 40
    clip = write_demo_clip(tmp_path / "c.mp4", n, W, H, 0)
    seq = demo_sequence(n, W, H, 0)
    src = open_source("pyav", clip)
    marks = [
        item.emitted
        for item in Propagator(toy, checkpoints=Checkpoints(100)).run(src, [Prompt(1, 0, box=_box(seq, 0, 1))])
        if isinstance(item, Checkpoint) and item.stage == "forward"
    ]
    assert marks == [10]


def test_a_run_over_part_of_the_video_resumes_in_the_videos_frame_numbers(long_run, tmp_path):
    """source.start/stop: the checkpoint counts the run's frames, the per-frame outputs are named by the
    video's; killed in the forward pass and resumed, the outputs are the uninterrupted run's."""
    clip, prompts, _ = long_run
    part = ("source.start=5", "source.stop=105")  # 100 frames, the prompt frames 5, 50 and 100 among them
    ref, out = tmp_path / "ref", tmp_path / "out"
    res = _cli(clip, prompts, ref, *part)
    assert res.returncode == 0, res.stderr
    _kill_at(clip, prompts, out, "forward", 40, *part)
    res = _cli(clip, prompts, out, "resume=true", *part)
    assert res.returncode == 0, res.stderr
    assert json.loads((out / "run.json").read_text())["resumed_from"]["frame"] >= 40
    assert (out / "masks.jsonl").read_bytes() == (ref / "masks.jsonl").read_bytes()
    assert (out / "tracks.csv").read_bytes() == (ref / "tracks.csv").read_bytes()
    names = sorted(p.name for p in (out / "masks").iterdir())
    assert names == sorted(p.name for p in (ref / "masks").iterdir()) == [f"{f:05d}.png" for f in range(5, 105)]
    for name in names:
        assert np.array_equal(
            np.asarray(Image.open(out / "masks" / name)), np.asarray(Image.open(ref / "masks" / name))
        )
    assert _frames(out / "annotated.mp4") == _frames(ref / "annotated.mp4")
