"""The Python API: a model by name, and tracking as an iterator. No Hydra for the caller.

import tracker
model = tracker.load_model("toy")                       # configs/model/<name>.yaml
for frame, masks in tracker.track("clip.mp4", "prompts.yaml", model=model):
    ...                                                 # frames in order; masks: tracker.FrameMasks
"""

from __future__ import annotations

import contextlib
import functools
import json
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from .io.prompts import PromptError, TrackSpec, load_prompts, parse_prompts
from .paths import config_dir as packaged_configs
from .records import Frame, FrameMasks, Prompt

if TYPE_CHECKING:  # torch, sam2 and Hydra load when a model or a config is made, not on import
    from omegaconf import DictConfig

    from .engine.sam import SamModel
    from .run import RunSpec

F = TypeVar("F", bound=Callable[..., Any])


def model_names() -> list[str]:
    """The names ``load_model`` takes: the files of configs/model/."""
    return sorted(p.stem for p in (packaged_configs() / "model").glob("*.yaml"))


def compose_config(
    overrides: Sequence[str] = (), name: str = "config", extra_dir: str | Path | None = None
) -> DictConfig:
    """The package's config ``name`` composed with ``overrides`` (a DictConfig, unresolved); ``extra_dir``:
    a folder of further configs (plug-ins' yaml), searched as the command's ``--config-dir`` is. sam2 (or a
    running Hydra app) may hold Hydra's global state: this composes on a clean one and puts it back."""
    import yaml
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.initialize import get_gh_backup, restore_gh_from_backup

    overrides = list(overrides)
    if extra_dir is not None:
        # An override replaces the config's own search path: it is repeated (sam2's model configs).
        own = yaml.safe_load((packaged_configs() / f"{name}.yaml").read_text())["hydra"]["searchpath"]
        paths = [*own, f"file://{Path(extra_dir).resolve()}"]
        overrides.insert(0, f"hydra.searchpath=[{','.join(paths)}]")
    backup = get_gh_backup()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(str(packaged_configs()), version_base="1.3"):
            return compose(name, overrides=overrides)
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
) -> SamModel:
    """A :class:`tracker.engine.sam.SamModel` built from ``configs/model/<name>.yaml``.

    ``checkpoint``: a Meta-format ``.pt`` (None: the config's own, which for ``toy`` is the trained model
    shipped in the package and for SAM 2's configs is none: random weights, with a warning).
    ``overrides``: other ``model.*`` keys (``memory_stride``, ``fill_hole_area``, ...).
    """
    from .run.model import build
    from .run.spec import model_spec

    _check_type("name", name, str, f"a model name: one of {', '.join(model_names())}")
    _check_type("checkpoint", checkpoint, (str, Path, type(None)), "a path to a .pt file, or None")
    _check_type("device", device, str, "auto, cpu, cuda, cuda:N or mps")
    _check_type("compile", compile, bool, "True or False")
    if image_size is not None:
        overrides["image_size"] = image_size
    m = model_config(name, **overrides)
    if checkpoint is not None:
        m["checkpoint"] = str(checkpoint)
    m["device"], m["compile"] = device, compile
    return build(model_spec({"model": m, "seed": 0}), warn="python")


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


def _check_type(name: str, value: Any, types: type | tuple[type, ...], what: str) -> None:
    if not isinstance(value, types):
        raise TypeError(f"{name} must be {what}: got {type(value).__name__} {value!r}"[:300])


