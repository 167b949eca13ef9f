"""One preparation of a run for every door (the file run, the online run, the studio, ``tracker.track``):
open the video (or take the open stream), plan the prompts against it, take the frames the run reads,
check the prompts, all before any frame is tracked; and the one place a run's :class:`Propagator` is
built. Dataset runs prepare each sequence in :mod:`tracker.experiments.vos` (below this layer)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..io.clip import clipped
from ..io.source import open_source
from ..records import FrameSource
from .outputs import source_options
from .prompts import PromptInput, PromptPlan, discovers, plan_prompts
from .spec import RunSpec


@dataclass(frozen=True)
class Prepared:
    """A run's inputs, open and checked. ``source``: the frames the run reads (the video itself, or its
    :class:`tracker.io.clip.ClipSource` for ``source.start/stop/stride``); ``plan``: the prompts on the
    run's frame numbers."""

    source: FrameSource
    plan: PromptPlan


def prepare(
    spec: RunSpec, given: PromptInput, threads: int, video: FrameSource | None = None, *, none_yet: bool = False
) -> Prepared:
    """Open ``spec.source`` (or take ``video``, an open source), plan ``given`` against it and check the
    prompts against the frames the run reads. Raises the one-line errors of a bad range or prompt.
    ``none_yet``: no prompt is no error (the studio, where they are made on the page)."""
    from ..engine.propagation import Propagator

    if video is None:
        video = open_source(spec.source.kind, spec.source.path, **source_options(spec, threads))
    plan = plan_prompts(spec, given, video.info, spec.source.frames)
    source = clipped(video, spec.source.frames)
    allow_empty = none_yet or discovers(spec, given)  # or the objects are found as the run goes
    Propagator.check_prompts(plan.spec.prompts, source.info, plan.spec.object_ids, allow_empty=allow_empty)
    return Prepared(source, plan)


def make_propagator(
    spec: RunSpec,
    model: Any,
    plan: PromptPlan,
    discovery: Any,
    *,
    live: bool = False,
    spool_path: str | None = None,
    memory: Any = None,
    backward: bool | None = None,
    **engine: Any,
):
    """The run's :class:`tracker.engine.propagation.Propagator`, from its spec: ``live`` tracks forward
    as frames arrive (no backward pass; real time: no decode-ahead queue, or frames would wait there
    instead of being dropped: p50 latency 290 ms with the default queue of 8 at 720p); ``spool_path``: a
    resumable run's checkpoints (every ``resume_every`` frames). ``memory`` and ``backward`` override the
    spec's (Python callers pass objects); ``engine``: the propagator's own options (``step_hook``)."""
    from ..engine.propagation import Propagator
    from ..engine.reprompt import RepromptPolicy
    from ..engine.types import Checkpoints, Passes

    passes = Passes(
        backward=not live if backward is None else backward,
        reverse_chunk=spec.reverse_chunk,
        prefetch=0 if live and spec.realtime else spec.prefetch,
    )
    return Propagator(
        model,
        memory if memory is not None else spec.memory.policy(),
        passes=passes,
        checkpoints=Checkpoints(spec.resume_every, spool_path) if spool_path is not None else Checkpoints(),
        discovery=discovery,
        reprompts=RepromptPolicy.of(plan.reprompts, spec.prompts.reprompt_iou),
        labels=plan.spec.labels,
        **engine,
    )
