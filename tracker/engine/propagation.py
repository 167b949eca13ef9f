"""Streaming propagation: SAM 2's semantics with bounded state, frames in order, objects batched.

Per object (as upstream run on that object alone): every prompt frame is encoded first, then the
object is tracked forward from its first prompt frame to the last frame and backward from its first
prompt frame to frame 0. Objects with the same set of prompt frames share every memory layout, so
they form one *group* and run through SAM 2 as one batch.

The work runs in passes so that frames come out in order without keeping the video:
  0. prompt frames (random access);
  1. warm-up: groups whose first prompt frame f > 0 track forward over f+1 .. f+W, just far enough
     to produce what their backward pass reads (memories and pointers of frames after f);
  2. backward sweep from the last first-prompt-frame down to 0, decoded in reverse chunks;
  3. one forward sweep over the whole video: every group continues its forward state, and each frame
     is emitted as soon as all objects have a result for it.
Results of passes 0-2 wait in a :class:`MaskSpool` (RLE on disk) until pass 3 emits their frame.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import numpy as np

from ..masks import fill_holes, sigmoid, to_grid, to_video_masks
from ..records import Frame, FrameMasks, FrameSource, Prompt, VideoInfo
from ..threads import in_background
from .features import FeatureCache
from .holdback import HoldBack
from .memory import Geometry, Group, MemoryPolicy, Sam2Memory
from .reprompt import RepromptPolicy
from .spool import Checkpoint, CheckpointError, MaskSpool
from .types import EVERY_PASS, NO_CHECKPOINTS, Candidates, Checkpoints, MemoryEntry, Passes, TrackRequest, Verdict

Box = tuple[float, float, float, float]

# (frame_index, reverse, object_ids, low-res logits float32 [B, 1, S/4, S/4])
StepHook = Callable[[int, bool, tuple[int, ...], "object"], None]


FIRST_CHECKPOINT = 10  # frames into the forward pass before its first checkpoint (then checkpoint_every)


class SourceTruncatedError(ValueError):
    """The video ends before the frame count its index announced (e.g. a truncated file)."""


class Propagator:
    """Runs prompts through a video with a :class:`tracker.engine.sam.SamModel`.

    ``run`` yields ``(Frame, FrameMasks)`` for every frame in order; ``step_hook`` (if given) sees
    every SAM 2 output as it is computed, in compute order, with the low-res logits.
    """

    def __init__(
        self,
        model,
        memory: MemoryPolicy | None = None,
        *,
        passes: Passes = EVERY_PASS,
        checkpoints: Checkpoints = NO_CHECKPOINTS,
        discovery=None,
        reprompts: RepromptPolicy | None = None,
        labels: Mapping[int, str | None] | None = None,
        step_hook: StepHook | None = None,
    ) -> None:
        """``memory``: the memory policy (default :class:`Sam2Memory`, upstream's own: which tracked frames
        enter memory and which SAM 2 reads back). ``passes`` (:class:`Passes`): the backward pass or not,
        decoding ahead; ``checkpoints`` (:class:`Checkpoints`): ``run`` also yields a :class:`Checkpoint`
        about every ``every`` frames of each pass.

        ``discovery`` (a :class:`tracker.discovery.Discovery`): objects join while the run goes on, from
        the frame they are found on (forward only); frames are held back until the objects that joined
        on them are kept or dropped (at most ``confirm`` frames). ``reprompts``
        (:class:`tracker.engine.reprompt.RepromptPolicy`): boxes from a box tracker re-prompt a drifting
        mask on their frame (forward sweep only). Neither can be checkpointed. ``labels``: object id ->
        label, carried by every :class:`FrameMasks` (read per frame: objects that join may be added)."""
        reprompts = reprompts if reprompts is not None else RepromptPolicy.of(None, 0.0)
        if (discovery is not None or reprompts.boxes) and checkpoints.every > 0:
            raise ValueError("a run that discovers or re-prompts objects keeps no checkpoints: resume_every=0")
        self.discovery = discovery
        self.holdback = HoldBack(discovery) if discovery is not None else None
        self.reprompts = reprompts
        self.memory = memory if memory is not None else Sam2Memory()
        self.labels = labels if labels is not None else {}
        self._joined_at: dict[int, int] = {}  # object id -> frame it joined on (discovered objects)
        self.checkpoint_every = checkpoints.every
        self.spool_path = checkpoints.spool_path
        self.model = model
        self.backward = passes.backward
        self.prefetch = passes.prefetch
        self.decode_seconds = 0.0
        self.reverse_chunk = passes.reverse_chunk
        self.step_hook = step_hook
        self.groups: list[Group] = []
        self._num_frames = 0
        self._features: FeatureCache | None = None  # a run's features for the forward sweep (run())

    # ---- set-up -----------------------------------------------------------------------------
    @staticmethod
    def check_prompts(
        prompts: Sequence[Prompt], info: VideoInfo, object_ids: Sequence[int] | None = None, allow_empty: bool = False
    ):
        """Validate every prompt against the video before any frame is processed. ``allow_empty``: the run
        finds its objects itself (discovery)."""
        if not prompts and not allow_empty:
            raise ValueError("no prompts: give at least one object with a point, box or mask")
        known = set(object_ids) if object_ids is not None else None
        seen: set[tuple[int, int]] = set()
        for p in prompts:
            if known is not None and p.object_id not in known:
                raise ValueError(f"prompt names unknown object id {p.object_id}: declared ids are {sorted(known)}")
            key = (p.object_id, p.frame_index)
            if key in seen:
                raise ValueError(
                    f"object {p.object_id} has two prompts on frame {p.frame_index}: merge them into one "
                    "(points, box and mask may be combined)"
                )
            seen.add(key)
            p.check_against(info)

    def _make_groups(self, prompts: Sequence[Prompt]) -> None:
        frames_of: dict[int, set[int]] = {}
        for p in prompts:
            frames_of.setdefault(p.object_id, set()).add(p.frame_index)
        if self.memory.per_object:
            self.groups = [Group((oid,), tuple(sorted(frames_of[oid]))) for oid in sorted(frames_of)]
            return
        by_layout: dict[tuple[int, ...], list[int]] = {}
        for oid in sorted(frames_of):
            by_layout.setdefault(tuple(sorted(frames_of[oid])), []).append(oid)
        self.groups = [Group(tuple(ids), layout) for layout, ids in sorted(by_layout.items())]

    def retained(self) -> list[dict[str, int]]:
        """Per group: how many memories / pointers each pass holds (for tests and monitoring)."""
        return [g.counts() for g in self.groups]

    @property
    def reprompted(self) -> list[dict[str, int]]:
        """{"id", "frame"} of every re-prompt so far."""
        return self.reprompts.done

    def _bind_memory(self, num_frames: int, max_ptrs: int) -> None:
        m = self.model
        self._num_frames = num_frames
        self.memory.bind(Geometry(m.num_maskmem, m.stride, max_ptrs, num_frames))

    # ---- running ----------------------------------------------------------------------------
    def run(
        self,
        source: FrameSource,
        prompts: Sequence[Prompt],
        object_ids: Sequence[int] | None = None,
        resume: dict | None = None,
    ) -> Iterator[tuple[Frame, FrameMasks]]:
        """``resume``: a :class:`Checkpoint`'s ``state`` from an earlier run of the same model, video and
        prompts: the run continues from there and yields only the frames that run had not yielded."""
        info = source.info
        if info.num_frames is None:
            raise ValueError("the source does not know its frame count: it is needed for the backward pass")
        self.check_prompts(prompts, info, object_ids, allow_empty=self.discovery is not None)
        n = info.num_frames
        self._bind_memory(n, min(n, self.model.max_obj_ptrs))
        self._video_size = (info.height, info.width)
        self._make_groups(prompts)
        stage, position = "prompts", 0
        if resume is not None:
            if self.spool_path is None:
                raise ValueError("resume needs the spool file the checkpointed run wrote: pass spool_path")
            try:
                stage, position = resume["stage"], resume["position"]
                self.groups = [Group.from_state(g, self.model.device) for g in resume["groups"]]
                self.model.restore_memory_pos(resume["maskmem_pos"])
                self.memory.load_state(resume.get("memory", {}))
            except (KeyError, TypeError, ValueError, IndexError, AttributeError, RuntimeError) as e:
                # Checked before any frame: the run stops as a refused resume, which keeps its checkpoint.
                why = f"{type(e).__name__}: {e}"[:200]
                raise CheckpointError(f"the checkpoint's engine state cannot be restored ({why})") from None
            spool = MaskSpool(self.spool_path, resume["spool"], self._video_size)
        else:
            spool = MaskSpool(self.spool_path, size=self._video_size)
        self._since = 0
        yield from self._held(self._passes(source, prompts, spool, stage, position))

    def _passes(self, source: FrameSource, prompts: Sequence[Prompt], spool: MaskSpool, stage: str, position: int):
        self._features = FeatureCache()
        try:
            if stage == "prompts":
                self._encode_prompt_frames(source, prompts, spool)
                stage, position = "warmup", -1
                yield from self._marker(stage, position, 0, spool, force=True)
            if self.backward and stage == "warmup":
                yield from self._warm_up(source, spool, position)
                stage, position = "backward", -1
            if self.backward and stage == "backward":
                yield from self._backward(source, spool, position)
                stage, position = "forward", 0
            yield from self._forward(source, spool, position if stage == "forward" else 0)
        finally:
            spool.close()
            self._features.close()

    def _marker(self, stage: str, position: int, emitted: int, spool: MaskSpool, force: bool = False):
        """Yield a Checkpoint when ``checkpoint_every`` frames went by since the last one (or ``force``)."""
        if self.checkpoint_every <= 0 or not (force or self._since >= self.checkpoint_every):
            return
        self._since = 0
        state = {
            "stage": stage,
            "position": position,
            "groups": [g.state() for g in self.groups],
            "spool": spool.state(),
            "maskmem_pos": self.model.memory_pos(),
            "memory": self.memory.state(),
        }
        yield Checkpoint(stage, position, emitted, state)

    def run_online(
        self,
        frames: Iterable[Frame],
        prompts: Sequence[Prompt],
        object_ids: Sequence[int] | None = None,
        info: VideoInfo | None = None,
    ) -> Iterator[tuple[Frame, FrameMasks]]:
        """Forward-only tracking of frames whose count is not known (a live stream, or ``mode=online``).

        An object exists from its first prompt frame on (empty masks before it); a prompt frame is
        encoded when it arrives and only earlier prompt frames are remembered, so each frame's masks
        come out as soon as it is processed and the state stays bounded however long the stream runs.
        Frame indices count from the first frame received; ``frames`` may skip indices (frames dropped
        to keep up in real time), except prompt frames, which must come. ``info``: size (and frame
        count if known) to check the prompts against; else the first frame's size.
        """
        it = iter(frames)
        first = next(it, None)
        if first is None:
            return
        h, w = first.rgb.shape[:2]
        info = info or VideoInfo(width=w, height=h, fps=None, num_frames=None)
        self.check_prompts(prompts, info, object_ids, allow_empty=self.discovery is not None)
        self._bind_memory(2**31 - 1, self.model.max_obj_ptrs)  # the count: only to skip pointers past the end
        self._video_size = (h, w)
        self._make_groups(prompts)

        def chained() -> Iterator[Frame]:
            yield first
            yield from it

        yield from self._held(self._online(chained(), prompts))

    def _online(self, frames: Iterator[Frame], prompts: Sequence[Prompt]):
        by_frame: dict[int, list[Prompt]] = {}
        for p in prompts:
            by_frame.setdefault(p.frame_index, []).append(p)

        def needed(t: int) -> bool:
            return t in by_frame or any(g.first <= t for g in self.groups) or self._discovers(t)

        for frame, feats in self._with_features(frames, needed):
            t = frame.index
            if frame.rgb.shape[:2] != self._video_size:
                h, w = self._video_size
                raise ValueError(
                    f"frame {t} is {frame.rgb.shape[1]}x{frame.rgb.shape[0]}, the stream started at "
                    f"{w}x{h}: a stream must keep one size"
                )
            entries = {}
            for p in by_frame.pop(t, []):
                pts, labels = points_and_labels(p)
                entries[p.object_id] = self.model.encode_prompt(feats, t, self._video_size, pts, labels, p.mask)
            live = []
            tracked = [g for g in self.groups if g.first < t and t not in g.prompt_frames]
            for g in self.groups:
                if t in g.prompt_frames:
                    e = MemoryEntry.cat([entries[oid] for oid in g.object_ids])
                    live.append((g, *self._emit(t, False, g, *self._as_prompt_frame(g, t, e), None)))
            for g, result in zip(tracked, self._step(tracked, feats, t, False, frame.rgb)):
                live.append((g, *self._emit(t, False, g, *result, None)))
            live = self._after_tracking(t, feats, live, {})
            yield frame, self._frame_masks(t, self._ids_at(t, live, empty_before_first=True), {}, live)
        if by_frame:
            missing = sorted(by_frame)
            raise SourceTruncatedError(
                f"the stream ended before prompt frame {missing[0]}: prompt frames count from the first frame "
                "received; prompt an earlier frame"
            )

    def _as_prompt_frame(self, g: Group, t: int, e) -> tuple:
        """Keep entry e (a prompt's encoding, batch = g's objects) as g's prompt frame t; returns its
        result there (low-res logits, score logits), which the entry no longer holds."""
        low_res, score = e.low_res, e.score
        e.low_res = None
        g.cond[t] = e
        self.memory.prompted(g, t, low_res[:, 0].float().cpu().numpy())
        return low_res, score

    # ---- objects joining, re-prompts, holding frames back -----------------------------------------
    def _discovers(self, t: int) -> bool:
        # Asked ahead, in the decode thread: with discovery, objects may have joined by then.
        return self.discovery is not None or self.reprompts.due(t)

    def _after_tracking(self, t: int, feats, live: list, spooled: dict) -> list:
        """Re-prompts, new objects and confirmation on frame t, once every live group has its result.
        ``live``: [(group, low-res logits [B, h, w], score logits [B])]; returns it updated."""
        if feats is None:
            return live
        if self.reprompts.due(t):
            live = self._reprompt(t, feats, live, self.reprompts.take(t))
        d = self.discovery
        if d is None:
            return live
        if d.wants(t):
            grid = self.model.image_size // 4
            tracked = [low[i] > 0 for _, low, _ in live for i in range(len(low))]
            tracked += [to_grid(m, grid) for m, _ in spooled.values()]
            stack = np.stack(tracked) if tracked else np.zeros((0, grid, grid), dtype=bool)
            for p in d.admit(t, feats, stack):
                e = self.model.encode_prompt(feats, t, self._video_size, *points_and_labels(p), p.mask)
                g = Group((p.object_id,), (t,))
                result = self._as_prompt_frame(g, t, e)
                self._joined_at[p.object_id] = t
                self.groups.append(g)
                live.append((g, *self._emit(t, False, g, *result, None)))
        pending = d.pending()
        if pending:
            for g, low, sc in live:
                for i, oid in enumerate(g.object_ids):
                    if oid in pending and not d.observe(t, oid, bool(sc[i] > 0 and (low[i] > 0).any())):
                        self.groups = [x for x in self.groups if x is not g]
        return live

    def _reprompt(self, t: int, feats, live: list, boxes: Mapping[int, Box]) -> list:
        """Prompt on frame t, with its box, every object whose tracked mask has drifted off it: it leaves its
        group with its slice of every memory, and frame t becomes one of its prompt frames."""
        out = []
        for g, low, sc in live:
            drifted = self.reprompts.drifted(g, t, low, boxes, self._video_size)
            if not drifted:
                out.append((g, low, sc))
                continue
            keep = [i for i in range(len(g.object_ids)) if i not in drifted]
            groups = []
            if keep:
                groups.append(g.split(keep))
                out.append((groups[0], low[keep], sc[keep]))
            for i in drifted:
                oid = g.object_ids[i]
                ng = g.split([i])
                ng.fwd.pop(t, None)  # frame t becomes one of its prompt frames
                box_prompt = Prompt(oid, t, box=boxes[oid])
                e = self.model.encode_prompt(feats, t, self._video_size, *points_and_labels(box_prompt), None)
                result = self._as_prompt_frame(ng, t, e)
                self.reprompts.add_prompt_frame(ng, t)
                groups.append(ng)
                out.append((ng, *self._emit(t, False, ng, *result, None)))
            self.groups = [x for x in self.groups if x is not g] + groups
        return out

    def _held(self, items: Iterator) -> Iterator:
        return items if self.holdback is None else self.holdback.hold(items)

    def release_held(self) -> Iterator[tuple[Frame, FrameMasks]]:
        """The frames held back for confirmation, once the run has stopped (its end, or a signal that cut
        it short): the objects not confirmed by then are dropped from them, as from every earlier frame."""
        if self.holdback is not None:
            yield from self.holdback.release()

    def _emit(self, frame: int, reverse: bool, g: Group, low_res, score, spool: MaskSpool | None):
        """Hand a result to the hook; return it as NumPy (low-res logits [B, h, w], score logits [B]).
        With a spool (passes 0-2), finish it into video masks and park it there."""
        if self.step_hook is not None:
            self.step_hook(frame, reverse, g.object_ids, low_res)
        low = low_res[:, 0].float().cpu().numpy()
        sc = score[:, 0].float().cpu().numpy()
        if spool is not None:
            masks, probs = self._finish(low, sc)
            spool.put(frame, g.object_ids, masks, probs)
        return low, sc

    def _finish(self, low: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """NumPy/OpenCV only: hole filling, upsampling to the video, presence probability."""
        low = fill_holes(low, self.model.fill_hole_area)
        return to_video_masks(low, self._video_size), sigmoid(score)

    def _ids_at(self, t: int, live: list, empty_before_first: bool = False) -> tuple[tuple[int, ...], list[int]]:
        """(ids of the objects that exist on frame t, those of them not prompted yet, whose masks are
        empty there). Objects that joined after t are left out; with ``empty_before_first`` false,
        objects prompted later got frame t from the backward pass."""
        ids = {oid for g in self.groups for oid in g.object_ids if self._joined_at.get(oid, -1) <= t}
        all_ids = tuple(sorted(ids | {oid for g, _, _ in live for oid in g.object_ids}))
        empty: list[int] = []
        if empty_before_first or not self.backward:
            empty = [oid for g in self.groups if t < g.first for oid in g.object_ids]
        return all_ids, empty

    def _frame_masks(self, t: int, ids: tuple[tuple[int, ...], list[int]], spooled: dict, live: list) -> FrameMasks:
        """Frame t's masks: ``ids`` from :meth:`_ids_at`; ``spooled`` id -> (mask, probability); ``live``
        [(group, low-res logits, score logits)], finished here (in a worker thread)."""
        all_ids, empty_ids = ids
        results = dict(spooled)
        empty = np.zeros(self._video_size, dtype=bool)
        results.update({oid: (empty, 0.0) for oid in empty_ids})
        for g, low, sc in live:
            masks, probs = self._finish(low, sc)
            for i, oid in enumerate(g.object_ids):
                results[oid] = (masks[i], float(probs[i]))
        missing = [oid for oid in all_ids if oid not in results]
        if missing:
            raise RuntimeError(f"frame {t}: no result for objects {missing} (internal scheduling error)")
        h, w = self._video_size
        return FrameMasks(
            frame_index=t,
            object_ids=all_ids,
            masks=np.stack([results[oid][0] for oid in all_ids]) if all_ids else np.zeros((0, h, w), dtype=bool),
            scores=np.array([results[oid][1] for oid in all_ids], dtype=np.float32),
            labels=tuple(self.labels.get(oid) for oid in all_ids) if self.labels else (),
        )

    def _encode_prompt_frames(self, source: FrameSource, prompts: Sequence[Prompt], spool: MaskSpool) -> None:
        by_frame: dict[int, list[Prompt]] = {}
        for p in prompts:
            by_frame.setdefault(p.frame_index, []).append(p)
        for f in sorted(by_frame):
            frame = next(iter(source.frames(f, f + 1)), None)
            if frame is None:
                raise SourceTruncatedError(
                    f"prompt frame {f} cannot be decoded: the video ends before it (truncated or damaged); "
                    "re-encode or repair it, or prompt an earlier frame"
                )
            feats = self.model.image_features(self.model.preprocess(frame.rgb))
            if self._features is not None and any(f not in g.prompt_frames for g in self.groups):
                self._features.put(f, feats.backbone_out)  # another group tracks this frame in a later pass
            entries = {}
            for p in by_frame[f]:
                pts, labels = points_and_labels(p)
                entries[p.object_id] = self.model.encode_prompt(feats, f, self._video_size, pts, labels, p.mask)
            for g in self.groups:
                if f in g.prompt_frames:
                    e = MemoryEntry.cat([entries[oid] for oid in g.object_ids])
                    self._emit(f, False, g, *self._as_prompt_frame(g, f, e), spool)

    def _with_features(
        self, frames: Iterable[Frame], needed: Callable[[int], bool], keep: Callable[[int], bool] | None = None
    ) -> Iterator[tuple[Frame, Any]]:
        """Yield (frame, image features or None when no group tracks that frame).

        Features an earlier pass kept for the frame are read back instead of running the encoder again;
        ``keep(t)``: frame t's features are kept for a later pass (the forward sweep).

        Decoding and resizing (OpenCV) run ``prefetch`` frames ahead in a worker thread; torch work stays
        in this thread. The image encoder runs once per frame, whatever the number of groups. (Running it
        one frame ahead in a second thread was measured slower on 2 CPU cores: both compete for them.)
        """
        resize = self.model.resize

        def decoded() -> Iterator[tuple[Frame, Any]]:
            for frame in frames:
                yield frame, (resize(frame.rgb) if needed(frame.index) else None)

        def count(seconds: float) -> None:
            self.decode_seconds += seconds

        items = in_background(decoded(), self.prefetch, "tracker-decode", count) if self.prefetch else decoded()
        cache = self._features
        for frame, small in items:
            if small is None:
                yield frame, None
                continue
            later = keep is not None and keep(frame.index)
            kept = cache.pop(frame.index, later) if cache is not None else None
            if kept is not None:
                from .sam import ImageFeatures

                yield frame, ImageFeatures(kept)
                continue
            feats = self.model.image_features(self.model.to_input(small))
            if cache is not None and later:
                cache.put(frame.index, feats.backbone_out)
            yield frame, feats

    def _tracked_forward(self, t: int, warm_end: Mapping[int, int] | None = None) -> bool:
        """Whether the forward sweep will track some group on frame t (so its features are worth keeping);
        ``warm_end``: id(group) -> the frame its warm-up will end on, while that pass runs."""
        for g in self.groups:
            end = g.warm_end if warm_end is None else warm_end.get(id(g), g.warm_end)
            if g.first <= t and t > end and t not in g.prompt_frames:
                return True
        return False

    def _step(self, groups: Sequence[Group], feats, t: int, reverse: bool, rgb: np.ndarray) -> list[tuple[Any, Any]]:
        """Track ``groups`` on frame t (pixels ``rgb``), all in one call (SAM 2 batches those whose memory
        layouts agree): SAM 2 reads what the memory policy gives it; the policy keeps what it writes. Returns
        each group's (low-res logits, score logits)."""
        memory = self.memory
        if memory.sees_frames:
            memory.see(t, reverse, rgb)
        if not groups:
            return []
        requests = [
            TrackRequest(
                len(g.object_ids),
                memory.cond(g, t, reverse),
                memory.read(g, t, reverse),
                memory.pointers(g, t, reverse),
            )
            for g in groups
        ]
        judge = _PolicyJudge(memory, groups, t, reverse) if memory.judges else None
        out = []
        for g, e in zip(groups, self.model.track_many(feats, t, reverse, requests, self._num_frames, judge)):
            low_res = e.low_res
            e.low_res = None
            self.memory.write(g, t, reverse, e, low_res, e.score)
            out.append((low_res, e.score))
        return out

    def _warm_up(self, source: FrameSource, spool: MaskSpool, resume_at: int = -1):
        """Resumable: ``resume_at`` >= 0 continues at that frame (groups restored by the caller)."""
        spans = {}
        for g in self.groups:
            seed_mem, seed_ptr = self.memory.seed_frames(g)
            if seed_mem or seed_ptr:
                spans[id(g)] = (g, seed_mem, seed_ptr, max(seed_mem | seed_ptr))
        if not spans:
            return
        start = min(g.first for g, *_ in spans.values()) + 1
        stop = max(end for *_, end in spans.values()) + 1
        if resume_at >= 0:
            start = resume_at

        def active(t: int) -> list:
            return [s for s in spans.values() if s[0].first < t <= s[3]]

        ends = {key: min(end, stop - 1) for key, (_, _, _, end) in spans.items()}
        keep = lambda t: self._tracked_forward(t, ends)  # noqa: E731
        for frame, feats in self._with_features(source.frames(start, stop), lambda t: bool(active(t)), keep):
            t = frame.index
            yield from self._marker("warmup", t, 0, spool)
            self._since += 1
            warming = active(t)
            for g, *_ in warming:
                g.warm_end = t
            warming = [w for w in warming if t not in w[0].prompt_frames]
            results = self._step([w[0] for w in warming], feats, t, False, frame.rgb)
            for (g, seed_mem, seed_ptr, _), result in zip(warming, results):
                self._emit(t, False, g, *result, spool)
                if (t in seed_mem or t in seed_ptr) and t in g.fwd:  # what the policy wrote
                    e = g.fwd[t]
                    g.bwd[t] = replace(e, maskmem=e.maskmem if t in seed_mem else None)

    def _backward(self, source: FrameSource, spool: MaskSpool, resume_at: int = -1):
        """Resumable at a chunk's top frame ``resume_at`` (groups restored by the caller)."""
        top = max((g.first for g in self.groups), default=0)
        hi = top - 1 if resume_at < 0 else resume_at
        while hi >= 0:
            yield from self._marker("backward", hi, 0, spool)
            lo = max(0, hi - self.reverse_chunk + 1)
            chunk = list(source.frames(lo, hi + 1))
            if len(chunk) != hi + 1 - lo:
                raise SourceTruncatedError(
                    f"the video gave {len(chunk)} frames for {lo}..{hi}: it is truncated or damaged; "
                    "re-encode or repair it"
                )
            for frame, feats in self._with_features(reversed(chunk), lambda t: True, self._tracked_forward):
                t = frame.index
                self._since += 1
                active = [g for g in self.groups if g.first > t]
                for g, result in zip(active, self._step(active, feats, t, True, frame.rgb)):
                    self._emit(t, True, g, *result, spool)
            hi = lo - 1
        for g in self.groups:
            g.bwd.clear()

    def _live(self, t: int) -> list[Group]:
        """Groups that the final forward sweep must track on frame t (the others come from the spool)."""
        return [g for g in self.groups if g.first <= t and t > g.warm_end and t not in g.prompt_frames]

    def _forward(self, source: FrameSource, spool: MaskSpool, start: int = 0):
        # Turning logits into video-size masks is NumPy/OpenCV work: one worker thread does it, in
        # order, at most `prefetch` frames behind the model, so SAM 2 never waits for it.
        pending: deque[tuple[Frame, Future]] = deque()
        depth = max(1, self.prefetch)
        count = start

        def needed(t: int) -> bool:
            return bool(self._live(t)) or self._discovers(t)

        # The first checkpoint of the pass comes early: a long run stopped in its first minutes keeps its
        # first outputs (at 15 s a frame, 100 frames is 25 minutes).
        every = min(self.checkpoint_every, FIRST_CHECKPOINT)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="tracker-masks") as pool:
            for frame, feats in self._with_features(source.frames(start, None), needed):
                t = frame.index
                if self.checkpoint_every > 0 and self._since >= every:
                    every = self.checkpoint_every
                    # Everything before t is emitted first: the checkpoint is a clean cut.
                    while pending:
                        f, fut = pending.popleft()
                        yield f, fut.result()
                    yield from self._marker("forward", t, t, spool, force=True)
                self._since += 1
                count += 1
                groups = self._live(t)
                results = self._step(groups, feats, t, False, frame.rgb)
                live = [(g, *self._emit(t, False, g, *r, None)) for g, r in zip(groups, results)]
                spooled = spool.pop(t)
                live = self._after_tracking(t, feats, live, spooled)
                pending.append((frame, pool.submit(self._frame_masks, t, self._ids_at(t, live), spooled, live)))
                while len(pending) > depth or (pending and pending[0][1].done()):
                    f, fut = pending.popleft()
                    yield f, fut.result()
            while pending:
                f, fut = pending.popleft()
                yield f, fut.result()
        if count != self._num_frames:
            raise SourceTruncatedError(
                f"the video decoded to {count} frames but its index announces {self._num_frames}: "
                "it is truncated or damaged; re-encode or repair it"
            )


