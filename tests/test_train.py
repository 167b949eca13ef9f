"""tracker-train: gradients flow through the memory path (overfit), and resuming continues exactly."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tracker.experiments.synthetic import write_dataset


def _train(out: Path, data: Path, *overrides: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "from tracker.apps.cli import train_main; train_main()",
            f"train.data_root={data}",
            f"output_dir={out}",
            "progress=false",
            "model.checkpoint=null",  # from scratch unless a test says otherwise
            *overrides,
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )


@pytest.fixture(scope="module")
def one_clip(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("clip")
    write_dataset(root, sequences=1, seed=5, frames=3, width=96, height=72, objects=(2, 2), split="train")
    return root


def _history(out: Path) -> list[dict]:
    with open(out / "history.csv") as f:
        return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(f)]


def test_overfit_one_clip_halves_the_loss(one_clip, tmp_path):
    res = _train(tmp_path, one_clip, "train=overfit", "train.steps=40")
    assert res.returncode == 0, res.stderr[-3000:]
    losses = [h["loss"] for h in _history(tmp_path) if "loss" in h]
    assert losses[-1] <= 0.5 * losses[0], losses
    assert (tmp_path / "curve.png").read_bytes()[:4] == b"\x89PNG"
    assert "dynamic_multimask_via_stability" not in res.stdout + res.stderr  # the toy config turns the fallback off
    # the checkpoint is Meta's format: our loader (strict keys, weights_only) takes it
    from helpers import model_cfg

    from tracker.engine.sam import build_model

    build_model(model_cfg(128, ["model=toy"])["arch"]["model"], checkpoint=str(tmp_path / "last.pt"))
    # fine-tuning starts from a checkpoint's weights (not its step): the first loss is already low
    tuned = tmp_path / "tuned"
    res = _train(
        tuned,
        one_clip,
        "train=overfit",
        "train.steps=5",
        f"model.checkpoint={tmp_path / 'last.pt'}",
        "model.arch.model.sam_mask_decoder_extra_args.dynamic_multimask_via_stability=true",
    )
    assert res.returncode == 0, res.stderr[-3000:]
    # single-mask tracking with upstream's eval-only multimask fallback: the trainer says so
    assert "dynamic_multimask_via_stability=true" in res.stdout + res.stderr
    assert [h["loss"] for h in _history(tuned) if "loss" in h][0] <= 0.5 * losses[0]


def test_resume_continues_step_and_optimizer(one_clip, tmp_path):
    # stop_after: the first run stops at step 10 but on the learning-rate schedule of a 20-step run
    # keep_every (not a multiple of save_every): ckpt_5.pt and ckpt_10.pt stay after the resumed run
    # overwrites last.pt
    res = _train(
        tmp_path,
        one_clip,
        "train=overfit",
        "train.steps=20",
        "train.stop_after=10",
        "train.save_every=10",
        "train.keep_every=5",
    )
    assert res.returncode == 0, res.stderr[-3000:]
    first = torch.load(tmp_path / "last.pt", weights_only=True)
    assert first["step"] == 10
    from tracker.experiments.train import TrainSettings, _lr_at

    schedule = TrainSettings(data_root="d", out_dir="o", steps=20, lr=2e-3, warmup=5, min_lr_ratio=0.5)  # overfit.yaml
    assert _history(tmp_path)[-1]["lr"] == pytest.approx(_lr_at(10, schedule))  # mid-schedule, not its end
    res = _train(tmp_path, one_clip, "train=overfit", "train.steps=20", "train.save_every=10")
    assert res.returncode == 0, res.stderr[-3000:]
    assert "resumed from" in res.stdout + res.stderr
    blob = torch.load(tmp_path / "last.pt", weights_only=True)
    assert blob["step"] == 20
    steps = [int(h["step"]) for h in _history(tmp_path)]
    assert steps == [5, 10, 15, 20]
    adam_steps = {int(s["step"]) for s in blob["optimizer"]["state"].values()}
    assert adam_steps == {20}, adam_steps
    assert [torch.load(tmp_path / f"ckpt_{k}.pt", weights_only=True)["step"] for k in (5, 10)] == [5, 10]
    assert not (tmp_path / "ckpt_20.pt").exists()  # the resumed run was not asked to keep any
