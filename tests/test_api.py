"""The Python API in this checkout: load_model by name, track with each form of prompts."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from helpers import write_video
from PIL import Image

import tracker
from tracker.experiments.demo import demo_sequence, write_demo_clip


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    clip = write_demo_clip(tmp_path_factory.mktemp("api") / "clip.mp4", 16, 160, 120, seed=4)
    return clip, demo_sequence(16, 160, 120, 4)


def _boxes(seq) -> dict[int, list[int]]:
    first = seq.frame(0)[1]
    out = {}
    for oid in (1, 2):
        ys, xs = np.nonzero(first == oid)
        out[oid] = [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]
    return out


def test_track_each_form_of_prompts_gives_the_same_masks(demo, tmp_path):
    clip, seq = demo
    boxes = _boxes(seq)
    as_dict = {"objects": [{"id": k, "label": f"o{k}", "prompts": [{"frame": 0, "box": b}]} for k, b in boxes.items()]}
    path = tmp_path / "p.yaml"
    import yaml

    path.write_text(yaml.safe_dump(as_dict))
    as_list = [tracker.Prompt(k, 0, box=tuple(float(v) for v in b)) for k, b in boxes.items()]
    model = tracker.load_model("toy")
    results = []
    for prompts in (as_dict, path, as_list):
        results.append([m.masks for _, m in tracker.track(clip, prompts, model=model)])
    assert len(results[0]) == 16
    for other in results[1:]:
        assert all(np.array_equal(a, b) for a, b in zip(results[0], other, strict=True))
    ious = []
    for t, masks in enumerate(results[0]):
        truth = seq.frame(t)[1]
        for i, oid in enumerate((1, 2)):
            g = truth == oid
            ious.append((masks[i] & g).sum() / max((masks[i] | g).sum(), 1))
    assert np.mean(ious) >= 0.7


def test_track_finds_the_objects_when_none_are_given(demo):
    """prompts=None: the objects are found on frame 0 (the toy's three-point grid from its config)."""
    clip, seq = demo
    model = tracker.load_model("toy")
    assert model.auto_points == 3
    gen = {"points_per_side": 16, "pred_iou_thresh": 0.88, "stability_score_thresh": 0.9, "nms_iou": 0.3}
    frames = list(tracker.track(clip, None, model=model, discover_every=4, confirm=3, generator=gen))
    assert len(frames) == 16
    ids = frames[-1][1].object_ids
    for k in (1, 2):
        truth = seq.frame(15)[1] == k
        best = max((m & truth).sum() / max((m | truth).sum(), 1) for m in frames[-1][1].masks)
        assert best > 0.7, (k, ids)
    with pytest.raises(ValueError, match="nms"):
        tracker.track(clip, None, model=model, generator={"nms": "soft"})


def test_track_checks_before_returning(demo):
    clip, _ = demo
    with pytest.raises(ValueError, match="out of range"):
        tracker.track(clip, [tracker.Prompt(1, 99, box=(1, 1, 9, 9))], model=tracker.load_model("toy"))
    with pytest.raises(ValueError, match="unknown"):
        tracker.load_model("sam3")
    with pytest.raises(ValueError, match="multiple of 32"):
        tracker.load_model("toy", image_size=100)
    with pytest.raises(ValueError, match="tracker-download sam2.1_hiera_t"):
        tracker.load_model("sam2.1_hiera_t", image_size=64)  # no weights cached (TRACKER_HOME: conftest)
    with pytest.warns(UserWarning, match="untrained weights"):
        m = tracker.load_model("sam2.1_hiera_t", image_size=64, memory_stride=2, random_weights=True)
    assert (m.image_size, m.stride) == (64, 2)


def test_run_writes_what_the_cli_writes_and_returns_its_record(demo, tmp_path):
    """tracker.run(...) goes through the same spine as the command: the same masks.jsonl byte for byte,
    and the record it returns is run.json's."""
    import json
    import subprocess
    import sys

    import yaml

    clip, seq = demo
    prompts = tmp_path / "p.yaml"
    objects = [{"id": k, "label": f"o{k}", "prompts": [{"frame": 0, "box": b}]} for k, b in _boxes(seq).items()]
    prompts.write_text(yaml.safe_dump({"objects": objects}))
    import torch

    settings = {"sink": {"coco": True, "annotated": False}, "threads": 1, "progress": False, "model": "toy"}
    before = torch.get_num_threads()
    record = tracker.run(clip, prompts, tmp_path / "py", **settings)
    assert torch.get_num_threads() == before  # the run's threads=1 was the process's only while it ran
    cli = tmp_path / "cli"
    args = ["model=toy", f"source.path={clip}", f"prompts.path={prompts}", f"output_dir={cli}"]
    args += ["sink.coco=true", "sink.annotated=false", "threads=1", "progress=false"]
    res = subprocess.run([sys.executable, "-m", "tracker.apps.cli", *args], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    for name in ("masks.jsonl", "tracks.csv", "instances.json"):
        assert (tmp_path / "py" / name).read_bytes() == (cli / name).read_bytes(), name
    assert record == json.loads((tmp_path / "py" / "run.json").read_text())
    assert record["mode"] == "file" and record["objects"] == {"1": "o1", "2": "o2"}
    assert not (tmp_path / "py" / "annotated.mp4").exists()


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        ({"sink": {"nope": True}}, "nope"),
        ({"discover": {"every": -1}}, "discover.every=-1"),
        ({"memory": {"name": "nope"}}, "memory='nope' is unknown"),
    ],
)
def test_run_refuses_bad_settings_before_decoding(demo, tmp_path, kwargs, needle):
    clip, _ = demo
    with pytest.raises(ValueError, match=needle):
        tracker.run(clip, None, tmp_path / "out", model="toy", **kwargs)
    assert not (tmp_path / "out").exists()


