"""Checks of a resolved run config (a plain nested dict), before any file is decoded or model built.
Each failure names the key, the bad value and the fix. No Hydra here: the CLI hands in plain values."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import fields
from typing import Any

from .. import settings as value
from ..masks import PNG_MAX_ID
from ..records import FrameRange
from ..settings import shown


class ConfigError(ValueError):
    """A config value the run cannot use."""


def _get(cfg: Mapping[str, Any], key: str) -> Any:
    node: Any = cfg
    for part in key.split("."):
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    return node


def _checked(check: Any, cfg: Mapping[str, Any], key: str, *args: Any, **kwargs: Any) -> Any:
    try:
        return check(key, _get(cfg, key), *args, **kwargs)
    except ValueError as e:
        raise ConfigError(str(e)) from None


def integer(cfg: Mapping[str, Any], key: str, lo: int, hi: int | None = None, example: int | None = None) -> int:
    return _checked(value.integer, cfg, key, lo, hi, example)


def number(cfg: Mapping[str, Any], key: str, lo: float, hi: float, open_lo: bool = False) -> float:
    return _checked(value.number, cfg, key, lo, hi, open_lo)


def boolean(cfg: Mapping[str, Any], key: str) -> bool:
    return _checked(value.boolean, cfg, key)


def choice(cfg: Mapping[str, Any], key: str, options: Sequence[str]) -> str:
    return _checked(value.choice, cfg, key, options)


def text_or_null(cfg: Mapping[str, Any], key: str) -> str | None:
    return _checked(value.text_or_null, cfg, key)


def threads(cfg: Mapping[str, Any], key: str = "threads") -> int | str:
    v = _get(cfg, key)
    if v == "auto":
        return v
    return integer(cfg, key, 1, 1024, example=1)


def image_size(cfg: Mapping[str, Any], key: str = "model.image_size") -> int:
    v = integer(cfg, key, 32, 4096, example=1024)
    if v % 32:
        lo, hi = max(32, v // 32 * 32), v // 32 * 32 + 32
        raise ConfigError(f"{key}={v} does not fit SAM 2 (its feature maps need a multiple of 32): use {lo} or {hi}")
    return v


def device(cfg: Mapping[str, Any], key: str = "model.device") -> str:
    """``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``, and only one this machine has."""
    import torch

    v = _get(cfg, key)
    if v == "auto":
        return v
    try:
        dev = torch.device(v) if isinstance(v, str) else None
    except RuntimeError:
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"{key}={shown(v)} is not a device: use auto, cpu, cuda, cuda:N or mps")
    if dev.type == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0 or (dev.index or 0) >= n:
            have = f"{n} CUDA device(s)" if n else f"no CUDA device (torch {torch.__version__})"
            raise ConfigError(f"{key}={v} is not available: this machine has {have}; use {key}=auto or cpu")
    if dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ConfigError(f"{key}={v} is not available on this machine: use {key}=auto or cpu")
    return v


def model(cfg: Mapping[str, Any]) -> None:
    """The ``model.*`` keys every command uses."""
    image_size(cfg)
    device(cfg)
    boolean(cfg, "model.compile")
    if _get(cfg, "model.tf32") is not None:  # (a hand-made model node without it: on)
        boolean(cfg, "model.tf32")
    if _get(cfg, "model.kv_cache") is not None:
        boolean(cfg, "model.kv_cache")
    if _get(cfg, "model.dtype") is not None:
        choice(cfg, "model.dtype", ("float32", "bfloat16", "float16"))
    integer(cfg, "model.fill_hole_area", 0, 1 << 20, example=8)
    integer(cfg, "model.memory_stride", 1, 1000, example=1)
    text_or_null(cfg, "model.checkpoint")
    if _get(cfg, "model.random_weights") is not None:
        boolean(cfg, "model.random_weights")


def weights(name: str, checkpoint: str | None, random_weights: bool) -> str | None:
    """The checkpoint a model runs with: ``model.checkpoint``, else the one ``tracker-download`` cached for
    ``model=NAME``; with neither, random weights (None) only when ``model.random_weights=true`` asks for
    them."""
    from ..weights_cache import WEIGHTS, cache_dir, cached, download_command

    if checkpoint is not None:
        return checkpoint
    if random_weights:
        return None
    cached = cached(name)
    if cached is not None:
        return str(cached)
    if name in WEIGHTS:
        raise ConfigError(
            f"model={name} has no weights here: download them once with `{download_command(name)}` "
            f"(SHA-256 checked, into {cache_dir()}), or pass model.checkpoint=PATH "
            "(model.random_weights=true runs untrained weights: noise, for tests and benchmarks)"
        )
    raise ConfigError(
        f"model={name} has no checkpoint: pass model.checkpoint=PATH "
        "(model.random_weights=true runs untrained weights: noise, for tests and benchmarks)"
    )


def plugins(cfg: Mapping[str, Any]) -> None:
    """Import the ``plugins`` first: the sinks, source kinds and policies they register are checked below."""
    from .plugins import load_plugins

    try:
        load_plugins(_get(cfg, "plugins"), _get(cfg, "output_dir") or None)
    except ValueError as e:
        raise ConfigError(str(e)) from None


def common(cfg: Mapping[str, Any]) -> None:
    """Keys shared by ``tracker`` runs of a video and of a dataset (the plug-ins first)."""
    plugins(cfg)
    model(cfg)
    integer(cfg, "seed", 0, 2**32 - 1, example=0)
    boolean(cfg, "progress")
    boolean(cfg, "debug")
    threads(cfg)
    text_or_null(cfg, "output_dir")
    integer(cfg, "propagation.reverse_chunk", 1, 4096, example=16)
    integer(cfg, "propagation.prefetch", 0, 1024, example=8)


RANGE_KEYS = tuple(f.name for f in fields(FrameRange))  # source.start, .stop, .stride, .max_frames


def frame_range(source: Mapping[str, Any]) -> FrameRange:
    """``source.start/stop/stride/max_frames`` as the record that checks them."""
    try:
        return value.record_from(FrameRange, source)
    except ValueError as e:
        raise ConfigError(str(e)) from None


def sink_settings(sink: Mapping[str, Any]) -> dict[str, Any]:
    """Each sink's own settings (io.sinks: the sink checks its keys), its error as a ConfigError."""
    from ..io.sinks import sink_settings as made

    try:
        return made(sink)
    except ValueError as e:
        raise ConfigError(str(e)) from None