class _PolicyJudge:
    """A memory policy's verdicts on one frame's batches (rows named by request index -> group)."""

    def __init__(self, memory: MemoryPolicy, groups: Sequence[Group], t: int, reverse: bool) -> None:
        self.memory, self.groups, self.t, self.reverse = memory, groups, t, reverse

    def choose(self, owners: Sequence[tuple[int, int]], c: Candidates) -> Verdict:
        return self.memory.decide([(self.groups[i], lane) for i, lane in owners], self.t, self.reverse, c)

    def rechoose(self, owners: Sequence[tuple[int, int]], c: Candidates) -> Verdict:
        return self.memory.decide_retry([(self.groups[i], lane) for i, lane in owners], self.t, self.reverse, c)


def points_and_labels(p: Prompt) -> tuple[np.ndarray | None, np.ndarray | None]:
    pts: list[tuple[float, float]] = []
    labels: list[int] = []
    if p.box is not None:
        x0, y0, x1, y1 = p.box
        pts += [(x0, y0), (x1, y1)]
        labels += [2, 3]
    for x, y, lab in p.points:
        pts.append((x, y))
        labels.append(int(lab))
    if not pts:
        return None, None
    return np.asarray(pts, dtype=np.float32), np.asarray(labels, dtype=np.int32)
