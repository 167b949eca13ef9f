"""What to track: the prompts of a run read before any frame is decoded (:class:`PromptInput`), then
planned against the video once its size is known (:class:`PromptPlan`): file prompts, detections (seeds,
re-prompt boxes, id-less boxes) and ``prompts=auto`` all end in the same type."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..io.detections import Box, Detection, detection_plan, read_detections
from ..io.prompts import PromptError, TrackSpec, load_prompts, quick_prompts
from ..masks import png_id_hint
from ..records import EVERY_FRAME, FrameRange, VideoInfo
from .spec import RunSpec

_EMPTY = TrackSpec(labels={}, prompts=())


@dataclass(frozen=True)
class PromptInput:
    """The prompts as read: ``spec`` (a prompts file or the command line; empty for detections and
    auto), ``detections`` (prompts=detections: the file's boxes, planned once the video size is known)."""

    spec: TrackSpec = _EMPTY
    detections: tuple[Detection, ...] = ()

    @property
    def mask_files(self) -> tuple[Path, ...]:
        return self.spec.mask_files

    @property
    def frames(self) -> set[int]:
        """Frames the prompts are on (detections: every frame with a box)."""
        return {p.frame_index for p in self.spec.prompts} | {d.frame for d in self.detections}


@dataclass(frozen=True)
class PromptPlan:
    """What the engine is given: ``spec`` seeds the objects; ``reprompts`` frame -> {id: box} re-prompt
    drifting masks; ``unmatched`` frame -> boxes without ids join where no tracked mask matches them. Frame
    numbers are the run's (:func:`plan_prompts`)."""

    spec: TrackSpec
    reprompts: Mapping[int, Mapping[int, Box]] = field(default_factory=dict)
    unmatched: Mapping[int, list[Box]] = field(default_factory=dict)
    found_on: tuple[int, ...] = ()  # prompts=auto: the frames objects are found on (prompts.frames)


def read_prompts(spec: RunSpec) -> PromptInput:
    """The run's prompts, checked before any frame is decoded."""
    p = spec.prompts
    if p.kind == "auto":  # the generator finds the objects on prompts.frames while the run goes on
        return PromptInput()
    if p.kind == "detections":
        if not p.path:
            raise PromptError("prompts=detections needs prompts.path=FILE (and prompts.format=mot|coco|yolo)")
        lim = spec.limits
        return PromptInput(
            detections=tuple(read_detections(p.path, p.format, lim.max_detections_mb, lim.max_boxes_per_frame))
        )
    if p.given is not None:
        too_big = [i for i in p.given.labels if i > spec.max_id]
        if too_big:
            hint = png_id_hint(spec.max_id, "sink={'png': False}")
            raise PromptError(f"object id {too_big[0]} is above {spec.max_id}{hint}")
        return PromptInput(p.given)
    if p.path:
        return PromptInput(load_prompts(p.path, max_id=spec.max_id))
    if p.box is not None or p.points is not None:
        return PromptInput(
            quick_prompts(
                frame=p.frame,
                box=_as_list(p.box),
                points=_as_list(p.points),
                object_id=p.object_id,
                label=p.label,
                max_id=spec.max_id,
            )
        )
    raise PromptError(
        "nothing to track: pass prompts.path=FILE, or prompts.box=[x0,y0,x1,y1] / "
        "prompts.points=[[x,y,1]] with prompts.frame=N"
    )


def _as_list(v: Any) -> Any:
    return [_as_list(x) for x in v] if isinstance(v, tuple) else v


def discovers(spec: RunSpec, given: PromptInput | None = None) -> bool:
    """Whether objects may join or be re-prompted while the run goes on (no checkpoints then). ``given``:
    the prompts read (boxes without ids join as they come)."""
    p = spec.prompts
    idless = given is not None and any(d.track_id is None for d in given.detections)
    by_boxes = p.kind == "detections" and (p.reprompt_iou > 0 or p.format == "yolo" or idless)
    return spec.discovery.every > 0 or p.kind == "auto" or by_boxes


def plan_prompts(spec: RunSpec, given: PromptInput, info: VideoInfo, frames: FrameRange = EVERY_FRAME) -> PromptPlan:
    """The plan once the video's size is known (``info``: the whole video's): detections become prompts
    here. With ``frames`` (``source.start/stop/stride/max_frames``), the plan speaks the run's frame numbers."""
    p = spec.prompts
    n = info.num_frames
    if p.kind == "auto" and n is not None:
        late = [f for f in p.frames if f >= n]
        if late:
            raise PromptError(f"prompts.frames holds frame {late[0]}, the video has {n} frames: use 0..{n - 1}")
    if p.kind == "auto":
        plan = PromptPlan(given.spec, found_on=p.frames or (frames.start,))
    elif p.kind != "detections":
        plan = PromptPlan(given.spec)
    else:
        # Boxes on frames the run does not read are left out before their seeds are chosen.
        read = [d for d in given.detections if frames.run_frame(d.frame, n) is not None]
        boxes = detection_plan(
            read,
            info.width,
            info.height,
            p.min_score or 0.0,
            spec.max_id,
            normalised=p.format == "yolo",
        )
        plan = PromptPlan(boxes.spec, boxes.later if p.reprompt_iou > 0 else {}, boxes.unmatched)
    return _within_limits(spec, plan if frames.everything else _in_run(plan, frames, n))


def _in_run(plan: PromptPlan, frames: FrameRange, n: int | None) -> PromptPlan:
    """``plan`` in the run's frame numbers."""

    try:
        frames.check_against(n)
    except ValueError as e:
        raise PromptError(str(e)) from None

    def kept(by_frame: Mapping[int, Any]) -> dict[int, Any]:
        return {i: v for f, v in by_frame.items() if (i := frames.run_frame(f, n)) is not None}

    return PromptPlan(
        prompts_in_run(plan.spec, frames, n),
        kept(plan.reprompts),
        kept(plan.unmatched),
        tuple(_run_frame(frames, n, f, "a frame of prompts.frames") for f in plan.found_on),
    )


def prompts_in_run(spec: TrackSpec, frames: FrameRange, n: int | None) -> TrackSpec:
    """``spec``'s prompts on the run's frame numbers; a prompt frame the run does not read is refused (its
    object would start nowhere). ``n``: the video's frame count."""
    prompts = tuple(
        replace(q, frame_index=_run_frame(frames, n, q.frame_index, f"object {q.object_id}'s prompt frame"))
        for q in spec.prompts
    )
    return replace(spec, prompts=prompts)


def _run_frame(frames: FrameRange, n: int | None, f: int, what: str) -> int:
    i = frames.run_frame(f, n)
    if i is None:
        raise PromptError(
            f"{what} is frame {f}, which the run does not read (source.start={frames.start}, "
            f"source.stride={frames.stride}: {frames.describe(n)}): prompt on one of those, or change source.start"
        )
    return i


def _within_limits(spec: RunSpec, plan: PromptPlan) -> PromptPlan:
    n, limit = len(plan.spec.object_ids), spec.limits.max_objects
    if n > limit:
        raise PromptError(f"the prompts name {n} objects, over limits.max_objects={limit}: track fewer, or raise it")
    return plan


def make_discovery(spec: RunSpec, model: Any, info: VideoInfo, plan: PromptPlan):
    """The run's :class:`tracker.discovery.Discovery`, or None when nothing joins mid-run."""
    from ..discovery import Discovery, DiscoverySettings, GeneratorSettings, MaskGenerator

    d, p = spec.discovery, spec.prompts
    generates = d.every > 0 or p.kind == "auto"
    if not generates and not plan.unmatched:
        return None
    frames = list(plan.found_on)
    settings = DiscoverySettings(
        every=d.every,
        frames=tuple(frames[1:]),
        new_iou=d.new_iou,
        max_covered=d.max_covered,
        confirm=d.confirm,
        # objects found or joining by box: up to discover.max_objects, and the run's limit with the given ones
        max_objects=max(0, min(d.max_objects, spec.limits.max_objects - len(plan.spec.object_ids))),
        **({"match_iou": p.match_iou} if p.match_iou is not None else {}),
    )
    generator = MaskGenerator(model, GeneratorSettings(**d.generator)) if generates else None
    return Discovery(
        settings,
        (info.height, info.width),
        next_id=max(plan.spec.object_ids, default=0) + 1,
        generator=generator,
        detections=dict(plan.unmatched),
        seed_frame=frames[0] if frames else None,
        max_id=spec.max_id,
    )


def discovery_record(spec: TrackSpec, discovery, propagator) -> dict[str, Any]:
    """run.json's objects (ids -> labels, joined ones included) and what joined, was dropped, re-prompted."""
    objects = {str(k): v for k, v in spec.labels.items()}
    out: dict[str, Any] = {"objects": objects}
    if discovery is not None:
        objects.update({str(j.object_id): None for j in discovery.joined if j.kept})
        out["discovery"] = discovery.summary()
    if propagator.reprompted:
        per: dict[str, int] = {}
        for r in propagator.reprompted:
            per[str(r["id"])] = per.get(str(r["id"]), 0) + 1
        out["reprompts"] = {"total": len(propagator.reprompted), "by_object": per}
    return out
