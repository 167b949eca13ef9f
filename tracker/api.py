"""The Python API: a model by name, and tracking as an iterator. No Hydra for the caller.

import tracker
model = tracker.load_model("toy")                       # configs/model/<name>.yaml
for frame, masks in tracker.track("clip.mp4", "prompts.yaml", model=model):
    ...                                                 # frames in order; masks: tracker.FrameMasks
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from .io.prompts import TrackSpec, load_prompts, parse_prompts
from .paths import config_dir
from .records import Frame, FrameMasks, Prompt


def model_names() -> list[str]:
    """The names ``load_model`` takes: the files of configs/model/."""
    return sorted(p.stem for p in (config_dir() / "model").glob("*.yaml"))


def compose_config(overrides: Sequence[str] = (), name: str = "config"):
    """The package's config ``name`` composed with ``overrides`` (a DictConfig, unresolved). sam2 (or a
    running Hydra app) may hold Hydra's global state: this composes on a clean one and puts it back."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.initialize import get_gh_backup, restore_gh_from_backup

    backup = get_gh_backup()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(str(config_dir()), version_base="1.3"):
            return compose(name, overrides=list(overrides))
    finally:
        restore_gh_from_backup(backup)


def model_config(name: str = "toy", **overrides: Any) -> dict[str, Any]:
    """The resolved ``model:`` config of ``name`` as a plain dict; ``overrides`` are its keys
    (``image_size=512``, ``memory_stride=2``, ...), applied before interpolation."""
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    if name not in model_names():
        raise ValueError(f"model {name!r} is unknown: use one of {', '.join(model_names())}")
    args = [f"model={name}"] + [f"model.{k}={json.dumps(v)}" for k, v in overrides.items()]
    try:
        return OmegaConf.to_container(compose_config(args).model, resolve=True)  # type: ignore[return-value]
    except (HydraException, OmegaConfBaseException) as e:
        raise ValueError(f"model {name!r}: {' '.join(str(e).split())}") from None


def load_model(
    name: str = "toy",
    checkpoint: str | Path | None = None,
    *,
    device: str = "auto",
    image_size: int | None = None,
    compile: bool = False,
    **overrides: Any,
):
    """A :class:`tracker.engine.sam.SamModel` built from ``configs/model/<name>.yaml``.

    ``checkpoint``: a Meta-format ``.pt`` (None: the config's own, which for ``toy`` is the trained model
    shipped in the package and for SAM 2's configs is none: random weights, with a warning).
    ``overrides``: other ``model.*`` keys (``memory_stride``, ``fill_hole_area``, ...).
    """
    from .apps import config_checks
    from .engine.sam import build_model

    if image_size is not None:
        overrides["image_size"] = image_size
    m = model_config(name, **overrides)
    if checkpoint is not None:
        m["checkpoint"] = str(checkpoint)
    m["device"], m["compile"] = device, compile
    config_checks.model({"model": m})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # build_sam2's own warning names a config key
        model = build_model(
            m["arch"]["model"],
            checkpoint=m["checkpoint"],
            device=device,
            compile=compile,
            fill_hole_area=m["fill_hole_area"],
            seed=0,
        )
    model.auto_points = m["auto_points"]
    if m["checkpoint"] is None:
        warnings.warn(
            f"load_model({name!r}) has no checkpoint: RANDOM weights, the masks are noise "
            "(pass checkpoint=PATH, e.g. from scripts/download_checkpoints.sh)",
            stacklevel=2,
        )
    return model


def as_track_spec(prompts: str | Path | Mapping | TrackSpec | Sequence[Prompt]) -> TrackSpec:
    """Prompts as a prompts file's path, a dict in its schema, a TrackSpec, or a list of Prompt."""
    if isinstance(prompts, TrackSpec):
        return prompts
    if isinstance(prompts, (str, Path)):
        return load_prompts(prompts)
    if isinstance(prompts, Mapping):
        return parse_prompts(prompts)
    items = list(prompts)
    if not items or not all(isinstance(p, Prompt) for p in items):
        raise ValueError("prompts must be a prompts file path, a dict in its schema, or a non-empty list of Prompt")
    return TrackSpec(labels={p.object_id: None for p in items}, prompts=tuple(items))


def track(
    video: str | Path | Any,
    prompts: str | Path | Mapping | TrackSpec | Sequence[Prompt] | None,
    *,
    model: str | Any = "toy",
    backward: bool = True,
    source: str = "pyav",
    discover_every: int = 0,
    confirm: int = 15,
    generator: Mapping[str, Any] | None = None,
    **options: Any,
) -> Iterator[tuple[Frame, FrameMasks]]:
    """Track ``prompts`` through ``video``: ``(Frame, FrameMasks)`` for every frame, in frame order.

    ``video``: a path (opened with the ``source`` decoder: pyav, decord, opencv, images) or a source
    object (``info`` and ``frames(start, stop)``). ``prompts`` None: the objects are found on frame 0
    by SAM 2's automatic mask generator (``prompts=auto``). ``model``: a name for :func:`load_model`, or
    a loaded model. ``backward=False``: objects exist from their first prompt frame on (no backward pass).
    ``discover_every=K``: every K frames, objects that nothing tracked covers join with new ids, and are
    kept once present on ``confirm`` frames (frames come out that much later). ``generator``: keys of
    :class:`tracker.discovery.GeneratorSettings` (default: SAM 2's, with the model's points per prompt).
    ``options``: the propagator's ``reverse_chunk``, ``prefetch``, ``step_hook``.
    Everything is checked before this returns; frames are decoded as the iterator is consumed.
    """
    from .engine.propagation import Propagator
    from .io.source import open_source

    spec = as_track_spec(prompts) if prompts is not None else TrackSpec(labels={}, prompts=())
    src = open_source(source, video) if isinstance(video, (str, Path)) else video
    finds = prompts is None or discover_every > 0
    Propagator.check_prompts(spec.prompts, src.info, spec.object_ids, allow_empty=finds)
    net = load_model(model) if isinstance(model, str) else model
    discovery = None
    if finds:
        from .discovery import Discovery, DiscoverySettings, GeneratorSettings, MaskGenerator

        settings = GeneratorSettings(**{"points_per_prompt": net.auto_points, **(generator or {})})
        discovery = Discovery(
            DiscoverySettings(every=discover_every, confirm=confirm),
            (src.info.height, src.info.width),
            next_id=max(spec.object_ids, default=0) + 1,
            generator=MaskGenerator(net, settings),
            seed_frame=0 if prompts is None else None,
        )
    return Propagator(net, backward=backward, discovery=discovery, **options).run(src, spec.prompts, spec.object_ids)
