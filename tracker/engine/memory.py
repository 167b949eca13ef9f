"""Per-object memory and the memory policy: the seam where long-video strategies plug into the engine.

A :class:`Group` holds the memory of objects that share one set of prompt frames (one batch for SAM 2):
prompt-frame entries and, per pass direction, entries of tracked frames. A :class:`MemoryPolicy` decides
which tracked frames are written to that memory, which entries SAM 2 reads back when it tracks a frame,
and what may be dropped because nothing can read it any more (so the state stays bounded). The engine
takes a policy object; ``memory=sam2`` (:class:`Sam2Memory`) is exactly upstream SAM 2's behaviour.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from .reads import memory_reads, pointer_reads
from .types import Candidates, MemoryEntry, Verdict


def _entry_state(e: MemoryEntry) -> dict:
    return {
        "maskmem": None if e.maskmem is None else e.maskmem.cpu(),
        "obj_ptr": e.obj_ptr.cpu(),
        "score": e.score.cpu(),
    }


def _entry_from(state: dict, device: Any) -> MemoryEntry:
    mem = state["maskmem"]
    return MemoryEntry(
        maskmem=None if mem is None else mem.to(device),
        obj_ptr=state["obj_ptr"].to(device),
        low_res=None,
        score=state["score"].to(device),
    )


def _tensor_problem(x: Any, shape: Sequence[int | None]) -> str | None:
    """None if ``x`` is a tensor of ``shape`` (None: any size) with finite values, else what is wrong."""
    if not hasattr(x, "shape") or not hasattr(x, "isfinite"):
        return f"a {type(x).__name__}, not a tensor"
    if len(x.shape) != len(shape) or any(s is not None and s != n for s, n in zip(shape, x.shape)):
        return f"shape {tuple(x.shape)}"
    if x.is_floating_point() and not bool(x.isfinite().all()):
        return "values that are not finite"
    return None


def check_states(
    groups: Sequence[Mapping[str, Any]], maskmem_pos: Any, sizes: Mapping[str, tuple[int, ...]] | None = None
) -> str | None:
    """What is wrong with the groups' saved entries (from :meth:`Group.state`, read back from a checkpoint
    anyone may have written), or None: every tensor has a row per object, the same sizes as all the others
    (pointer [B, C], score [B, 1], memory [B, C_mem, h, w] or None) and finite values. ``sizes``: the
    model's own (``obj_ptr``: (C,), ``maskmem``: (C_mem, h, w)), when known."""
    dims: dict[str, tuple[int, ...]] = dict(sizes or {})
    for g in groups:
        b = len(g["object_ids"])
        for k in ("cond", "fwd", "bwd"):
            for t, e in g[k].items():
                if not isinstance(e, Mapping) or set(e) != {"maskmem", "obj_ptr", "score"}:
                    return f"the {k} entry of frame {t} is not an entry"
                for name, rank in (("obj_ptr", 2), ("score", 2), ("maskmem", 4)):
                    if name == "maskmem" and e[name] is None:
                        continue
                    shape = (b, *dims.get(name, (1,) if name == "score" else (None,) * (rank - 1)))
                    problem = _tensor_problem(e[name], shape)
                    if problem is not None:
                        return f"the {k} {name} of frame {t} has {problem}"
                    dims[name] = tuple(e[name].shape[1:])
    if maskmem_pos is not None:
        problem = _tensor_problem(maskmem_pos, (1, *dims.get("maskmem", (None, None, None))))
        if problem is not None:
            return f"maskmem_pos has {problem}"
    return None


def _rows(e: MemoryEntry, rows: list[int]) -> MemoryEntry:
    return MemoryEntry(
        maskmem=None if e.maskmem is None else e.maskmem[rows],
        obj_ptr=e.obj_ptr[rows],
        low_res=None if e.low_res is None else e.low_res[rows],
        score=e.score[rows],
    )


