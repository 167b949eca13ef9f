"""New objects joining a run: candidates found on a frame are compared with what is tracked there, the
new ones start objects with the next free ids, and those that do not persist are dropped again.

Candidates come from the automatic mask generator (every ``every`` frames and on ``frames``) and/or from
detections without track ids (every frame that has some). A generated mask is new when its IoU with
every tracked mask is below ``new_iou`` and at most ``max_covered`` of it lies under tracked masks; a
detected box is new when its IoU with every tracked mask's box is below ``match_iou``. Everything is
compared on SAM 2's low-resolution mask grid (S/4 x S/4), where the tracker's own logits live.

A new object is *pending* for ``confirm`` frames: it is kept when its mask is present (not empty, with a
positive object score) on every one of them, and dropped from the run and from every output otherwise.
Objects found on the run's seed frame are not pending: they are the run's first objects.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..masks import box_iou_matrix, grid_boxes
from ..records import Prompt
from .generator import Candidate, MaskGenerator

Box = tuple[float, float, float, float]
log = logging.getLogger("tracker")


@dataclass(frozen=True)
class DiscoverySettings:
    every: int = 0  # 0: off
    frames: tuple[int, ...] = ()  # further frames to look on (prompts=auto's prompts.frames after the first)
    new_iou: float = 0.1
    max_covered: float = 0.5
    confirm: int = 15
    match_iou: float = 0.3  # detections without ids: box IoU with a tracked mask's box that matches it
    max_objects: int = 1000  # ids handed out at most (a run that keeps finding things stops adding)

    def __post_init__(self) -> None:
        checks = [
            ("every", self.every >= 0, "an integer >= 0 (0: off)"),
            ("new_iou", 0.0 < self.new_iou <= 1.0, "in (0, 1]"),
            ("max_covered", 0.0 <= self.max_covered <= 1.0, "in [0, 1]"),
            ("confirm", self.confirm >= 0, "an integer >= 0 (0: keep every new object)"),
            ("match_iou", 0.0 < self.match_iou <= 1.0, "in (0, 1]"),
            ("max_objects", self.max_objects >= 0, "an integer >= 0 (0: none may join)"),
        ]
        for name, ok, what in checks:
            if not ok:
                raise ValueError(f"discover.{name}={getattr(self, name)!r} must be {what}")
        bad = [f for f in self.frames if f < 0]
        if bad:
            raise ValueError(f"prompts.frames holds {bad[0]}: frames count from 0")


@dataclass
class Joined:
    """An object that joined the run on ``frame``: ``by`` auto | detection; ``kept`` None while pending."""

    object_id: int
    frame: int
    by: str
    kept: bool | None = None
    present: int = field(default=0, repr=False)  # frames present since it joined

    def as_dict(self) -> dict:
        return {"id": self.object_id, "frame": self.frame, "by": self.by, "kept": self.kept}


def new_candidates(cands: list[Candidate], known: np.ndarray, new_iou: float, max_covered: float) -> list[Candidate]:
    """The generated masks that overlap none of the ``known`` masks (bool [N, g, g]) nor a candidate kept
    before them: mask IoU below ``new_iou`` with each, and at most ``max_covered`` of it under them."""
    out: list[Candidate] = []
    taken = known
    for c in cands:
        m = c.binary
        area = m.sum()
        if area == 0:
            continue
        if len(taken):
            inter = (taken & m).reshape(len(taken), -1).sum(1)
            union = (taken | m).reshape(len(taken), -1).sum(1)
            if (inter / np.maximum(union, 1)).max() >= new_iou:
                continue
            if (taken.any(0) & m).sum() / area > max_covered:
                continue
        out.append(c)
        taken = np.concatenate([taken, m[None]]) if len(taken) else m[None]
    return out


class Discovery:
    """Which candidates become objects (:meth:`admit`), and which of them stay (:meth:`observe`)."""

    def __init__(
        self,
        settings: DiscoverySettings,
        video_size: tuple[int, int],
        next_id: int,
        generator: MaskGenerator | None = None,
        detections: Mapping[int, Sequence[Box]] | None = None,
        seed_frame: int | None = None,
        max_id: int = 2**31 - 1,
    ) -> None:
        """``detections``: frame -> boxes (video pixels) without track ids. ``seed_frame``: objects found
        there are the run's first (never pending)."""
        self.settings, self.video_size = settings, video_size
        self.generator, self.detections = generator, dict(detections or {})
        self.seed_frame, self.max_id = seed_frame, max_id
        self.next_id = next_id
        self._looked: int | None = None  # the last frame the generator ran on
        self.joined: list[Joined] = []
        self._pending: dict[int, Joined] = {}
        self.dropped: set[int] = set()
        self.vanished = 0  # found masks empty at video size (not made objects)

    # ---- where to look --------------------------------------------------------------------------
    def _generates(self, t: int) -> bool:
        s = self.settings
        # Every K frames counted from the last look, not t % K: in real time frames are dropped, and a
        # dropped frame must not skip a look.
        due = s.every > 0 and (self._looked is None or t - self._looked >= s.every)
        return self.generator is not None and (t == self.seed_frame or t in s.frames or due)

    def wants(self, t: int) -> bool:
        """Whether frame t is looked at (its image features are then needed)."""
        return self._generates(t) or t in self.detections

    # ---- admission -----------------------------------------------------------------------------
    def _new_masks(self, cands: list[Candidate], tracked: np.ndarray) -> list[Candidate]:
        return new_candidates(cands, tracked, self.settings.new_iou, self.settings.max_covered)

    def _new_boxes(self, boxes: Sequence[Box], tracked: np.ndarray) -> list[Box]:
        """Detected boxes that match no tracked mask's box (nor a box admitted before them)."""
        known = grid_boxes(tracked, self.video_size)
        known = known[known[:, 2] > known[:, 0]]  # empty masks have no box
        out: list[Box] = []
        for b in boxes:
            arr = np.array([b], dtype=np.float64)
            if len(known) and box_iou_matrix(arr, known).max() >= self.settings.match_iou:
                continue
            out.append(b)
            known = np.concatenate([known, arr])
        return out

    def admit(self, t: int, feats, tracked: np.ndarray) -> list[Prompt]:
        """The prompts of the objects that join on frame t, with new ids. ``tracked``: bool [N, g, g],
        the masks tracked on frame t (SAM 2's low-res grid, g = S/4)."""
        prompts: list[Prompt] = []
        found: list[tuple[str, Box | None, np.ndarray | None]] = []  # (how, box, mask)
        if self._generates(t):
            self._looked = t
            skip = tracked.any(0) if len(tracked) else None
            for c in self._new_masks(self.generator.generate(feats, skip), tracked):  # type: ignore[union-attr]
                found.append(("auto", None, c.video_mask(self.video_size)))
                tracked = np.concatenate([tracked, c.binary[None]])
        for b in self._new_boxes(self.detections.pop(t, ()), tracked):
            found.append(("detection", b, None))
        for by, box, mask in found:
            if len(self.joined) >= self.settings.max_objects or self.next_id > self.max_id:
                break
            if mask is not None and not mask.any():
                # Non-empty on the low-res grid, empty at video size (a speck): no object, not an error.
                self.vanished += 1
                log.info("frame %d: a found mask vanishes at video size; no object made of it", t)
                continue
            oid = self.next_id
            self.next_id += 1
            j = Joined(oid, t, by)
            if t == self.seed_frame or self.settings.confirm == 0:
                j.kept = True
            else:
                self._pending[oid] = j
            self.joined.append(j)
            prompts.append(Prompt(oid, t, box=box, mask=mask))
        return prompts

    # ---- confirmation --------------------------------------------------------------------------
    def pending(self) -> set[int]:
        return set(self._pending)

    def observe(self, t: int, object_id: int, present: bool) -> bool:
        """A pending object's result on frame t (after the one it joined on); False: drop it now."""
        j = self._pending.get(object_id)
        if j is None or t <= j.frame:
            return True
        if not present:
            j.kept = False
            self.dropped.add(object_id)
            del self._pending[object_id]
            return False
        j.present += 1
        if j.present >= self.settings.confirm:
            j.kept = True
            del self._pending[object_id]
        return True

    def decided(self, t: int) -> bool:
        """Whether every object that joined on or before frame t is kept or dropped."""
        return all(j.frame > t for j in self._pending.values())

    def finish(self) -> None:
        """The video ended: objects still pending had too few frames to be confirmed, and are dropped."""
        for oid, j in self._pending.items():
            j.kept = False
            self.dropped.add(oid)
        self._pending.clear()

    def summary(self) -> dict:
        """For run.json: every object that joined, and the counts."""
        return {
            "joined": [j.as_dict() for j in self.joined],
            "kept": sum(j.kept is True for j in self.joined),
            "dropped": len(self.dropped),
            "vanished": self.vanished,
        }