def test_run_takes_every_group_of_the_command(demo, tmp_path):
    """tracker.run reaches what the command does: a frame folder (source.kind collided with the source
    argument), a memory policy's own settings (memory.name picks its file), the model's dtype (model as a
    dict); bad values are one ValueError naming the key."""
    import yaml
    from PIL import Image

    clip, seq = demo
    frames = tmp_path / "frames"
    frames.mkdir()
    for t, (frame, _) in zip(range(4), tracker.track(clip, [tracker.Prompt(1, 0, box=(5, 5, 30, 30))], model="toy")):
        Image.fromarray(frame.rgb).save(frames / f"{t:05d}.png")
    objects = [{"id": k, "prompts": [{"frame": 0, "box": b}]} for k, b in _boxes(seq).items()]
    (tmp_path / "p.yaml").write_text(yaml.safe_dump({"objects": objects}))
    quiet = {"progress": False, "sink": {"annotated": False, "png": False}, "model": "toy"}
    record = tracker.run(
        frames,
        tmp_path / "p.yaml",
        tmp_path / "out",
        source={"kind": "images"},
        memory={"name": "gated", "gate_iou": 0.2},
        **{**quiet, "model": {"name": "toy", "dtype": "bfloat16"}},
    )
    assert record["frames"] == 4 and len((tmp_path / "out" / "masks.jsonl").read_text().splitlines()) == 4
    used = record["config"]
    assert used["source"]["kind"] == "images" and used["model"]["dtype"] == "bfloat16"
    assert used["memory"]["name"] == "gated" and used["memory"]["gate_iou"] == 0.2
    for settings, needle in [
        ({"memory": {"name": "gated", "gate_iou": -1}}, "memory.gate_iou=-1 is out of range"),
        ({"memory": {"name": "gated", "gate_iou": True}}, "memory.gate_iou=True is not a number"),
        ({"memory": {"name": "nope"}}, "nope"),
        ({"model": {"name": "toy", "dtype": "float8"}}, "dtype"),
    ]:
        with pytest.raises(ValueError, match=needle):
            tracker.run(clip, tmp_path / "p.yaml", tmp_path / "bad", **{**quiet, **settings})
        assert not (tmp_path / "bad").exists()


def test_track_checks_memory_and_step_hook_before_any_frame(demo):
    clip, _ = demo
    box = [tracker.Prompt(1, 0, box=(5, 5, 30, 30))]
    with pytest.raises(TypeError, match="memory must be a name of configs/memory/ or a MemoryPolicy: got int 3"):
        tracker.track(clip, box, model="toy", memory=3)
    with pytest.raises(TypeError, match="step_hook must be a function"):
        tracker.track(clip, box, model="toy", step_hook=5)


def test_checkpoint_that_is_a_device_and_a_home_with_a_tilde(tmp_path, monkeypatch):
    from tracker.weights_cache import home

    with pytest.raises(ValueError, match="'/dev/zero' is not a regular file"):
        tracker.load_model("toy", checkpoint="/dev/zero")
    monkeypatch.setenv("TRACKER_HOME", "~/x")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert home() == tmp_path / "x"


def _photo_clip(path: Path, frames: int = 6) -> Path:
    """Real footage, as far as this machine has any: a camera panning across a photograph (matplotlib's
    sample of Grace Hopper), encoded as H.264."""
    from matplotlib.cbook import get_sample_data

    photo = np.asarray(Image.open(get_sample_data("grace_hopper.jpg")).convert("RGB"))
    return write_video(path, (photo[40 + 4 * t : 280 + 4 * t, 60 + 6 * t : 380 + 6 * t] for t in range(frames)))