def video_run(cfg: Mapping[str, Any]) -> None:
    """Everything a run over one video reads, besides the prompts file's content."""
    common(cfg)
    from ..io.source import SOURCES, source_settings

    kind = choice(cfg, "source.kind", tuple(SOURCES))
    text_or_null(cfg, "source.path")
    choice(cfg, "mode", ("auto", "file", "online"))
    boolean(cfg, "resume")
    integer(cfg, "resume_every", 0, 2**31 - 1, example=100)
    boolean(cfg, "live.realtime")
    number(cfg, "live.status_every_s", 0.1, 3600)
    try:  # the kind's own keys, checked by its settings record (io/source.py)
        source_settings(kind, _get(cfg, "source") or {})
    except ValueError as e:
        raise ConfigError(str(e)) from None
    frame_range(_get(cfg, "source") or {})
    from ..io.sinks import SINKS

    sink = _get(cfg, "sink") or {}
    owned = set(SINKS) | {f.name for kind in SINKS.values() if kind.settings for f in fields(kind.settings)}
    for key in sink:  # (a plug-in's sink without a switch in this config is off)
        if key not in owned:
            raise ConfigError(f"sink.{key} is no sink's switch or setting: use one of {', '.join(sorted(owned))}")
        if key in SINKS:
            boolean(cfg, f"sink.{key}")
    sink_settings(sink)
    text_or_null(cfg, "prompts.path")
    discovery(cfg)
    limits(cfg)
    kind = choice(cfg, "prompts.kind", ("file", "detections", "auto"))
    if kind == "auto":
        frames = _get(cfg, "prompts.frames")
        if frames is None:  # the run's first frame
            return
        ok = isinstance(frames, list) and frames
        if not ok or any(not isinstance(f, int) or isinstance(f, bool) or f < 0 for f in frames):
            raise ConfigError(
                f"prompts.frames={shown(frames)} is not usable: give frame indices from 0 (e.g. prompts.frames=[0])"
            )
        return
    if kind == "detections":
        choice(cfg, "prompts.format", ("mot", "coco", "yolo"))
        number(cfg, "prompts.min_score", -1e9, 1e9)
        number(cfg, "prompts.reprompt_iou", 0.0, 1.0)
        number(cfg, "prompts.match_iou", 0.0, 1.0, open_lo=True)
        return
    integer(cfg, "prompts.frame", 0, 2**31 - 1, example=0)
    integer(cfg, "prompts.id", 1, PNG_MAX_ID if _get(cfg, "sink.png") else 2**31 - 1, example=1)
    label = _get(cfg, "prompts.label")
    if label is not None and not isinstance(label, (str, int, float)):
        raise ConfigError(f"prompts.label={shown(label)} is not usable: give a name")


