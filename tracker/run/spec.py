"""The typed, frozen description of one run (:class:`RunSpec`), made once from the resolved config (a plain
nested dict) and validated there. Defaults live in ``configs/``: every key is read, none is assumed.

    spec = RunSpec.from_config(plain, output=OutputSpec(Path("runs/a")))
    record = tracker.run.run(spec)
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..masks import PNG_MAX_ID
from ..records import EVERY_FRAME, FrameRange
from . import checks
from .checks import RANGE_KEYS, ConfigError

if TYPE_CHECKING:
    from ..io.prompts import TrackSpec

MAX_ID = 2**31 - 1


@dataclass(frozen=True)
class ModelSpec:
    name: str
    arch: Mapping[str, Any]  # SAM 2's model config (``model.arch.model``), resolved
    checkpoint: str | None
    device: str
    compile: bool
    fill_hole_area: int
    dtype: str  # float32 | bfloat16 | float16
    auto_points: int
    seed: int
    tf32: bool = True  # CUDA float32 in TF32
    kv_cache: bool = False  # memory attention's projections of each memory frame kept


@dataclass(frozen=True)
class SourceSpec:
    kind: str  # pyav | decord | opencv | images | camera
    path: str | None
    timeout: float | None  # live inputs: a stream silent this long ends the run
    options: Mapping[str, Any]  # the decoder's own keys (threads, fps, device, format, width, height)
    frames: FrameRange = EVERY_FRAME  # start, stop, stride, max_frames: the frames a file run reads


@dataclass(frozen=True)
class PromptsSpec:
    kind: str  # file | detections | auto
    path: str | None
    frame: int | None = None
    box: tuple[float, ...] | None = None
    points: tuple[tuple[float, ...], ...] | None = None
    object_id: int | None = None
    label: str | int | float | None = None
    format: str | None = None  # detections: mot | coco | yolo
    min_score: float | None = None
    reprompt_iou: float = 0.0  # 0: never (also every kind without re-prompts)
    match_iou: float | None = None
    frames: tuple[int, ...] = ()  # auto: the frames the objects are found on
    given: TrackSpec | None = None  # prompts handed over in Python (tracker.run), already parsed


@dataclass(frozen=True)
class SinkSpec:
    enabled: tuple[str, ...]  # keys of ``sink.*`` set true, in the config's order (the order sinks are written)
    settings: Mapping[str, Any]  # sink key -> its own settings record (SinkKind.settings), checked by it


@dataclass(frozen=True)
class DiscoverySpec:
    every: int
    new_iou: float
    max_covered: float
    confirm: int
    max_objects: int
    generator: Mapping[str, Any]  # GeneratorSettings' keys


@dataclass(frozen=True)
class LimitsSpec:
    max_objects: int
    max_boxes_per_frame: int
    max_detections_mb: float


@dataclass(frozen=True)
class MemorySpec:
    name: str  # a policy of tracker.engine.memory.MEMORY_POLICIES
    settings: Mapping[str, Any]

    def policy(self) -> Any:
        """A new :class:`tracker.engine.memory.MemoryPolicy` (one per video: policies keep state)."""
        from ..engine.policies import memory_policy

        return memory_policy(self.name, **self.settings)


@dataclass(frozen=True)
class DemoSpec:
    frames: int
    width: int
    height: int
    seed: int


@dataclass(frozen=True)
class DatasetSpec:
    layout: str
    root: str
    split: str
    resolution: str
    shard: int
    num_shards: int
    prompt: str
    annotated_video: bool


@dataclass(frozen=True)
class OutputSpec:
    """Where the run writes. ``created``: folders made for it (removed again if it fails); ``config_texts``:
    files written into ``.hydra/`` of the committed set (the CLI's composed config and overrides)."""

    folder: Path | None
    created: tuple[Path, ...] = ()
    config_texts: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RunSpec:
    config: Mapping[str, Any]  # the resolved config: run.json's ``config`` and the resume fingerprint
    model: ModelSpec
    source: SourceSpec
    prompts: PromptsSpec
    sinks: SinkSpec
    discovery: DiscoverySpec
    memory: MemorySpec
    limits: LimitsSpec
    output: OutputSpec
    mode: str  # auto | file | online
    threads: int | str  # a count or "auto"
    jobs: int  # runs going on at once in this sweep (threads=auto shares the cores among them)
    reverse_chunk: int
    prefetch: int
    realtime: bool
    status_every_s: float
    resume: bool
    resume_every: int
    progress: bool
    demo: DemoSpec | None
    dataset: DatasetSpec | None

    @property
    def max_id(self) -> int:
        """The largest object id the outputs can hold."""
        return PNG_MAX_ID if "png" in self.sinks.enabled else MAX_ID

    @classmethod
    def from_config(cls, plain: Mapping[str, Any], output: OutputSpec | None = None, jobs: int = 1) -> RunSpec:
        """Validate ``plain`` (a resolved ``configs/config.yaml``) and type it; every error names the key,
        the bad value and the fix (:class:`ConfigError`)."""
        if plain.get("dataset"):
            checks.dataset_run(plain)
        else:
            checks.video_run(plain)
        c = _Reader(plain)
        return cls(
            config=copy.deepcopy(dict(plain)),
            model=model_spec(plain),
            source=_source(plain),
            prompts=_prompts(plain) if not plain.get("dataset") else PromptsSpec("file", None),
            sinks=SinkSpec(
                enabled=_enabled_sinks(plain),
                settings=checks.sink_settings(plain.get("sink") or {}),
            ),
            discovery=DiscoverySpec(
                every=c.get("discover.every"),
                new_iou=c.get("discover.new_iou"),
                max_covered=c.get("discover.max_covered"),
                confirm=c.get("discover.confirm"),
                max_objects=c.get("discover.max_objects"),
                generator=dict(c.get("generator")),
            ),
            memory=_memory(plain),
            limits=LimitsSpec(**plain["limits"]),
            output=output or OutputSpec(Path(plain["output_dir"]) if plain.get("output_dir") else None),
            mode=c.get("mode"),
            threads=checks.threads(plain),
            jobs=int(jobs),
            reverse_chunk=c.get("propagation.reverse_chunk"),
            prefetch=c.get("propagation.prefetch"),
            realtime=bool(c.get("live.realtime")),
            status_every_s=float(c.get("live.status_every_s")),
            resume=bool(c.get("resume")),
            resume_every=int(c.get("resume_every")),
            progress=bool(c.get("progress")),
            demo=DemoSpec(**{k: plain["demo"][k] for k in ("frames", "width", "height", "seed")})
            if plain.get("demo") and not c.get("source.path")
            else None,
            dataset=_dataset(plain),
        )

    def with_config(self, changes: Mapping[str, Any], output: OutputSpec | None = None) -> RunSpec:
        """The same run with dotted config keys changed (``{"prompts.path": ...}``), checked again."""
        plain = copy.deepcopy(dict(self.config))
        for key, value in changes.items():
            node = plain
            *parents, last = key.split(".")
            for p in parents:
                node = node.setdefault(p, {})
            node[last] = value
        return RunSpec.from_config(plain, output or self.output, self.jobs)


class _Reader:
    def __init__(self, plain: Mapping[str, Any]) -> None:
        self.plain = plain

    def get(self, key: str, default: Any = None) -> Any:
        node: Any = self.plain
        for part in key.split("."):
            if not isinstance(node, Mapping) or part not in node:
                return default
            node = node[part]
        return node


def _enabled_sinks(plain: Mapping[str, Any]) -> tuple[str, ...]:
    from ..io.sinks import SINKS

    return tuple(k for k, on in plain["sink"].items() if k in SINKS and on is True)


def model_spec(plain: Mapping[str, Any], *, weights: bool = True) -> ModelSpec:
    """``weights=False``: the checkpoint as configured, whatever is cached (training loads its own)."""
    checks.model(plain)
    m = plain["model"]
    ckpt = m["checkpoint"]
    if weights:
        ckpt = checks.weights(str(m["name"]), ckpt, bool(m.get("random_weights", False)))
    return ModelSpec(
        name=str(m["name"]),
        arch=m["arch"]["model"],
        checkpoint=ckpt,
        device=m["device"],
        compile=bool(m["compile"]),
        dtype=str(m.get("dtype", "float32")),
        tf32=bool(m.get("tf32", True)),
        kv_cache=bool(m.get("kv_cache", False)),
        fill_hole_area=int(m["fill_hole_area"]),
        auto_points=int(m["auto_points"]),
        seed=int(plain["seed"]),
    )


def _source(plain: Mapping[str, Any]) -> SourceSpec:
    s = dict(plain.get("source") or {"kind": "pyav", "path": None})
    kind, path, timeout = s.pop("kind"), s.pop("path", None), s.pop("timeout", None)
    frames = checks.frame_range({k: s.pop(k) for k in RANGE_KEYS if k in s})
    return SourceSpec(kind=kind, path=path, timeout=timeout, options=s, frames=frames)


def _as_tuple(v: Any) -> Any:
    if isinstance(v, Sequence) and not isinstance(v, str):
        return tuple(_as_tuple(x) for x in v)
    return v


def _prompts(plain: Mapping[str, Any]) -> PromptsSpec:
    p = plain["prompts"]
    return PromptsSpec(
        kind=p["kind"],
        path=p.get("path"),
        frame=p.get("frame"),
        box=_as_tuple(p.get("box")),
        points=_as_tuple(p.get("points")),
        object_id=p.get("id"),
        label=p.get("label"),
        format=p.get("format"),
        min_score=p.get("min_score"),
        reprompt_iou=float(p.get("reprompt_iou") or 0.0),
        match_iou=p.get("match_iou"),
        frames=tuple(p.get("frames") or ()),
    )


def _memory(plain: Mapping[str, Any]) -> MemorySpec:
    from ..engine.policies import MEMORY_POLICIES

    m = dict(plain["memory"])
    name = m.pop("name", None)
    if name not in MEMORY_POLICIES:
        raise ConfigError(f"memory={name!r} is unknown: use one of {', '.join(sorted(MEMORY_POLICIES))}")
    spec = MemorySpec(name, m)
    spec.policy()  # its settings are checked here, before any frame is decoded
    return spec


def _dataset(plain: Mapping[str, Any]) -> DatasetSpec | None:
    d = plain.get("dataset")
    if not d:
        return None
    if not d.get("root"):
        raise ConfigError("dataset.root is not set: pass dataset.root=PATH (e.g. scripts/make_synthetic_dataset.py)")
    keys = ("layout", "root", "split", "resolution", "shard", "num_shards", "prompt", "annotated_video")
    return DatasetSpec(**{k: d[k] for k in keys})