def test_no_silent_toy_model_and_a_warning_when_it_meets_real_footage(demo, tmp_path):
    """Leaving model out is a TypeError naming the choices; model='toy' on a video this package did not make
    warns once (Python: UserWarning; the command: its log and run.log); on the demo's clip it does not."""
    clip, _ = demo
    box = [tracker.Prompt(1, 0, box=(5, 5, 30, 30))]
    for call in (lambda: tracker.track(clip, box), lambda: tracker.run(clip, None, tmp_path / "o")):
        with pytest.raises(TypeError, match=r"needs model=: one of .*sam2\.1_hiera_t.*toy"):
            call()
    photo = _photo_clip(tmp_path / "photo.mp4")
    with pytest.warns(UserWarning, match="model=toy on 'photo.mp4': the toy model has only seen"):
        tracker.track(photo, box, model="toy")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tracker.track(clip, box, model="toy")
    import subprocess
    import sys

    for video, warned in ((photo, True), (clip, False)):
        out = tmp_path / f"cli-{video.stem}"
        args = ["model=toy", f"source.path={video}", "prompts.box=[5,5,30,30]", f"output_dir={out}"]
        args += ["sink.annotated=false", "threads=1", "progress=false"]
        res = subprocess.run([sys.executable, "-m", "tracker.apps.cli", *args], capture_output=True, text=True)
        assert res.returncode == 0 and res.stderr == "", res.stderr
        logged = (out / "run.log").read_text()
        assert ("the toy model has only seen" in logged) is warned and ("the toy model" in res.stdout) is warned


def test_track_sets_threads_by_the_commands_rule_while_it_runs(demo, monkeypatch):
    import torch

    import tracker.threads

    clip, _ = demo
    box = [tracker.Prompt(1, 0, box=(5, 5, 30, 30))]
    before = torch.get_num_threads()
    monkeypatch.setattr(tracker.threads, "usable_cores", lambda: 4)
    for idle, want in ((1.0, 1), (3.0, 3)):  # auto: the cores at least 3/4 idle
        monkeypatch.setattr(tracker.threads, "idle_cores", lambda idle=idle: idle)
        seen = [torch.get_num_threads() for _ in tracker.track(clip, box, model="toy")]
        assert set(seen) == {want} and torch.get_num_threads() == before
    assert {torch.get_num_threads() for _ in tracker.track(clip, box, model="toy", threads=2)} == {2}
    with pytest.raises(TypeError, match="threads must be 'auto' or a whole number"):
        tracker.track(clip, box, model="toy", threads=0)


def test_run_takes_the_prompts_track_takes(demo, tmp_path):
    """tracker.run used to refuse the dict tracker.track takes ('prompts must be a prompts file'): the same
    forms now, the same masks as a prompts file gives, and the prompts kept as OUT/prompts.yaml, which runs
    the same again (a mask prompt as RLE)."""
    import yaml

    from tracker.io.prompts import load_prompts

    clip, seq = demo
    boxes = _boxes(seq)
    mask = seq.frame(0)[1] == 2
    doc = {"objects": [{"id": 1, "label": "o1", "prompts": [{"frame": 0, "box": boxes[1]}]}]}
    quiet = {"progress": False, "threads": 1, "sink": {"annotated": False}, "model": "toy"}
    as_list = [tracker.Prompt(1, 0, box=tuple(boxes[1])), tracker.Prompt(2, 0, mask=mask)]
    tracker.run(clip, doc, tmp_path / "dict", **quiet)
    tracker.run(clip, as_list, tmp_path / "list", **quiet)
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(doc))
    tracker.run(clip, tmp_path / "p.yaml", tmp_path / "file", **quiet)
    assert (tmp_path / "dict" / "masks.jsonl").read_bytes() == (tmp_path / "file" / "masks.jsonl").read_bytes()
    assert not (tmp_path / "file" / "prompts.yaml").exists()  # a file run names its file; nothing to keep
    kept = load_prompts(tmp_path / "list" / "prompts.yaml")
    assert [p.object_id for p in kept.prompts] == [1, 2] and np.array_equal(kept.prompts[1].mask, mask)
    tracker.run(clip, tmp_path / "list" / "prompts.yaml", tmp_path / "again", **quiet)
    assert (tmp_path / "again" / "masks.jsonl").read_bytes() == (tmp_path / "list" / "masks.jsonl").read_bytes()
    with pytest.raises(ValueError, match="object id 300 is above 255"):
        tracker.run(clip, [tracker.Prompt(300, 0, box=(1, 1, 9, 9))], tmp_path / "big", **quiet)
    assert not (tmp_path / "big").exists()


def test_python_errors_speak_of_arguments_not_command_keys(tmp_path):
    box = [tracker.Prompt(1, 0, box=(1, 1, 5, 5))]
    for call in (
        lambda: tracker.track(tmp_path / "x.mp4", box, model="toy"),
        lambda: tracker.run(tmp_path / "x.mp4", box, tmp_path / "out", model="toy"),
    ):
        with pytest.raises(ValueError) as e:
            call()
        assert str(e.value).endswith("x.mp4' does not exist: check the path") and "source.path" not in str(e.value)


def test_import_tracker_run_keeps_the_function():
    """``tracker.run`` is the function whatever is imported first: ``import tracker.run``, a submodule of
    the spine's package, or ``from tracker.run import RunSpec`` (a fresh interpreter each)."""
    import subprocess
    import sys

    for first in ("import tracker.run", "import tracker.run.spec", "from tracker.run import RunSpec", "import tracker"):
        code = f"{first}\nimport tracker\nassert callable(tracker.run) and tracker.run.__module__ == 'tracker.api'\n"
        code += "import tracker.run.checks\nassert tracker.run.__module__ == 'tracker.api'\n"
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, (first, res.stderr)
