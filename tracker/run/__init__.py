"""The run's spine, without Hydra or HTTP: every door (the CLI, the studio's Track, ``tracker.run``,
datasets) builds a :class:`RunSpec` and calls :func:`run`.

    check config (RunSpec.from_config) -> output folder, collision check -> threads -> source -> prompts
    read and planned -> model -> discovery -> sinks (+ resume) -> Propagator -> pipeline -> run.json ->
    commit
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from ..io.prompts import PromptError
from ..threads import current_threads, restore_threads
from .checks import ConfigError
from .dataset import run_dataset
from .file import run_file
from .online import live_kind, run_online
from .spec import OutputSpec, RunSpec


def run(spec: RunSpec, *, model: Any = None, extra_sinks: Sequence[Any] = ()) -> dict[str, Any]:
    """Run ``spec`` (a dataset, an online stream or a file) as one output transaction; returns the record
    written to ``run.json``. ``model``: a loaded model for ``spec.model`` (None: built here);
    ``extra_sinks``: context managers with ``write(frame, masks)`` that see every frame too (file runs)."""
    started = time.perf_counter()
    live = live_kind(spec) if spec.dataset is None else None
    if live is not None and spec.mode == "file":
        raise PromptError(f"source.path {spec.source.path!r} is a live stream ({live}): use mode=online (or mode=auto)")
    # The run's thread counts are the process's while it runs, and the caller's again after (a Python
    # caller or a studio keeps its own).
    saved = current_threads()
    try:
        if spec.dataset is not None:
            return run_dataset(spec, started, model)
        if live is not None or spec.mode == "online":
            return run_online(spec, started, model)
        return run_file(spec, started, model, extra_sinks)
    finally:
        restore_threads(saved)


__all__ = ["ConfigError", "OutputSpec", "RunSpec", "run"]