def limits(cfg: Mapping[str, Any]) -> None:
    integer(cfg, "limits.max_objects", 1, 1 << 20, example=256)
    integer(cfg, "limits.max_boxes_per_frame", 1, 1 << 20, example=256)
    number(cfg, "limits.max_detections_mb", 0.0, 1 << 20, open_lo=True)


def discovery(cfg: Mapping[str, Any]) -> None:
    """``discover.*`` and ``generator.*`` (tracker/discovery/)."""
    integer(cfg, "discover.every", 0, 2**31 - 1, example=4)
    number(cfg, "discover.new_iou", 0.0, 1.0, open_lo=True)
    number(cfg, "discover.max_covered", 0.0, 1.0)
    integer(cfg, "discover.confirm", 0, 10_000, example=15)
    integer(cfg, "discover.max_objects", 1, 2**31 - 1, example=1000)
    integer(cfg, "generator.points_per_side", 1, 1024, example=32)
    integer(cfg, "generator.points_per_batch", 1, 65536, example=64)
    integer(cfg, "generator.points_per_prompt", 1, 16, example=1)
    number(cfg, "generator.cluster_radius", 0.0, 0.49)
    for key in ("pred_iou_thresh", "stability_score_thresh", "min_area"):
        number(cfg, f"generator.{key}", 0.0, 1.0)
    number(cfg, "generator.stability_score_offset", 0.0, 1e6)
    choice(cfg, "generator.nms", ("box", "mask"))
    number(cfg, "generator.nms_iou", 0.0, 1.0, open_lo=True)
    lo = number(cfg, "generator.min_area", 0.0, 1.0)
    if number(cfg, "generator.max_area", 0.0, 1.0, open_lo=True) <= lo:
        raise ConfigError(
            f"generator.max_area={_get(cfg, 'generator.max_area')} is not above generator.min_area={lo}: raise it"
        )
    integer(cfg, "generator.max_masks", 1, 100_000, example=100)


def dataset_run(cfg: Mapping[str, Any]) -> None:
    common(cfg)
    choice(cfg, "dataset.layout", ("davis", "sav"))
    choice(cfg, "dataset.prompt", ("mask", "box", "click1", "click3"))
    n = integer(cfg, "dataset.num_shards", 1, 1 << 20, example=1)
    integer(cfg, "dataset.shard", 0, n - 1, example=0)
    boolean(cfg, "dataset.annotated_video")
