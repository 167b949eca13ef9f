"""A run's output folder: what it will hold, the check that no input lies among those names, the log
copied into the staged set, ``.hydra/``, the sinks and the source's decoder options."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from ..io.sinks import FrameImages, Sink, SinkContext, make_sinks, sink_files
from ..records import VideoInfo
from ..threads import apply_threads, resolve_threads
from .model import checkpoint_file
from .prompts import PromptInput
from .spec import RunSpec
from .transaction import check_not_in_outputs, check_output_dir

RECORDS = ["run.json", "run.log", ".hydra"]


def output_folder(spec: RunSpec) -> Path:
    if spec.output.folder is None:
        raise ValueError("no output folder: pass output_dir=PATH")
    return check_output_dir(spec.output.folder)


def planned(spec: RunSpec, *extra: str) -> list[str]:
    """Every name the run writes into OUT."""
    return [*sink_files(spec.sinks.enabled), *RECORDS, *extra]


def check_inputs_apart(
    spec: RunSpec, names: Sequence[str], given: PromptInput | None, source: str | Path | None = None
) -> None:
    """No input of the run (the source file, the prompts, their mask PNGs, the checkpoint) is one of
    the names it writes: a run never overwrites what it reads."""
    inputs: list[tuple[str, Any]] = [("source.path", source)] if source is not None else []
    inputs += [("prompts.path", spec.prompts.path), ("model.checkpoint", checkpoint_file(spec.model))]
    if given is not None:
        inputs += [("prompts mask", f) for f in given.mask_files]
    check_not_in_outputs(output_folder(spec), names, inputs)


@contextmanager
def logged_to(path: Path) -> Iterator[None]:
    """Copy the run's log into the staged set (it moves with the commit: the handler keeps its file)."""
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
        handler.close()


def save_config(spec: RunSpec, folder: Path) -> None:
    """``.hydra/``: the texts the door gave (the CLI: Hydra's composed config and overrides), else the
    resolved config as YAML."""
    save_texts(folder, spec.output.config_texts or {"config.yaml": yaml.safe_dump(dict(spec.config), sort_keys=False)})


def save_texts(folder: Path, texts: Mapping[str, str]) -> None:
    d = folder / ".hydra"
    d.mkdir(exist_ok=True)  # a resumed run writes its own over the first one's
    for name, text in texts.items():
        (d / name).write_text(text)


def open_sinks(
    spec: RunSpec, folder: Path, info: VideoInfo, labels: Any, video_name: str, audio_from: Path | None
) -> list[Sink]:
    s = spec.sinks
    images = FrameImages() if "frames" in s.enabled else None
    sinks = make_sinks(s.enabled, SinkContext(folder, info, labels, video_name, audio_from, s.settings, images))
    for sink in sinks:
        sink.clip = spec.source.frames
    return sinks


def source_options(spec: RunSpec, threads: int) -> dict[str, Any]:
    """The decoder's keyword arguments (FFmpeg's threads follow the run's unless set)."""
    options = dict(spec.source.options)
    if spec.source.kind == "pyav" and not options.get("threads"):
        options["threads"] = threads
    return options


def run_threads(spec: RunSpec) -> int:
    """The run's compute threads, resolved (``auto`` samples how busy the cores are: 0.25 s) and applied;
    called once the checks before decoding have passed."""
    n = resolve_threads(spec.threads, spec.jobs)
    apply_threads(n)
    return n
