"""The one model builder: every door (CLI, studio, Python, datasets, training) builds SAM 2 here."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

from .spec import ModelSpec

log = logging.getLogger("tracker")


def build(m: ModelSpec, *, checkpoint: bool = True, warn: str = "log") -> Any:
    """A :class:`tracker.engine.sam.SamModel` for ``m``. ``checkpoint=False``: random weights whatever
    ``m.checkpoint`` says (training loads its own). ``warn``: how missing weights are said — ``log`` (a
    run's log), ``python`` (a ``UserWarning`` for Python callers) or ``none``."""
    from ..engine.sam import build_model

    ckpt = m.checkpoint if checkpoint else None
    if ckpt is None and checkpoint and warn == "log":
        log.warning("model.random_weights=true: untrained weights, the masks are noise")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # build_sam2's own warning names a config key
        model = build_model(
            dict(m.arch),
            checkpoint=ckpt,
            device=m.device,
            compile=m.compile,
            dtype=m.dtype,
            tf32=m.tf32,
            kv_cache=m.kv_cache,
            fill_hole_area=m.fill_hole_area,
            seed=m.seed,
        )
    model.auto_points = m.auto_points
    model.name = m.name
    if ckpt is None and checkpoint and warn == "python":
        warnings.warn(
            f"model {m.name!r} runs untrained weights (random_weights=True): the masks are noise",
            stacklevel=3,
        )
    return model


def checkpoint_file(m: ModelSpec) -> Path | None:
    """model.checkpoint's file, checked before any frame is decoded (None: random weights)."""
    if not m.checkpoint:
        return None
    from ..engine.sam import existing_checkpoint

    return existing_checkpoint(m.checkpoint)


def device_name(model: Any) -> str:
    import torch

    return str(model.device) if model.device.type != "cuda" else torch.cuda.get_device_name()


def toy_meets_real_video(model: str | Any, source: str | Path | None) -> str | None:
    """The warning for the shipped toy model (``model``: its name or the model) on a video this package did
    not make (it has only seen flat synthetic shapes: on real footage its masks are specks with full
    scores), or None."""
    from ..experiments.demo import is_synthetic_clip

    name = model if isinstance(model, str) else getattr(model, "name", None)
    if name != "toy" or source is None or not Path(source).exists() or is_synthetic_clip(source):
        return None
    return (
        f"model=toy on {Path(source).name!r}: the toy model has only seen this package's synthetic clips "
        "(flat shapes), so on real footage its masks are noise; use a SAM 2 model "
        "(tracker-download sam2.1_hiera_t, then model=sam2.1_hiera_t)"
    )


def memory_sizes(m: ModelSpec) -> dict[str, tuple[int, ...]]:
    """The sizes SAM 2 gives what it remembers, per object, from the model's config (no model built):
    ``obj_ptr`` (C,) = the memory attention's width; ``maskmem`` (C_mem, S/16, S/16) = the memory
    encoder's output channels over the image encoder's grid."""
    a = m.arch
    side = int(a["image_size"]) // int(a.get("backbone_stride", 16))
    return {
        "obj_ptr": (int(a["memory_attention"]["d_model"]),),
        "maskmem": (int(a["memory_encoder"]["out_dim"]), side, side),
    }