@dataclass
class Group:
    """Objects sharing one set of prompt frames, hence one memory layout: a batch for SAM 2. Each entry
    holds one row per object (batch B = ``len(object_ids)``)."""

    object_ids: tuple[int, ...]
    prompt_frames: tuple[int, ...]
    cond: dict[int, MemoryEntry] = field(default_factory=dict)  # prompt frame -> entry
    fwd: dict[int, MemoryEntry] = field(default_factory=dict)  # forward pass: tracked frame -> entry
    bwd: dict[int, MemoryEntry] = field(default_factory=dict)  # backward pass: likewise
    warm_end: int = -1  # last frame the warm-up pass tracked forward (-1: no warm-up)

    @property
    def first(self) -> int:
        return self.prompt_frames[0]

    def store(self, reverse: bool) -> dict[int, MemoryEntry]:
        return self.bwd if reverse else self.fwd

    def split(self, rows: list[int]) -> Group:
        """The objects ``rows`` as a group of their own, with their slices of this group's memory."""
        ng = Group(tuple(self.object_ids[i] for i in rows), self.prompt_frames, warm_end=self.warm_end)
        for k in ("cond", "fwd", "bwd"):
            getattr(ng, k).update({f: _rows(e, rows) for f, e in getattr(self, k).items()})
        return ng

    def state(self) -> dict:
        """Plain tensors and numbers (for ``torch.save``; tensors on the CPU)."""
        return {
            "object_ids": list(self.object_ids),
            "prompt_frames": list(self.prompt_frames),
            "warm_end": self.warm_end,
            **{k: {t: _entry_state(e) for t, e in getattr(self, k).items()} for k in ("cond", "fwd", "bwd")},
        }

    @staticmethod
    def from_state(state: dict, device: Any) -> Group:
        g = Group(tuple(state["object_ids"]), tuple(state["prompt_frames"]), warm_end=state["warm_end"])
        for k in ("cond", "fwd", "bwd"):
            getattr(g, k).update({t: _entry_from(e, device) for t, e in state[k].items()})
        return g

    def counts(self) -> dict[str, int]:
        """How many memories / pointers each pass holds (for tests and monitoring)."""
        return {
            "objects": len(self.object_ids),
            "prompt_frames": len(self.cond),
            "fwd_memories": sum(e.maskmem is not None for e in self.fwd.values()),
            "fwd_pointers": len(self.fwd),
            "bwd_memories": sum(e.maskmem is not None for e in self.bwd.values()),
            "bwd_pointers": len(self.bwd),
            "low_res_kept": sum(e.low_res is not None for d in (self.fwd, self.bwd) for e in d.values()),
            # memory attention's projections kept (model.kv_cache), and of them any kept without a memory
            "projections": sum(len(e.projected) for d in (self.cond, self.fwd, self.bwd) for e in d.values()),
            "stray_projections": sum(
                len(e.projected) for d in (self.cond, self.fwd, self.bwd) for e in d.values() if e.maskmem is None
            ),
        }


@dataclass(frozen=True)
class Geometry:
    """What a policy needs to know of the model and the video: SAM 2's memory size and stride, the
    pointers it reads, the frame count (2**31-1 for a stream)."""

    num_maskmem: int
    stride: int
    max_ptrs: int
    num_frames: int


P = TypeVar("P", bound="type[MemoryPolicy]")

MEMORY_POLICIES: dict[str, type[MemoryPolicy]] = {}  # name -> class; tracker.engine.policies fills it


def register(cls: P) -> P:
    """Class decorator: the policy ``cls.name`` is ``memory=<name>``."""
    if cls.name in MEMORY_POLICIES and MEMORY_POLICIES[cls.name] is not cls:
        raise ValueError(f"memory={cls.name!r} is registered twice ({MEMORY_POLICIES[cls.name].__module__})")
    MEMORY_POLICIES[cls.name] = cls
    return cls


