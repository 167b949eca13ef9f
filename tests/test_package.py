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
    """A fresh venv with the wheel and its dependencies; returns its bin/ folder."""
    tmp = tmp_path_factory.mktemp("wheel")
    shutil.rmtree(ROOT / "build", ignore_errors=True)  # setuptools would pack stale files left there
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp / "dist"), str(ROOT)], check=True)
    wheel = next((tmp / "dist").glob("sam2_tracker-*.whl"))
    subprocess.run([sys.executable, "-m", "venv", str(tmp / "venv")], check=True)
    vpip = [str(tmp / "venv" / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*vpip, "install", str(wheel)], check=True, timeout=900)
    # the two manual steps the README gives for a wheel install
    subprocess.run([*vpip, "install", os.environ.get("TORCH_SPEC", "torch==2.13.0"), "setuptools", "wheel"], check=True)
    env = {**os.environ, "SAM2_BUILD_CUDA": "0"}
    subprocess.run([*vpip, "install", "--no-deps", "--no-build-isolation", "sam2==1.1.0"], check=True, env=env)
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


def test_installed_cli_demo_outside_the_checkout(installed, tmp_path):
    res = subprocess.run(
        [str(installed / "tracker"), "experiment=demo", "output_dir=out", "progress=false"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert json.loads((tmp_path / "out" / "demo_score.json").read_text())["dataset"]["J&F-Mean"] >= 0.9
    res = subprocess.run([str(installed / "tracker"), "--help"], capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode == 0 and "model:" in res.stdout, res.stderr[-2000:]


def test_installed_python_api_tracks_a_moving_object(installed, tmp_path):
    res = subprocess.run(
        [str(installed / "python"), "-c", API_CHECK], capture_output=True, text=True, cwd=tmp_path, timeout=600
    )
    assert res.returncode == 0, res.stderr[-3000:]
    result = json.loads(res.stdout.strip().splitlines()[-1])
    assert result["frames"] == 24 and result["mean_iou"] >= 0.7, result
