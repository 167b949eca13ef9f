"""The records the engine's parts share: SAM 2's model (:mod:`.sam`), the propagator and the memory
policies. No torch and no sam2 at import: a policy is NumPy over :class:`Candidates` and
:class:`Verdict`, and only holds :class:`MemoryEntry` tensors it is given."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    from torch import Tensor

NO_OBJ_SCORE = -1024.0  # the logits of a mask whose object is absent (sam2.modeling.sam2_base's; sam.py checks)


@dataclass
class MemoryEntry:
    """SAM 2's output for a batch of B objects on one frame: what later frames read, and the masks.

    maskmem: bf16 [B, C_mem, S/16, S/16] or None (dropped once no later frame reads it);
    obj_ptr: [B, C] float32; low_res: float32 [B, 1, S/4, S/4] mask logits (None once emitted);
    score: float32 [B, 1] object score logits.

    ``projected``: what the engine keeps of ``maskmem`` when asked to (``model.kv_cache``): each memory
    attention layer's values, layer index -> [B, H'*W', C]; made from ``maskmem`` alone, so never copied
    to another entry (not an ``__init__`` field) and dropped with it (:meth:`drop_memory`).
    """

    maskmem: Tensor | None
    obj_ptr: Tensor
    low_res: Tensor | None
    score: Tensor
    projected: dict[int, Tensor] = field(default_factory=dict, init=False, repr=False, compare=False)

    def drop_memory(self) -> None:
        """Keep only the pointer and score: no later frame reads this frame's memory."""
        self.maskmem = None
        self.projected.clear()

    @staticmethod
    def cat(entries: list[MemoryEntry]) -> MemoryEntry:
        """The entries of several batches as one (rows in order)."""
        if len(entries) == 1:
            return entries[0]
        import torch  # only ever called with tensors, by the engine that holds them

        def cat_or_none(xs: list[Tensor | None]) -> Tensor | None:
            return None if any(x is None for x in xs) else torch.cat(xs, dim=0)  # type: ignore[arg-type]

        return MemoryEntry(
            maskmem=cat_or_none([e.maskmem for e in entries]),
            obj_ptr=torch.cat([e.obj_ptr for e in entries], dim=0),
            low_res=cat_or_none([e.low_res for e in entries]),
            score=torch.cat([e.score for e in entries], dim=0),
        )


@dataclass(frozen=True)
class TrackRequest:
    """One group to track on a frame: ``batch`` objects sharing one memory layout, with their prompt-frame
    entries and the tracked-frame entries the memory policy gives SAM 2 to read (frame -> entry); a policy
    may give the object pointers' entries apart (``pointers``)."""

    batch: int
    cond: Mapping[int, MemoryEntry]
    recent: Mapping[int, MemoryEntry]
    pointers: Mapping[int, MemoryEntry] | None = None  # frame -> entry for object pointers (None: recent)


@dataclass
class Candidates:
    """What SAM 2's mask decoder proposes for B objects on a tracked frame, as NumPy for a memory policy.

    ``masks``: float32 [B, 4, h, w] low-res logits of the decoder's four output tokens (0: the single-mask
    output; 1-3: the multimask outputs), NO_OBJ_SCORE everywhere where the object score logit is <= 0;
    ``ious``: float32 [B, 4] predicted IoU; ``score``: float32 [B] object score logits; ``chosen``: int64 [B]
    the token SAM 2 itself uses; ``options``: the tokens SAM 2 chooses among (1-3 for a model that tracks
    with multimask outputs, SAM 2.1's checkpoints; 0 for one that tracks with a single mask);
    ``appearance``: float32 [B, C] the frame's top-level backbone features (before memory) averaged under
    SAM 2's chosen mask less their mean over the frame, unit length (zeros where the mask is empty): what
    the object looks like, for telling look-alikes from different-looking objects."""

    masks: np.ndarray
    ious: np.ndarray
    score: np.ndarray
    chosen: np.ndarray
    options: tuple[int, ...]
    appearance: np.ndarray | None = None


@dataclass
class Verdict:
    """A memory policy's answer for the B objects of :class:`Candidates`: ``choice`` int [B] the token
    used (its object pointer; one of ``options``), ``mask`` float32 [B, h, w] the low-res logits shown and
    encoded into memory, ``absent`` bool [B] objects shown empty (score logit made negative), and
    ``retry`` float32 [B, 4] boxes (x0, y0, x1, y1 in low-res pixels; NaN rows: none) where the decoder is
    run again, prompted with the box, and the policy asked once more."""

    choice: np.ndarray
    mask: np.ndarray
    absent: np.ndarray
    retry: np.ndarray | None = None


class Judge(Protocol):
    """Decides, for the objects of a batch, from SAM 2's candidates (a memory policy's hook): ``owners``
    gives each row's (request index, row within that request)."""

    def choose(self, owners: Sequence[tuple[int, int]], c: Candidates) -> Verdict:
        """The verdict on the decoder's first run."""
        ...

    def rechoose(self, owners: Sequence[tuple[int, int]], c: Candidates) -> Verdict:
        """The verdict on its box-prompted second run for the rows a first verdict asked it for (their
        ``retry`` is ignored)."""
        ...


@dataclass(frozen=True)
class Passes:
    """How the propagator walks a video. ``backward``: an object exists before its first prompt frame too
    (a backward pass from it; False is the semi-supervised VOS protocol: empty masks there);
    ``reverse_chunk``: frames decoded at once for a backward pass; ``prefetch``: frames decoded ahead of
    the model (0: none, as real time needs)."""

    backward: bool = True
    reverse_chunk: int = 16
    prefetch: int = 8

    def __post_init__(self) -> None:
        if not isinstance(self.reverse_chunk, int) or self.reverse_chunk < 1:
            raise ValueError(f"reverse_chunk={self.reverse_chunk!r} must be an integer >= 1")
        if not isinstance(self.prefetch, int) or self.prefetch < 0:
            raise ValueError(f"prefetch={self.prefetch!r} must be an integer >= 0")


@dataclass(frozen=True)
class Checkpoints:
    """``every`` > 0: a run yields a checkpoint about every that many frames of each pass (the forward
    pass's first one sooner); ``spool_path``: the results that wait for their frame are kept in a file
    that outlives the process (``OUT/.resume/``), else in memory."""

    every: int = 0
    spool_path: str | None = None


EVERY_PASS = Passes()
NO_CHECKPOINTS = Checkpoints()
