"""The toy checkpoint shipped inside the package tracks: end to end on freshly generated synthetic sequences."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tracker.engine.sam import resolve_checkpoint
from tracker.experiments.synthetic import write_dataset

SHIPPED = "pkg://tracker/weights/toy.pt"
FRESH_SEED = 4242  # never used for training or validation (see tracker/weights/MODEL_CARD.md)
# Above the 0.75: the shipped model scores 0.986 on these 3 sequences (0.973 on the 20-sequence
# held-out set, tracker/weights/MODEL_CARD.md); with SAM 2's eval-only multimask fallback back on, the
# previous weights scored 0.868 here, so this also catches that trap. Random weights score 0.05.
SHIPPED_MIN_JF = 0.9


@pytest.fixture(scope="module")
def fresh(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fresh")
    write_dataset(root, sequences=3, seed=FRESH_SEED, frames=24)
    return root


def _score(root: Path, out: Path, *overrides: str) -> float:
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "tracker.apps.cli",
            "model=toy",
            "dataset=davis",
            f"dataset.root={root}",
            f"output_dir={out}",
            "progress=false",
            *overrides,
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    return json.loads((out / "results.json").read_text())["dataset"]["J&F-Mean"]


def test_shipped_checkpoint_is_small_and_loads_safely():
    path = resolve_checkpoint(SHIPPED)
    assert path.is_file() and path.stat().st_size <= 10 * 1024 * 1024
    blob = torch.load(path, map_location="cpu", weights_only=True)
    assert set(blob) == {"model"}
    assert (path.parent / "MODEL_CARD.md").is_file()


def test_shipped_toy_model_tracks_fresh_sequences(fresh, tmp_path):
    assert _score(fresh, tmp_path / "toy") >= SHIPPED_MIN_JF


def test_random_toy_weights_do_not(fresh, tmp_path):
    # The same run with untrained weights: what the threshold above tells apart from tracking.
    assert _score(fresh, tmp_path / "random", "model.checkpoint=null", "model.random_weights=true") < 0.3