def _check_count(name: str, value: Any, what: str) -> None:
    """An integer >= 0 (not a bool, not a float): the CLI's rule for its counts."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer >= 0 ({what}): got {type(value).__name__} {value!r}")
    if value < 0:
        raise ValueError(f"{name}={value} must be an integer >= 0 ({what})")


def _check_video(video: Any) -> None:
    if isinstance(video, (str, Path)):
        return
    if not (hasattr(video, "info") and callable(getattr(video, "frames", None))):
        raise TypeError(
            f"video must be a path (str or Path) or a source with .info and .frames() (tracker.open_source): "
            f"got {type(video).__name__}"
        )


# The checks speak the command's keys; a Python caller passed arguments. (Longest first.)
_PYTHON_WORDS = (
    (": check source.path", ": check the path"),
    ("source.path", "the video"),
    ("prompts.path", "the prompts file"),
)


def _python_worded(fn: F) -> F:
    """Errors of ``fn`` worded for Python callers: 'video 'x.mp4' does not exist: check the path', not
    '... check source.path' (the exception and its type are kept; only the text changes)."""

    @functools.wraps(fn)
    def worded(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ValueError as e:
            if e.args and isinstance(e.args[0], str):
                text = e.args[0]
                for cli, python in _PYTHON_WORDS:
                    text = text.replace(cli, python)
                e.args = (text, *e.args[1:])
            raise

    return worded  # type: ignore[return-value]


def _require_model(model: Any, door: str) -> None:
    """No silent default: the toy model on real footage draws noise with full scores."""
    if model is None:
        raise TypeError(
            f"{door}() needs model=: one of {', '.join(model_names())}, or a model from tracker.load_model() "
            f"(model='toy' is the shipped toy model, for this package's synthetic clips only; real footage "
            f"needs a SAM 2 model: tracker-download sam2.1_hiera_t)"
        )


def _warn_toy(model: Any, video: Any) -> None:
    from .run.model import toy_meets_real_video

    if isinstance(video, (str, Path)) and (warning := toy_meets_real_video(model, video)) is not None:
        warnings.warn(warning, UserWarning, stacklevel=4)  # the caller of track() or run() (past the wrapper)


def _check_model(model: Any) -> None:
    if isinstance(model, str):
        if model not in model_names():
            raise ValueError(f"model={model!r} is unknown: use one of {', '.join(model_names())}")
        return
    if not (callable(getattr(model, "track_many", None)) and callable(getattr(model, "image_features", None))):
        raise TypeError(
            f"model must be a name ({', '.join(model_names())}) or a model from tracker.load_model(): "
            f"got {type(model).__name__}"
        )


@_python_worded
def track(
    video: str | Path | Any,
    prompts: str | Path | Mapping | TrackSpec | Sequence[Prompt] | None,
    *,
    model: str | Any = None,
    backward: bool = True,
    source: str = "pyav",
    discover_every: int = 0,
    confirm: int = 15,
    generator: Mapping[str, Any] | None = None,
    memory: str | Any = "sam2",
    threads: int | str = "auto",
    start: int = 0,
    stop: int | None = None,
    stride: int = 1,
    max_frames: int | None = None,
    **options: Any,
) -> Iterator[tuple[Frame, FrameMasks]]:
    """Track ``prompts`` through ``video``: ``(Frame, FrameMasks)`` for every frame, in frame order.

    ``video``: a path (opened with the ``source`` decoder: pyav, decord, opencv, images) or a source
    object (``info`` and ``frames(start, stop)``). ``prompts`` None: the objects are found on the first
    frame read by SAM 2's automatic mask generator (``prompts=auto``). ``model``: a name for :func:`load_model`, or
    a loaded model. ``backward=False``: objects exist from their first prompt frame on (no backward pass).
    ``discover_every=K``: every K frames, objects that nothing tracked covers join with new ids, and are
    kept once present on ``confirm`` frames (frames come out that much later). ``generator``: keys of
    :class:`tracker.discovery.GeneratorSettings` (default: SAM 2's, with the model's points per prompt).
    ``memory``: the memory policy, a name of ``configs/memory/`` or a
    :class:`tracker.engine.memory.MemoryPolicy` (default ``sam2``: upstream SAM 2's own).
    ``threads``: torch's and the decoder's while the frames come (``auto``: the command's rule, the cores
    other processes leave idle; the process's own count is back once the loop ends).
    ``start``, ``stop``, ``stride``, ``max_frames``: the frames read (a quick trial, part of a long video),
    as ``source.start`` etc.: prompts and the frames yielded keep the video's frame numbers.
    ``options``: the propagator's ``reverse_chunk``, ``prefetch``, ``step_hook``.
    Everything is checked before this returns; frames are decoded as the iterator is consumed.
    """
    from .run.prepare import make_propagator, prepare
    from .run.prompts import PromptInput
    from .threads import resolve_threads

    _check_track_arguments(video, prompts, model, backward, source, discover_every, confirm, generator, memory, options)
    _check_threads(threads)
    n = resolve_threads(threads)
    given = PromptInput(as_track_spec(prompts)) if prompts is not None else PromptInput()
    settings = {
        "source": {"kind": source, "start": start, "stop": stop, "stride": stride, "max_frames": max_frames},
        "discover": {"every": discover_every, "confirm": confirm},
        "propagation": {k: options.pop(k) for k in ("reverse_chunk", "prefetch") if k in options},
        **({"memory": {"name": memory}} if isinstance(memory, str) else {}),
    }
    with _range_named_as_arguments():  # the run's settings as the command's config, checked there
        spec = _track_spec(video, given.spec if prompts is not None else None, settings)
        ready = prepare(spec, given, n, video=None if isinstance(video, (str, Path)) else video)
    net = load_model(model) if isinstance(model, str) else model
    _warn_toy(net, video)
    spec, discovery = _track_discovery(spec, given, net, ready, generator)
    own = None if isinstance(memory, str) else memory
    propagator = make_propagator(spec, net, ready.plan, discovery, memory=own, backward=backward, **options)
    plan = ready.plan.spec
    return _with_threads(n, _in_video(ready.source, propagator.run(ready.source, plan.prompts, plan.object_ids)))


def _track_discovery(spec: Any, given: Any, net: Any, ready: Any, generator: Mapping[str, Any] | None) -> tuple:
    """(spec, discovery) of a track() call that finds objects (the generator's settings in the spec), else
    (spec, None)."""
    from .run.prompts import discovers, make_discovery

    if not discovers(spec, given):
        return spec, None
    spec = spec.with_config({f"generator.{k}": v for k, v in _generator(net, generator).items()})
    return spec, make_discovery(spec, net, ready.source.info, ready.plan)


def _in_video(source: Any, tracked: Iterator[tuple[Frame, FrameMasks]]) -> Iterator[tuple[Frame, FrameMasks]]:
    """The frames of part of a video (a ClipSource) numbered as in the video; others as they come."""
    from .io.clip import ClipSource

    if isinstance(source, ClipSource):
        return (source.in_video(frame, masks) for frame, masks in tracked)
    return tracked


def _track_spec(video: Any, given: TrackSpec | None, settings: dict[str, Any]) -> Any:
    """The :class:`tracker.run.RunSpec` of a :func:`track` call: its ``settings`` groups over the command's
    defaults, no PNG sink (any object id), the ``given`` prompts (None: find the objects)."""
    spec = run_spec(
        str(video) if isinstance(video, (str, Path)) else None,
        None,
        find_objects=given is None,
        sink={"png": False},
        **settings,
    )
    return spec if given is None else replace(spec, prompts=replace(spec.prompts, given=given))


def _check_track_arguments(
    video: Any,
    prompts: Any,
    model: Any,
    backward: Any,
    source: Any,
    discover_every: Any,
    confirm: Any,
    generator: Any,
    memory: Any,
    options: Mapping[str, Any],
) -> None:
    """track()'s arguments, each of the type it needs (TypeError) and known (ValueError)."""
    from .engine.memory import MemoryPolicy
    from .io.source import SOURCES

    _require_model(model, "track")
    _check_video(video)
    _check_type(
        "prompts",
        prompts,
        (str, Path, Mapping, TrackSpec, list, tuple, type(None)),
        "a prompts file, a dict in its schema, a TrackSpec, a list of tracker.Prompt, or None",
    )
    _check_model(model)
    _check_type("backward", backward, bool, "True or False")
    _check_type("source", source, str, f"one of {', '.join(k for k, v in SOURCES.items() if v.open)}")
    if SOURCES.get(source) is None or SOURCES[source].open is None:
        raise ValueError(
            f"source={source!r} is unknown: use one of {', '.join(k for k, v in SOURCES.items() if v.open)}"
        )
    _check_count("discover_every", discover_every, "0: off, as discover.every")
    _check_count("confirm", confirm, "as discover.confirm")
    _check_type("generator", generator, (Mapping, type(None)), "a dict of tracker.discovery.GeneratorSettings' keys")
    _check_options(options)
    _check_type("memory", memory, (str, MemoryPolicy), "a name of configs/memory/ or a MemoryPolicy")


def _check_threads(threads: Any) -> None:
    if threads != "auto" and (not isinstance(threads, int) or isinstance(threads, bool) or threads < 1):
        raise TypeError(f"threads must be 'auto' or a whole number from 1: got {threads!r}")


def _generator(model: Any, generator: Mapping[str, Any] | None) -> dict[str, Any]:
    """The automatic mask generator's settings of a track() call: the model's points per prompt, then the
    caller's."""
    return {"points_per_prompt": model.auto_points, **(generator or {})}


def _check_options(options: Mapping[str, Any]) -> None:
    unknown = sorted(set(options) - {"reverse_chunk", "prefetch", "step_hook"})
    if unknown:
        raise TypeError(f"track() got an unknown option {unknown[0]!r}: use reverse_chunk, prefetch or step_hook")
    if options.get("step_hook") is not None and not callable(options["step_hook"]):
        _check_type("step_hook", options["step_hook"], type(None), "a function (t, reverse, object_ids, low_res)")


@contextlib.contextmanager
def _range_named_as_arguments() -> Iterator[None]:
    """A frame range's errors in track()'s words (``start=-1``, not ``source.start=-1``)."""
    from .run.checks import RANGE_KEYS

    try:
        yield
    except ValueError as e:
        text = str(e)
        for key in RANGE_KEYS:
            text = text.replace(f"source.{key}", key)
        raise ValueError(text) from None


def _with_threads(n: int, frames: Iterator[tuple[Frame, FrameMasks]]) -> Iterator[tuple[Frame, FrameMasks]]:
    from .threads import apply_threads, current_threads, restore_threads

    saved = current_threads()
    apply_threads(n)
    try:
        yield from frames
    finally:
        restore_threads(saved)


def run_spec(
    source: str | Path | None,
    output_dir: str | Path | None,
    /,
    *,
    prompts_file: str | Path | None = None,
    find_objects: bool = False,
    model: str = "toy",
    config_dir: str | Path | None = None,
    **settings: Mapping[str, Any] | Any,
) -> RunSpec:
    """A checked :class:`tracker.run.RunSpec` from the package's configs: ``source`` (a video file or a
    frame folder), ``prompts_file``, ``find_objects`` (``prompts=auto``: the objects are found), ``model``
    (a name of configs/model/), ``settings`` the config's groups as nested dicts (``sink={"coco": True}``,
    ``source={"kind": "images"}``, ``prompts={"kind": "detections", ...}``); ``config_dir``: a folder of
    plug-ins' yaml (``memory/<name>.yaml``, ...), as the command's ``--config-dir``."""
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from .run import OutputSpec, RunSpec
    from .run.transaction import check_output_dir, missing_dirs

    if config_dir is not None and not Path(config_dir).is_dir():
        raise ValueError(f"config_dir={str(config_dir)!r} is not a folder: give the folder of the plug-ins' yaml")
    if isinstance(model, Mapping):  # {"name": "toy", "dtype": "bfloat16", ...}: the file, then its keys
        settings = {**settings, "model": {k: v for k, v in model.items() if k != "name"}}
        model = model.get("name", "toy")
    if not isinstance(model, str) or model not in model_names():
        raise ValueError(f"model={model!r} is unknown: use one of {', '.join(model_names())}")
    groups = [f"model={model}"]
    # A group's own file is chosen by its key (source.kind, prompts.kind, memory.name), then the rest merged.
    for group, key in (("source", "kind"), ("prompts", "kind"), ("memory", "name")):
        choice = settings.get(group, {}).get(key) if isinstance(settings.get(group), Mapping) else None
        folders = [packaged_configs()] + ([Path(config_dir)] if config_dir is not None else [])
        if isinstance(choice, str) and any((d / group / f"{choice}.yaml").is_file() for d in folders):
            groups.append(f"{group}={choice}")  # an unknown one is named by the run's own checks
    if find_objects:
        groups.append("prompts=auto")
    try:
        cfg = compose_config(groups, extra_dir=config_dir)
        # A plug-in's sink switch and keys join the sink node, as ``+sink.<key>=`` does on the command line
        # (the run's checks refuse a key no sink owns).
        OmegaConf.set_struct(cfg.sink, False)
        cfg = OmegaConf.merge(cfg, OmegaConf.create(dict(settings)))
        if source is not None:
            cfg.source.path = str(source)
        if prompts_file is not None:
            cfg.prompts.path = str(prompts_file)
        plain = OmegaConf.to_container(cfg, resolve=True)
    except (OmegaConfBaseException, HydraException) as e:
        raise ValueError(f"settings: {' '.join(str(e).split())}"[:500]) from None
    out = None
    if output_dir is not None:
        out = check_output_dir(output_dir)
    created = tuple(missing_dirs(out)) if out is not None else ()
    return RunSpec.from_config(plain, output=OutputSpec(out, created))  # type: ignore[arg-type]


@_python_worded
def run(
    source: str | Path,
    prompts: str | Path | Mapping | TrackSpec | Sequence[Prompt] | None,
    output_dir: str | Path,
    /,
    *,
    model: str | Mapping[str, Any] | None = None,
    config_dir: str | Path | None = None,
    **settings: Mapping[str, Any] | Any,
) -> dict[str, Any]:
    """Run ``tracker`` from Python: the same files in ``output_dir`` as the command writes, returns the
    record written to ``run.json``. ``prompts``: what :func:`track` takes — a prompts file, a dict in its
    schema, a TrackSpec or a list of Prompt (kept as ``prompts.yaml`` in ``output_dir``); None: the objects
    are found, as ``prompts=auto``; ``settings``: the config's groups as nested dicts, e.g. ``sink={"coco": True}``,
    ``discover={"every": 4}``, ``source={"kind": "images"}``, ``progress=False``; plug-ins:
    ``plugins=["my_plugins/blur_sink.py"]`` and ``config_dir="my_plugins/configs"`` (their yaml).

        tracker.run("clip.mp4", "prompts.yaml", "runs/clip", sink={"coco": True})
    """
    from .run import run as run_spine

    _require_model(model, "run")
    _check_type("source", source, (str, Path), "a video file or a frame folder (str or Path)")
    _check_type(
        "prompts",
        prompts,
        (str, Path, Mapping, TrackSpec, list, tuple, type(None)),
        "a prompts file, a dict in its schema, a TrackSpec, a list of tracker.Prompt, or None to find the objects",
    )
    _check_type("output_dir", output_dir, (str, Path), "a folder (str or Path)")
    _check_type("model", model, (str, Mapping), f"a model name (one of {', '.join(model_names())}) or a dict")
    in_file = prompts if isinstance(prompts, (str, Path)) else None
    spec = run_spec(
        source,
        output_dir,
        prompts_file=in_file,
        find_objects=prompts is None,
        model=model,
        config_dir=config_dir,
        **settings,
    )
    if prompts is not None and in_file is None:
        try:
            given = as_track_spec(prompts)  # type: ignore[arg-type]
        except ValueError as e:
            raise PromptError(f"prompts: {e}") from None
        spec = replace(spec, prompts=replace(spec.prompts, given=given))
    _warn_toy(spec.model.name, source)
    return run_spine(spec)
