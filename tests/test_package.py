"""The wheel, as a user installs it: built from this checkout, installed with its dependencies into a fresh
venv (plus the two manual steps: torch, then sam2 without its deps), and run from a folder outside the
checkout, through the CLI and the Python API."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

API_CHECK = r"""
import json
from pathlib import Path

import numpy as np
import tracker
from tracker.experiments.demo import demo_sequence, write_demo_clip

assert "site-packages" in tracker.__file__, tracker.__file__
clip = write_demo_clip(Path("clip.mp4"), 24, 320, 240, seed=2)
seq = demo_sequence(24, 320, 240, 2)
first = seq.frame(0)[1]
objects = []
for oid in (1, 2):
    ys, xs = np.nonzero(first == oid)
    box = [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]
    objects.append({"id": oid, "prompts": [{"frame": 0, "box": box}]})
model = tracker.load_model("toy")
ious = []
for frame, masks in tracker.track(clip, {"objects": objects}, model=model):
    truth = seq.frame(frame.index)[1]
    for oid in masks.object_ids:
        m, g = masks.mask_of(oid), truth == oid
        ious.append((m & g).sum() / max((m | g).sum(), 1))
print(json.dumps({"frames": frame.index + 1, "mean_iou": float(np.mean(ious))}))
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The README's wheel steps, run as written in a folder outside the checkout, with two substitutions
    this machine needs: the torch line installs the same CPU build from the machine's own wheels (no
    internet here), and ``sam2-tracker`` is the wheel built from this checkout (it is on no index).
    Returns the venv's bin/ folder."""
    from test_readme import block

    tmp = tmp_path_factory.mktemp("wheel")
    shutil.rmtree(ROOT / "build", ignore_errors=True)  # setuptools would pack stale files left there
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp / "dist"), str(ROOT)], check=True)
    wheel = next((tmp / "dist").glob("sam2_tracker-*.whl"))
    steps = block("python -m venv venv")
    torch_line = "pip install torch --index-url https://download.pytorch.org/whl/cpu"
    assert torch_line in steps and "pip install 'sam2-tracker[studio,supervision]'" in steps
    steps = steps.replace(torch_line, f"pip install {os.environ.get('TORCH_SPEC', 'torch==2.13.0')}")
    steps = steps.replace("'sam2-tracker[", f"'{wheel}[")
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env.update(PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_QUIET="1")
    res = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", steps], cwd=tmp, env=env, capture_output=True, text=True, timeout=900
    )
    assert res.returncode == 0, f"{steps}\n{res.stderr[-3000:]}"
    (demo,) = (tmp / "outputs").glob("*/*/demo_score.json")  # the steps end with the demo
    assert json.loads(demo.read_text())["dataset"]["J&F-Mean"] >= 0.9
    return tmp / "venv" / "bin"


def test_wheel_carries_configs_and_weights(installed):
    names = subprocess.run(
        [str(installed / "python"), "-c", "import tracker.paths as p; print(p.config_dir())"],
        capture_output=True,
        text=True,
        cwd=installed,
    )
    assert names.returncode == 0, names.stderr
    configs = Path(names.stdout.strip())
    assert "site-packages" in str(configs) and (configs / "model" / "toy.yaml").is_file()
    assert (configs.parent / "weights" / "toy.pt").is_file()
    # the studio's page and its config (the page is served from the package, never from the checkout)
    assert (configs / "studio.yaml").is_file() and (configs / "hydra" / "job_logging" / "studio.yaml").is_file()
    static = {p.name for p in (configs.parent / "studio" / "static").iterdir()}
    assert static >= {"index.html", "studio.js", "studio.css"}


def test_installed_help_and_the_python_quick_start(installed, tmp_path):
    """The README's Python block in the wheel's venv, from another folder, with SAM 2.1 tiny in the cache
    (untrained weights this test writes: what tracker-download would have put there)."""
    import torch
    from helpers import model_cfg, moving_shapes, write_video
    from test_readme import block

    from tracker.engine.sam import build_model

    res = subprocess.run([str(installed / "tracker"), "--help"], capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode == 0 and "model:" in res.stdout, res.stderr[-2000:]
    cache = tmp_path / "home" / "checkpoints"
    cache.mkdir(parents=True)
    net = build_model(model_cfg(1024, ["model=sam2.1_hiera_t"])["arch"]["model"], seed=3)
    torch.save({"model": net.net.state_dict()}, cache / "sam2.1_hiera_tiny.pt")
    write_video(tmp_path / "my_video.mp4", moving_shapes(2, 320, 240))
    env = {**os.environ, "TRACKER_HOME": str(tmp_path / "home")}
    res = subprocess.run(
        [str(installed / "python"), "-c", block("import tracker")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert [r.split()[0] for r in res.stdout.strip().splitlines()] == ["0", "1"]


def test_installed_python_api_tracks_a_moving_object(installed, tmp_path):
    res = subprocess.run(
        [str(installed / "python"), "-c", API_CHECK], capture_output=True, text=True, cwd=tmp_path, timeout=600
    )
    assert res.returncode == 0, res.stderr[-3000:]
    result = json.loads(res.stdout.strip().splitlines()[-1])
    assert result["frames"] == 24 and result["mean_iou"] >= 0.7, result


def test_import_beside_a_folder_called_tracker_gets_the_package(tmp_path):
    """Run from the folder that holds the clone (a folder named tracker), `import tracker` used to find that
    folder as an empty namespace package (module 'tracker' has no attribute 'track')."""
    (tmp_path / "tracker").mkdir()
    (tmp_path / "tracker" / "README.md").write_text("a clone, say\n")
    code = "import tracker; print(tracker.track.__module__)"
    res = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and res.stdout.strip() == "tracker.api", res.stderr
