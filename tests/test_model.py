"""Model building from our configs, and checkpoints that the tests write themselves."""

from __future__ import annotations

import gc
import os

import pytest
import torch
from helpers import CONFIGS, compose_config, model_cfg
from omegaconf import OmegaConf

from tracker.engine.sam import CheckpointError, build_model, load_checkpoint

MODELS = [f"sam2.1_hiera_{s}" for s in ("t", "s", "b+", "l")] + [f"sam2_hiera_{s}" for s in ("t", "s", "b+", "l")]


@pytest.mark.parametrize("name", MODELS)
def test_every_model_config_composes_and_builds(name):
    cfg = compose_config([f"model={name}", "model.image_size=128"])
    arch = OmegaConf.to_container(cfg.model.arch.model, resolve=True)
    assert arch["image_size"] == 128 and arch["memory_temporal_stride_for_eval"] == 1
    # the flags upstream's build_sam2_video_predictor sets
    assert arch["binarize_mask_from_pts_for_mem_enc"] is True
    assert arch["sam_mask_decoder_extra_args"]["dynamic_multimask_via_stability"] is True
    model = build_model(arch, seed=0)
    assert model.image_size == 128 and model.num_maskmem == 7 and model.max_obj_ptrs == 16
    del model
    gc.collect()


def test_every_config_group_composes():
    for override in ["source=pyav", "source=decord", "source=opencv", "source=images", "experiment=demo"]:
        cfg = compose_config([override])
        assert cfg.source.kind in {"pyav", "decord", "opencv", "images"}
    demo = compose_config(["experiment=demo"]).model
    assert demo.name == "toy" and demo.image_size == 256 and demo.checkpoint == "pkg://tracker/weights/toy.pt"


def test_multimask_fallback_follows_multimask_tracking():
    # SAM 2's eval-only fallback onto multimask outputs: on for its own configs (they track with multimask
    # outputs, as build_sam2_video_predictor sets it), off for a model that tracks with one mask
    for name, tracks_multimask in [("sam2.1_hiera_t", True), ("sam2_hiera_l", True), ("toy", False)]:
        arch = model_cfg(128, [f"model={name}"])["arch"]["model"]
        assert arch["multimask_output_for_tracking"] is tracks_multimask
        assert arch["sam_mask_decoder_extra_args"]["dynamic_multimask_via_stability"] is tracks_multimask, name


@pytest.mark.parametrize("name", sorted(p.stem for p in (CONFIGS / "train").glob("*.yaml")))
def test_every_train_config_composes(name):
    from tracker.experiments.train import TrainSettings

    cfg = compose_config([f"train={name}", "train.data_root=d"], name="train")
    s = TrainSettings(out_dir="o", **OmegaConf.to_container(cfg.train))  # type: ignore[arg-type]
    assert s.steps > 0 and 0 <= s.prob_mask_prompt + s.prob_box_prompt <= 1


def test_checkpoint_round_trip(tmp_path):
    arch = model_cfg(128)["arch"]["model"]
    a = build_model(arch, seed=1)
    path = tmp_path / "ckpt.pt"
    torch.save({"model": a.net.state_dict()}, path)
    b = build_model(arch, seed=2, checkpoint=str(path))
    for (k, va), vb in zip(a.net.state_dict().items(), b.net.state_dict().values(), strict=True):
        assert torch.equal(va, vb), k
    # a model with other random weights really differs, so the check above means something
    c = build_model(arch, seed=2)
    assert not torch.equal(a.net.no_mem_embed, c.net.no_mem_embed)


def test_bad_checkpoints(tmp_path):
    arch = model_cfg(128)["arch"]["model"]
    model = build_model(arch, seed=0)
    sd = model.net.state_dict()
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(model.net, tmp_path / "missing.pt")
    (tmp_path / "corrupt.pt").write_bytes(b"\x00garbage")
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_checkpoint(model.net, tmp_path / "corrupt.pt")
    torch.save({"state": sd}, tmp_path / "nokey.pt")
    with pytest.raises(CheckpointError, match="has no 'model' state dict"):
        load_checkpoint(model.net, tmp_path / "nokey.pt")
    partial = dict(sd)
    partial.pop("no_mem_embed")
    torch.save({"model": partial}, tmp_path / "partial.pt")
    with pytest.raises(CheckpointError, match="1 missing"):
        load_checkpoint(model.net, tmp_path / "partial.pt")
    other = build_model(model_cfg(128, ["model=sam2.1_hiera_s"])["arch"]["model"], seed=0)
    torch.save({"model": other.net.state_dict()}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="does not fit the model config"):
        load_checkpoint(model.net, tmp_path / "other.pt")
    # weights_only=True: a pickle that would run code is refused
    torch.save({"model": sd, "x": object()}, tmp_path / "unsafe.pt")
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_checkpoint(model.net, tmp_path / "unsafe.pt")


def test_tf32_is_set_for_sams_calls_and_the_callers_settings_come_back():
    """model.tf32 (CUDA, float32): TF32 matmuls and convolutions while SAM 2 runs, through torch's new
    precision API only (torch refuses to read flags set through both); the caller's own after."""
    from tracker.engine.sam import _fp32_precision

    matmul, conv = torch.backends.cuda.matmul, torch.backends.cudnn.conv
    before = matmul.fp32_precision, conv.fp32_precision
    with _fp32_precision("tf32"):
        assert (matmul.fp32_precision, conv.fp32_precision) == ("tf32", "tf32")
    assert (matmul.fp32_precision, conv.fp32_precision) == before
    with pytest.raises(RuntimeError), _fp32_precision("tf32"):
        raise RuntimeError("a failure inside SAM 2's call")
    assert (matmul.fp32_precision, conv.fp32_precision) == before


def test_tf32_applies_to_cuda_float32_only():
    """On the CPU (and with bfloat16 anywhere) model.tf32 changes nothing: float32 stays exact."""
    from tracker.api import load_model

    cpu = load_model("toy")
    assert cpu.tf32 is False and type(cpu.autocast()).__name__ == "nullcontext"
    arch = model_cfg(128, ["model=toy"])["arch"]["model"]
    assert build_model(arch, tf32=True, device="cpu").tf32 is False


def test_compile_on_a_cpu_compiles_the_image_encoder_into_trackers_own_cache(tmp_path, monkeypatch):
    """model.compile=true on a CPU: the image encoder alone is compiled (memory attention ran slower compiled
    there), into $TRACKER_HOME/torchinductor (not the shared /tmp), and the model reports torch.compile's
    time. (A compiled run end to end, 80 s of compiling: ``bench_objects.py --cases compiled``, whose masks
    agree with eager's to six places.)"""
    from tracker.engine.sam import compile_seconds

    monkeypatch.setenv("TRACKER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", "")  # so that the one compile sets is undone after
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR")
    eager = build_model(model_cfg(64)["arch"]["model"], seed=0)
    assert eager.compiled == () and eager.compile_seconds == 0.0
    model = build_model(model_cfg(64)["arch"]["model"], seed=0, compile=True)
    assert model.compiled == ("image_encoder",)
    assert model._attend.__func__ is type(model)._attend  # memory attention stays eager
    assert model.net.image_encoder.forward is not type(model.net.image_encoder).forward
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "home" / "torchinductor")
    before = compile_seconds()
    torch.compile(lambda x: x * 2 + 1, dynamic=False)(torch.ones(3))  # a small compile, into that cache
    assert model.compile_seconds > before >= 0 and any((tmp_path / "home" / "torchinductor").rglob("*"))
