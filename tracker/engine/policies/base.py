"""The base of the per-object memory policies (samurai, dam4sam, gated, guard): one group per object, banks
of remembered frames mapped onto SAM 2's memory slots, per-object rows of numbers, and the settings checks
every policy uses.

Memory slots. SAM 2 reads its non-prompt memories at fixed relative positions (t-1, t-2, ... for stride 1)
and its object pointers from the frames t-1 .. t-15. These policies fill those positions with the frames
*they* chose, most recent first (SAMURAI's own trick): the k-th most recent remembered frame is read as
frame t-k. Frames a policy adds as anchors are read as prompt frames (no temporal position), as DAM4SAM does.

Hooks a subclass may override (all public): :meth:`SlotMemory.grow_rows`, :meth:`~SlotMemory.reset_row`,
:meth:`~SlotMemory.slots`, :meth:`~SlotMemory.capacity`, :meth:`~SlotMemory.extra_memories`,
:meth:`~SlotMemory.own_state` / :meth:`~SlotMemory.load_own_state`, and the verdicts :meth:`~SlotMemory.decide`
and :meth:`~SlotMemory.decide_retry`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from ..memory import Group, MemoryPolicy
from ..motion import BoxFilter, mask_boxes
from ..reads import memory_reads, pointer_reads
from ..types import NO_OBJ_SCORE, Candidates, MemoryEntry, Verdict

Key = tuple[int, bool]  # (object id, reverse)


@dataclass
class Bank:
    """The frames one object remembers in one pass direction, oldest first (frame indices of its store)."""

    mem: list[int] = field(default_factory=list)  # read as memories (and pointers)
    ptr: list[int] = field(default_factory=list)  # read as object pointers
    anchors: list[int] = field(default_factory=list)  # read as prompt frames
    last: int = -1  # the frame tracked last (SAMURAI reads it whatever its quality)
    recent: int = -1  # the last frame with a mask (DAM4SAM always reads it)


@dataclass
class Pending:
    """What a verdict decided for one object on one frame, for :meth:`SlotMemory.write`."""

    mem: bool
    ptr: bool
    anchor: bool = False
    present: bool = True


class SlotMemory(MemoryPolicy):
    """Base of the policies here: one group per object; per-object banks of remembered frames mapped onto
    SAM 2's memory slots; per-object rows of numbers (``self.rows``); prompt-frame boxes to (re)start from."""

    per_object = True
    judges = True
    history = 10  # mask areas kept per object (for size checks)

    def __init__(self) -> None:
        self.rows: dict[Key, int] = {}
        self.banks: dict[Key, Bank] = {}
        self.prompt_boxes: dict[tuple[int, int], list[float]] = {}  # (object id, frame) -> low-res box, area
        self.started: np.ndarray = np.full(0, -1, dtype=np.int64)  # prompt frame each row started from
        self.last: np.ndarray = np.full(0, -1, dtype=np.int64)  # frame each row last tracked
        self.areas: np.ndarray = np.full((0, self.history), np.nan)  # recent non-empty mask areas
        self.filter = BoxFilter()
        self.pending: dict[tuple[int, bool, int], Pending] = {}
        self.frame_size: tuple[int, int] = (0, 0)

    # ---- rows --------------------------------------------------------------------------------------
    def _row(self, key: Key) -> int:
        if key not in self.rows:
            self.rows[key] = len(self.rows)
            self.banks[key] = Bank()
            self._grow(len(self.rows))
        return self.rows[key]

    def _grow(self, n: int) -> None:
        if n <= len(self.started):
            return
        extra = max(n, 2 * len(self.started), 4) - len(self.started)
        self.started = np.concatenate([self.started, np.full(extra, -1, dtype=np.int64)])
        self.last = np.concatenate([self.last, np.full(extra, -1, dtype=np.int64)])
        self.areas = np.concatenate([self.areas, np.full((extra, self.history), np.nan)])
        # A row whose prompt frame is still ahead is read (predicted, never started) with the others.
        self.filter.reserve(len(self.started))
        self.grow_rows(len(self.started))

    def grow_rows(self, n: int) -> None:
        """Subclasses grow their own per-row arrays to n rows."""

    def reset_row(self, r: int) -> None:
        """Subclasses clear their per-row numbers when a row (re)starts from a prompt frame."""

    def prompted(self, g: Group, t: int, low_res: np.ndarray) -> None:
        boxes = mask_boxes(low_res > 0)
        areas = (low_res > 0).sum(axis=(1, 2))
        self.frame_size = low_res.shape[-2:]
        for oid, box, area in zip(g.object_ids, boxes, areas):
            self.prompt_boxes[(oid, t)] = [*box.tolist(), float(area)]

    def start_rows(self, keys: Sequence[Key], groups: Sequence[Group], t: int) -> np.ndarray:
        """Rows of ``keys`` on frame t; a row whose last prompt frame before t (in its direction) is not
        the one it started from restarts there: its filter at the prompt's box, its counters cleared."""
        rows = np.array([self._row(k) for k in keys], dtype=np.int64)
        for r, (oid, reverse), g in zip(rows, keys, groups):
            behind = [f for f in g.prompt_frames if (f >= t if reverse else f <= t)]
            p = (min(behind) if reverse else max(behind)) if behind else (g.first)
            if self.started[r] != p:
                self.started[r], self.last[r] = p, p
                self.areas[r] = np.nan
                box = np.asarray(self.prompt_boxes.get((oid, p), [np.nan] * 5), dtype=np.float64)
                if np.isfinite(box).all():
                    self.filter.start(np.array([r]), box[None, :4])
                    self.areas[r, 0] = box[4]
                self.reset_row(int(r))
        return rows

    def predict(self, rows: np.ndarray, t: int, damping: np.ndarray | float = 1.0) -> np.ndarray:
        """Predicted boxes [N, 4] on frame t (the filter stepped over the frames since each row's last)."""
        steps = np.abs(t - self.last[rows])
        out = self.filter.boxes(rows)
        for k in range(1, int(steps.max(initial=0)) + 1):
            sel = rows[steps >= k]
            d = damping if np.isscalar(damping) else np.asarray(damping)[steps >= k]
            out[steps >= k] = self.filter.predict(sel, d)
        self.last[rows] = t
        return out

    def median_area(self, rows: np.ndarray) -> np.ndarray:
        """float [N]: the median of each row's remembered areas (NaN: none yet); np.nanmedian is 10x slower."""
        a = np.sort(np.where(np.isfinite(self.areas[rows]), self.areas[rows], np.inf), axis=1)
        count = np.isfinite(a).sum(axis=1)
        i = np.arange(len(rows))
        lo, hi = a[i, np.maximum(count - 1, 0) // 2], a[i, np.minimum(count // 2, a.shape[1] - 1)]
        with np.errstate(invalid="ignore"):
            return np.where(count > 0, (lo + hi) / 2, np.nan)

    def push_area(self, rows: np.ndarray, areas: np.ndarray) -> None:
        for r, a in zip(rows, areas):
            if a > 0:
                self.areas[r] = np.roll(self.areas[r], 1)
                self.areas[r, 0] = a

    # ---- memory ------------------------------------------------------------------------------------
    def seed_frames(self, g: Group) -> tuple[set[int], set[int]]:
        return set(), set()  # the backward pass starts from the prompt frames alone

    def cond(self, g: Group, t: int, reverse: bool) -> Mapping[int, MemoryEntry]:
        bank = self.banks.get((g.object_ids[0], reverse))
        if bank is None or not bank.anchors:
            return g.cond
        store = g.store(reverse)
        return {**g.cond, **{f: store[f] for f in bank.anchors}}

    def slots(self, bank: Bank) -> tuple[list[int], list[int]]:
        """(memory frames, pointer frames) to read, most recent first."""
        return bank.mem[::-1], bank.ptr[::-1]

    def read(self, g: Group, t: int, reverse: bool) -> Mapping[int, MemoryEntry]:
        bank = self.banks.get((g.object_ids[0], reverse))
        if bank is None:
            return {}
        geo, store = self.geometry, g.store(reverse)
        slots = memory_reads(t, reverse, geo.num_maskmem, geo.stride)[::-1]  # most recent slot first
        return {s: store[f] for s, f in zip(slots, self.slots(bank)[0]) if 0 <= s < geo.num_frames}

    def pointers(self, g: Group, t: int, reverse: bool) -> Mapping[int, MemoryEntry]:
        bank = self.banks.get((g.object_ids[0], reverse))
        if bank is None:
            return {}
        geo, store = self.geometry, g.store(reverse)
        slots = pointer_reads(t, reverse, geo.max_ptrs)
        return {s: store[f] for s, f in zip(slots, self.slots(bank)[1]) if 0 <= s < geo.num_frames}

    def capacity(self, bank: Bank) -> tuple[int, int]:
        """How many memory / pointer frames a bank keeps."""
        return self.geometry.num_maskmem - 1, self.geometry.max_ptrs - 1

    def write(self, g: Group, t: int, reverse: bool, entry: MemoryEntry, low_res: Any, score: Any) -> None:
        key = (g.object_ids[0], reverse)
        bank = self.banks[key]
        p = self.pending.pop((key[0], reverse, t), Pending(True, True))
        store = g.store(reverse)
        store[t] = entry
        bank.last = t
        if p.present:
            bank.recent = t
        if p.anchor:
            bank.anchors.append(t)
            if len(bank.anchors) > self.max_anchors:
                bank.anchors.pop(0)
        if p.mem:
            bank.mem.append(t)
        if p.ptr:
            bank.ptr.append(t)
        n_mem, n_ptr = self.capacity(bank)
        del bank.mem[: max(0, len(bank.mem) - n_mem)]
        del bank.ptr[: max(0, len(bank.ptr) - n_ptr)]
        self._trim(store, bank)

    max_anchors = 0

    def _trim(self, store: dict[int, MemoryEntry], bank: Bank) -> None:
        """Drop what no slot reads: whole entries, or the memory of pointer-only frames."""
        keep_mem = set(bank.mem) | set(bank.anchors) | self.extra_memories(bank)
        keep = keep_mem | set(bank.ptr)
        for f in list(store):
            if f not in keep:
                del store[f]
            elif f not in keep_mem and store[f].maskmem is not None:
                store[f].drop_memory()

    def extra_memories(self, bank: Bank) -> set[int]:
        return set()

    # ---- state ---------------------------------------------------------------------------------------
    def state(self) -> dict:
        return {
            "rows": [[oid, rev, r] for (oid, rev), r in self.rows.items()],
            "banks": [[oid, rev, b.mem, b.ptr, b.anchors, b.last, b.recent] for (oid, rev), b in self.banks.items()],
            "prompt_boxes": [[oid, f, box] for (oid, f), box in self.prompt_boxes.items()],
            "started": self.started.tolist(),
            "last": self.last.tolist(),
            "areas": np.nan_to_num(self.areas, nan=-1.0).tolist(),
            "filter": self.filter.state(),
            "size": list(self.frame_size),
            **self.own_state(),
        }

    def load_state(self, state: dict) -> None:
        if not state:
            return
        self.rows = {(oid, bool(rev)): r for oid, rev, r in state["rows"]}
        self.banks = {(oid, bool(rev)): Bank(*rest) for oid, rev, *rest in state["banks"]}
        self.prompt_boxes = {(oid, f): box for oid, f, box in state["prompt_boxes"]}
        self.started = np.asarray(state["started"], dtype=np.int64)
        self.last = np.asarray(state["last"], dtype=np.int64)
        areas = np.asarray(state["areas"], dtype=np.float64).reshape(-1, self.history)
        self.areas = np.where(areas < 0, np.nan, areas)
        self.filter.load_state(state["filter"])
        self.filter.reserve(len(self.started))
        self.frame_size = tuple(state["size"])  # type: ignore[assignment]
        self.load_own_state(state)

    def own_state(self) -> dict:
        return {}

    def load_own_state(self, state: dict) -> None:
        pass

    # ---- verdicts ------------------------------------------------------------------------------------
    def decide(self, rows: Sequence[tuple[Group, int]], t: int, reverse: bool, c: Candidates) -> Verdict:
        raise NotImplementedError

    def decide_retry(self, rows: Sequence[tuple[Group, int]], t: int, reverse: bool, c: Candidates) -> Verdict:
        """The verdict on the box-prompted second decode a :meth:`decide` asked for (its rows only)."""
        raise NotImplementedError(f"memory={self.name} asks for no retry")

    @staticmethod
    def keys_of(rows: Sequence[tuple[Group, int]], reverse: bool) -> tuple[list[Group], list[Key]]:
        """The groups of ``rows`` and their rows' keys (object id, direction)."""
        return [g for g, _ in rows], [(g.object_ids[lane], reverse) for g, lane in rows]

    @staticmethod
    def masks_of(c: Candidates, choice: np.ndarray) -> np.ndarray:
        return c.masks[np.arange(len(choice)), choice]


def setting(policy: str, key: str, value: Any, lo: float, hi: float, kind: type = float) -> Any:
    """A setting as ``kind`` within [lo, hi], else one error naming it and its range."""
    try:
        if isinstance(value, bool):  # float(True) is 1.0: a yes/no is not a number here
            raise TypeError
        v = kind(value)
        if kind is int and v != float(value):
            raise ValueError
    except (TypeError, ValueError):
        raise ValueError(f"memory.{key}={value!r} is not a number: memory={policy} takes {lo} to {hi}") from None
    if not lo <= v <= hi:
        raise ValueError(f"memory.{key}={value!r} is out of range: memory={policy} takes {lo} to {hi}")
    return v


def setting_span(policy: str, key: str, value: Any, lo: float, hi: float) -> tuple[float, float]:
    """A [low, high] setting within [lo, hi], low < high."""
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise ValueError(f"memory.{key}={value!r} must be two numbers [low, high] (memory={policy})")
    a, b = (setting(policy, key, x, lo, hi) for x in value)
    if a >= b:
        raise ValueError(f"memory.{key}={list(value)!r}: the first must be below the second (memory={policy})")
    return a, b


@dataclass(frozen=True)
class PolicySettings:
    """The base of a policy's settings record (``memory.<key>``): a frozen dataclass whose fields are the
    keys with their defaults; its ``__post_init__`` checks each (:meth:`check`, :meth:`check_span`), which
    stores the value as its kind and raises one line naming the key, the policy and the range."""

    policy: ClassVar[str] = ""

    def check(self, key: str, lo: float, hi: float, kind: type = float) -> None:
        object.__setattr__(self, key, setting(self.policy, key, getattr(self, key), lo, hi, kind))

    def check_span(self, key: str, lo: float, hi: float) -> None:
        object.__setattr__(self, key, setting_span(self.policy, key, getattr(self, key), lo, hi))

    def check_flag(self, key: str) -> None:
        if not isinstance(getattr(self, key), bool):
            raise ValueError(f"memory.{key}={getattr(self, key)!r} must be true or false (memory={self.policy})")


def solid(box: np.ndarray, size: float) -> bool:
    """A part that can be (some of) the object of typical side ``size``, not a sliver: its shorter side at
    least a fifth of the object's, its longer one 0.3."""
    w, h = box[2] - box[0], box[3] - box[1]
    return bool(min(w, h) >= 0.2 * size and max(w, h) >= 0.3 * size)


def line_offset(centre: np.ndarray, velocity: np.ndarray, box: np.ndarray) -> tuple[float, float, float]:
    """(distance, along, across): how far the centre of ``box`` [4] lies from ``centre`` [2], and how far of it
    along the direction of ``velocity`` [2] and across it (both 0 for a zero velocity), in pixels."""
    d = np.array([(box[0] + box[2]) / 2 - centre[0], (box[1] + box[3]) / 2 - centre[1]])
    speed = float(np.hypot(velocity[0], velocity[1]))
    if speed == 0:
        return float(np.hypot(d[0], d[1])), 0.0, 0.0
    u = np.asarray(velocity, dtype=np.float64) / speed
    return float(np.hypot(d[0], d[1])), float(d @ u), float(abs(d[0] * u[1] - d[1] * u[0]))


def inside_of(box: np.ndarray, outer: np.ndarray) -> float:
    """The fraction of ``box`` [4] that lies inside ``outer`` [4]."""
    w = max(0.0, min(box[2], outer[2]) - max(box[0], outer[0]))
    h = max(0.0, min(box[3], outer[3]) - max(box[1], outer[1]))
    area = (box[2] - box[0]) * (box[3] - box[1])
    return float(w * h / area) if area > 0 else 0.0


def only_part(logits: np.ndarray, part: np.ndarray) -> np.ndarray:
    """Low-res ``logits`` [h, w] with every foreground pixel outside ``part`` (bool [h, w]) made background.
    The background keeps SAM 2's own logits: replacing all of it would move the upsampled edge inward."""
    return np.where((logits > 0) & ~part, NO_OBJ_SCORE, logits).astype(np.float32)


def best_of(c: Candidates, weights: np.ndarray) -> np.ndarray:
    """The option token with the highest weight per row: weights [N, len(options)]."""
    return np.asarray(c.options)[np.argmax(weights, axis=1)]