class MemoryPolicy:
    """Which tracked frames enter a group's memory and which entries SAM 2 reads back.

    The engine calls, for a group tracking frame t in one direction: :meth:`read` (the entries SAM 2 is
    given, keyed by frame), then :meth:`write` with the new entry and its outputs (low-res logits float32
    [B, 1, h, w], score logits float32 [B, 1]). A policy keeps the store bounded (memory flat in video
    length) and says which frames after a group's first prompt frame its backward pass reads
    (:meth:`seed_frames`, produced by the warm-up pass). :meth:`state` / :meth:`load_state` carry its
    own state through a checkpoint."""

    name: ClassVar[str]
    per_object: ClassVar[bool] = False  # one group per object (else one per set of prompt frames)
    judges: ClassVar[bool] = False  # it sees SAM 2's candidates before the memory encoder (decide)
    sees_frames: ClassVar[bool] = False  # it is shown each frame's pixels before tracking (see)
    # Its settings record (``memory.<key>``): a frozen dataclass of the keys and defaults that checks itself
    # (one line naming the key and the range); the constructor takes one. None: it has no settings.
    Settings: ClassVar[type | None] = None

    def bind(self, geometry: Geometry) -> None:
        self.geometry = geometry

    def read(self, g: Group, t: int, reverse: bool) -> Mapping[int, MemoryEntry]:
        raise NotImplementedError

    def write(self, g: Group, t: int, reverse: bool, entry: MemoryEntry, low_res: Any, score: Any) -> None:
        raise NotImplementedError

    def seed_frames(self, g: Group) -> tuple[set[int], set[int]]:
        raise NotImplementedError

    def pointers(self, g: Group, t: int, reverse: bool) -> Mapping[int, MemoryEntry] | None:
        """The entries SAM 2 reads object pointers from, if not those of :meth:`read`."""
        return None

    def cond(self, g: Group, t: int, reverse: bool) -> Mapping[int, MemoryEntry]:
        """The entries SAM 2 reads as prompt frames (default: the group's prompt frames)."""
        return g.cond

    def prompted(self, g: Group, t: int, low_res: Any) -> None:
        """Frame t is a prompt frame of g's objects, with these outputs (low-res logits float32 [B, h, w])."""

    def decide(self, rows: Sequence[tuple[Group, int]], t: int, reverse: bool, c: Candidates) -> Verdict:
        """(``judges`` policies) The verdict on SAM 2's candidates ``c`` for ``rows`` (group, row within it)
        on frame t."""
        raise NotImplementedError

    def decide_retry(self, rows: Sequence[tuple[Group, int]], t: int, reverse: bool, c: Candidates) -> Verdict:
        """(``judges`` policies) The verdict on the box-prompted second decode that :meth:`decide` asked for
        (those rows only)."""
        raise NotImplementedError

    def see(self, t: int, reverse: bool, rgb: Any) -> None:
        """(``sees_frames`` policies) Frame t's pixels (uint8 [H, W, 3]) before its objects are tracked."""

    def state(self) -> dict:
        return {}

    def load_state(self, state: dict) -> None:
        """Restore :meth:`state` (a policy without state of its own has nothing to restore)."""


@register
class Sam2Memory(MemoryPolicy):
    """Upstream SAM 2: every tracked frame is written; SAM 2 reads the last ``num_maskmem - 1`` memories
    (t-1 and the strided ones before it) and ``max_obj_ptrs - 1`` pointers. An entry's memory is dropped
    once no later frame reads it, the entry once neither its memory nor its pointer is read."""

    name = "sam2"

    def read(self, g: Group, t: int, reverse: bool) -> Mapping[int, MemoryEntry]:
        return g.store(reverse)

    def write(self, g: Group, t: int, reverse: bool, entry: MemoryEntry, low_res: Any, score: Any) -> None:
        store = g.store(reverse)
        store[t] = entry
        mem, ptr = self.keep_after(t, reverse)
        for s in list(store):
            if s not in mem and s not in ptr:
                del store[s]
            elif s not in mem and store[s].maskmem is not None:
                store[s].drop_memory()

    def keep_after(self, t: int, reverse: bool) -> tuple[set[int], set[int]]:
        """Frames (memories, pointers) that tracking after frame t in this direction can still read."""
        geo = self.geometry
        step = -1 if reverse else 1
        mem: set[int] = {t}
        for k in range(1, geo.stride + 2):
            mem.update(memory_reads(t + k * step, reverse, geo.num_maskmem, geo.stride))
        ptr = set(pointer_reads(t + step, reverse, geo.max_ptrs))
        return mem, ptr

    def seed_frames(self, g: Group) -> tuple[set[int], set[int]]:
        """Forward-pass frames after g.first that g's backward pass reads (empty if it has none)."""
        if g.first == 0:
            return set(), set()
        geo = self.geometry
        mem: set[int] = set()
        for t in range(g.first - 1, max(-1, g.first - 3 - geo.stride), -1):
            mem.update(s for s in memory_reads(t, True, geo.num_maskmem, geo.stride) if s > g.first)
        ptr = {s for s in pointer_reads(g.first - 1, True, geo.max_ptrs) if s > g.first}
        limit = geo.num_frames - 1
        return {s for s in mem if s <= limit}, {s for s in ptr if s <= limit}
