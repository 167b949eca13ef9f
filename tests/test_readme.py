"""The README as a user reads it: short, and every fenced block run as it is written, in a folder of its own
(``my_video.mp4``, ``my_stream.ts``, ``detections.txt`` made there), with ``tracker-download`` fetching a
SAM 2.1 tiny checkpoint (untrained weights this test writes) from a server on 127.0.0.1. The set-up block's
demo is run by tests/test_demo_and_notebook.py and the wheel steps by tests/test_package.py; both read
them from here."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from helpers import WeightsServer, model_cfg, moving_shapes, write_video
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
BIN = Path(sys.executable).parent

# Each block, by its first line, and where it is run.
RUN_BY = {
    "bash scripts/install.sh && .venv/bin/tracker experiment=demo": "test_demo_and_notebook.py",
    "tracker-download sam2.1_hiera_t": "user",
    "objects:": "test_prompts_file_block",
    "import tracker": "test_python_block",
    "tracker-studio experiment=demo": "test_studio_block",
    "cat my_stream.ts": "test_live_block",
    "tracker experiment=demo output_dir=runs/demo_clip": "test_finding_and_detections_block",
    "python -m venv venv": "test_package.py",
}


def blocks() -> list[tuple[str, str]]:
    """(language, text) of every fenced block, in order."""
    return re.findall(r"^```(\w*)\n(.*?)^```", README.read_text(), flags=re.S | re.M)


def block(first_line: str) -> str:
    found = [text for _, text in blocks() if text.startswith(first_line)]
    assert len(found) == 1, f"the README has {len(found)} blocks starting {first_line!r}"
    return found[0]


def test_readme_is_short_and_every_block_is_run():
    text = README.read_text()
    lines = text.splitlines()
    assert len(lines) <= 250, len(lines)
    # what it is, a picture, then the two set-up commands
    assert lines[0] == "# tracker" and lines[2].startswith("Track objects")
    assert text.index("![") < text.index("## Set up") < text.index("```bash")
    heads = [x for x in lines if x.startswith("## ")]
    quick = ["## Set up", "## Real video in three steps", "## Python in five lines", "## The studio in one command"]
    assert heads[:4] == quick
    firsts = [t.splitlines()[0] for _, t in blocks()]
    for first in firsts:  # each block is one that a test runs
        assert sum(first.startswith(k) for k in RUN_BY) == 1, f"no test runs the README block {first!r}"
    assert len(firsts) == len(RUN_BY)
    for name in re.findall(r"\]\((docs/[^)]+)\)", text):  # links into docs/ resolve
        assert (ROOT / name).is_file(), name


def _serve_checkpoint(folder: Path) -> WeightsServer:
    import torch

    from tracker.engine.sam import build_model

    net = build_model(model_cfg(1024, ["model=sam2.1_hiera_t"])["arch"]["model"], seed=3)
    path = folder / "sam2.1_hiera_tiny.pt"
    torch.save({"model": net.net.state_dict()}, path)
    server = WeightsServer(path.read_bytes())
    path.unlink()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope="module")
def user(tmp_path_factory):
    """A user's folder after the README's real-video block ran there: (folder, environment)."""
    home = tmp_path_factory.mktemp("readme")
    folder = home / "work"
    folder.mkdir()
    write_video(folder / "my_video.mp4", moving_shapes(2, 320, 240))
    write_video(folder / "my_stream.ts", moving_shapes(2, 320, 240))
    server = _serve_checkpoint(home)
    env = {**os.environ, **server.env(), "TRACKER_HOME": str(home / "tracker-home")}
    env["PATH"] = f"{BIN}{os.pathsep}{env['PATH']}"
    env["TRACKER_SHA256_FILE"] = str(home / "no-pinned-sums")  # the published sum: the server's
    res = _bash(block("tracker-download sam2.1_hiera_t"), folder, env)
    assert "sam2.1_hiera_t:" in res.stdout and "SHA-256 checked" in res.stdout
    out = folder / "runs" / "my_video"
    record = json.loads((out / "run.json").read_text())
    assert record["checkpoint"] == str(home / "tracker-home" / "checkpoints" / "sam2.1_hiera_tiny.pt")
    assert record["frames"] == 2 and len(list((out / "masks").glob("*.png"))) == 2
    assert {"annotated.mp4", "masks.jsonl", "tracks.csv", "run.json"} <= set(res.stdout.split())
    yield folder, env
    server.shutdown()
    server.server_close()


def _bash(text: str, cwd: Path, env: dict, timeout: int = 600) -> subprocess.CompletedProcess:
    res = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", text], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert res.returncode == 0, f"{text}\n{res.stderr[-3000:]}"
    return res


def test_prompts_file_block(user):
    from tracker.io.prompts import load_prompts

    folder, _ = user
    (folder / "masks").mkdir(exist_ok=True)
    person = np.zeros((240, 320), dtype=np.uint8)
    person[60:200, 20:90] = 255
    Image.fromarray(person).save(folder / "masks" / "person.png")
    (folder / "prompts.yaml").write_text(block("objects:"))
    spec = load_prompts(folder / "prompts.yaml")
    assert spec.labels == {1: "car", 2: None}
    assert [(p.object_id, p.frame_index) for p in spec.prompts] == [(1, 0), (1, 2), (2, 1)]
    assert spec.prompts[2].mask.sum() == 140 * 70


def test_python_block(user):
    folder, env = user
    res = subprocess.run(
        [sys.executable, "-c", block("import tracker")], cwd=folder, env=env, capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr[-3000:]
    rows = res.stdout.strip().splitlines()
    assert [r.split()[0] for r in rows] == ["0", "1"] and "('car',)" in rows[0]


def test_live_block(user):
    folder, env = user
    _bash(block("cat my_stream.ts"), folder, env)
    record = json.loads((folder / "runs" / "live" / "run.json").read_text())
    assert record["state"] == "complete" and record["frames_tracked"] == 2


def test_finding_and_detections_block(user):
    folder, env = user
    rows = [f"{t + 1},7,100,80,160,160,1,-1,-1,-1" for t in range(2)]  # MOTChallenge: frames from 1
    (folder / "detections.txt").write_text("\n".join(rows) + "\n")
    _bash(block("tracker experiment=demo output_dir=runs/demo_clip"), folder, env)
    found = json.loads((folder / "runs" / "found" / "run.json").read_text())
    assert len(found["objects"]) >= 2  # the demo clip's two objects (and maybe more)
    boxes = json.loads((folder / "runs" / "from_boxes" / "run.json").read_text())
    assert list(boxes["objects"]) == ["7"] and (folder / "runs" / "from_boxes" / "tracks_mots.txt").is_file()


def test_studio_block(user):
    folder, env = user
    command = block("tracker-studio experiment=demo").split("#")[0].strip()
    proc = subprocess.Popen(
        ["bash", "-c", f"exec {command}"],
        cwd=folder,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        line = proc.stdout.readline()
        url = re.match(r"studio: (http://127\.0\.0\.1:\d+/\?token=\S+)$", line.strip())
        assert url, line
        for _ in range(100):
            try:
                with urllib.request.urlopen(url.group(1), timeout=5) as r:
                    assert r.status == 200 and b"<html" in r.read().lower()
                    break
            except OSError:
                time.sleep(0.1)
        else:
            raise AssertionError("the studio did not answer")
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
