"""``gated``: motion-gated presence and memory (ours, first pass; ``guard`` is its successor)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..memory import Group, register
from ..motion import BoxFilter, box_iou, components, mask_boxes
from ..types import Candidates, Verdict
from .base import Key, Pending, PolicySettings, SlotMemory, inside_of, line_offset, only_part, solid

GOING_OUT = 0.02  # a part cut by the frame's border: this share of its size will do for an object going out
COMING_BACK = 0.1  # and this for a lost one coming back (a sliver there may be anything coming in)
MERGED = 0.5  # two objects' masks overlapping this much (IoU) are one mask given to both: one of the two is not
#              there and which is unknown, so neither is remembered (one part of the other, cut: may be told apart)


@dataclass(frozen=True)
class GatedSettings(PolicySettings):
    """``memory=gated``'s keys (configs/memory/gated.yaml; the class docstring says what each does)."""

    policy: ClassVar[str] = "gated"
    stable_frames: int = 5
    gate_iou: float = 0.3
    size_range: tuple[float, float] = (0.4, 2.5)
    retry_iou: float = 0.5
    lane: float = 0.6
    memory_iou: float = 0.5
    memory_size: tuple[float, float] = (0.6, 1.6)
    overlap: float = 0.25
    velocity_noise: float = 0.05
    coast: int = 8
    retry_size: tuple[float, float] = (0.7, 1.3)
    alike: float = 0.99
    entry: float = 0.5

    def __post_init__(self) -> None:
        self.check("stable_frames", 0, 10_000, int)
        self.check("gate_iou", 0, 1)
        self.check_span("size_range", 0, 100)
        self.check("retry_iou", 0, 1)
        self.check("lane", 0, 100)
        self.check("memory_iou", 0, 1)
        self.check_span("memory_size", 0, 100)
        self.check("overlap", 0, 10)
        self.check("velocity_noise", 0, 10)
        self.check("coast", 0, 10_000, int)
        self.check_span("retry_size", 0, 100)
        self.check("alike", -1, 1)
        self.check("entry", 0, 100)


@register
class GatedMemory(SlotMemory):
    """Ours: motion-gated presence and memory, for every object at once.

    - Once an object's track is stable (``stable_frames`` confident frames), each of SAM 2's candidate masks
      is split into its connected parts and the part that agrees best with the object's Kalman prediction
      is shown; if none agrees (box IoU < ``gate_iou``) or its area is off the recent median by more than
      ``size_range`` (one inside the predicted box, with no other tracked object near, may be down to a
      tenth: partly hidden), the object is shown absent and the frame is not remembered.
    - On such a frame, and while refused again 1, 3, 7, ... frames after it (up to ``coast``), the decoder
      is prompted with the predicted box; the result is taken when its box agrees with the prediction
      (IoU >= ``retry_iou``) and its area is within ``retry_size`` of the object's (two objects merged into
      one mask are not it).
    - While absent, a part is taken back only where the object can be: ahead on its line of motion (within
      ``lane`` sizes of it) when it was hidden in view, at the frame's border (or ``entry`` sizes inside it)
      when it left the frame. Parts there too weak to take (too small; in view down to slivers of a pixel or
      two, as SAM 2 often sees an object coming out from behind another) make the decoder be prompted with a
      box of the object's size around them, and the result is taken when it is where the object can be, of
      its size, and does not look unlike it and more like another tracked object. Even a slow object is
      looked for on its line of motion; only a still one comes back where it was.
    - Next to another tracked object that looks different (appearance vectors, learnt from confident frames,
      agreeing less than ``alike``), SAM 2 tells the two apart by itself: its own mask is shown. Next to a
      look-alike, motion decides as above.
    - A young track's frames all enter memory, as SAM 2's do. Then only confident frames enter (object score
      > 0, predicted IoU > ``memory_iou``, size within ``memory_size`` of the median), and not while two
      tracked objects' masks share half of the smaller one (SAM 3 keeps the older of two overlapping masks
      out of memory), and frames SAM 2 itself calls absent, as the absent memory it writes (so an object
      that left is not searched for with its last frames in view alone): SAM 2 reads the most recent
      remembered frames. While two stable tracks are close (their boxes, grown by ``overlap`` of their
      size, meet), and on oversized or shrunk masks, the Kalman filter is not moved: the object coasts on
      its velocity.
    """

    name = "gated"
    trust_keeps_size = False  # whether a stable object shown as SAM 2 shows it next to a different-looking one
    #                           is remembered (and sized) only at about its size (False: as measured in 2026-11)

    Settings = GatedSettings

    def __init__(self, settings: GatedSettings | None = None) -> None:
        super().__init__()
        self.settings = s = settings if settings is not None else self.Settings()
        self.filter = BoxFilter(velocity_noise=s.velocity_noise)
        self.stable = np.zeros(0, dtype=np.int64)
        self.lost = np.zeros(0, dtype=np.int64)  # frames shown absent since the last accepted one
        self.exited = np.zeros(0, dtype=bool)  # it was lost at the frame's border
        self.seen = np.zeros((0, 8))  # (centre x, centre y, velocity x, velocity y, box) when last accepted
        self.look = np.zeros((0, 0))  # unit appearance vector per row (zeros: not seen yet)
        self._pred: dict[Key, np.ndarray] = {}  # predicted box of this frame (for a retry's verdict)
        self.mates = np.zeros(0, dtype=np.int64)  # rows of this frame's direction
        self.now: dict[int, np.ndarray] = {}  # row -> box shown on this frame
        self._why: dict[Key, str] = {}  # why a retry was asked for: "jump" or "recover"
        self._t = -1

    def grow_rows(self, n: int) -> None:
        k = n - len(self.stable)
        self.stable = np.concatenate([self.stable, np.zeros(k, dtype=np.int64)])
        self.lost = np.concatenate([self.lost, np.zeros(k, dtype=np.int64)])
        self.exited = np.concatenate([self.exited, np.zeros(k, dtype=bool)])
        self.seen = np.concatenate([self.seen, np.zeros((k, 8))])
        self.look = np.concatenate([self.look, np.zeros((k, self.look.shape[1]))])

    def reset_row(self, r: int) -> None:
        self.stable[r], self.lost[r], self.exited[r] = 0, 0, False

    def parts(self, c: Candidates, i: int) -> list[tuple[int, np.ndarray]]:
        """(token, part mask) for every connected part of every option's mask of row i."""
        out = []
        for k in c.options:
            m = c.masks[i, k] > 0
            if m.any():
                out += [(k, p) for p in components(m, keep=4)]
        return out

    def _at_edge(self, box: np.ndarray, margin: float = 1.0) -> bool:
        return bool(self._borders(box, margin))

    def _borders(self, box: np.ndarray, margin: float = 1.0) -> set[int]:
        """Which of the frame's borders (0 left, 1 top, 2 right, 3 bottom) ``box`` [4] is within ``margin`` of."""
        h, w = self.frame_size
        cut = (box[0] <= margin, box[1] <= margin, box[2] >= w - margin, box[3] >= h - margin)
        return {k for k, c in enumerate(cut) if c}

    def where_it_can_be(self, r: int, box: np.ndarray, size: float) -> bool:
        """Whether a part with box ``box`` is where lost row r can come back."""
        if self.exited[r]:  # it comes back in: at an edge, or just inside one (SAM 2 may see it late)
            return self._at_edge(box, margin=self.settings.entry * size)
        distance, along, across = line_offset(self.seen[r, :2], self.seen[r, 2:4], box)
        speed = float(np.hypot(*self.seen[r, 2:4]))
        if speed < 0.02 * size:  # it was still: it comes back where it was
            return bool(distance <= size * min(1.5, 1 + 0.02 * self.lost[r]))
        # Even a slow one comes back on its line: the velocity measured as it went behind is often too low
        # (its visible part shrinks there), so a radius growing with the time hidden took other objects.
        return across <= self.settings.lane * size and -0.25 * size <= along <= speed * self.lost[r] + 3 * size

    def _held_by_other(self, r: int, box: np.ndarray) -> bool:
        """Whether ``box`` [4] is where another object of this pass is shown (on this frame if decided, else
        on its last) (box IoU >= 0.5; or 0.8 of ``box`` inside the box of one that looks different): a lost
        object is not taken back on a tracked one (of two masks on one place, SAM 3 suppresses the one
        hidden more recently). A part inside a look-alike's box may be the lost object coming out from
        behind it: motion decides there."""
        now = np.isin(self.mates, list(self.now))
        m = self.mates[(self.mates != r) & ((self.lost[self.mates] == 0) | now)]
        m = m[np.abs(self._t - self.last[m]) <= 1]
        if not len(m):
            return False
        boxes = np.array([self.now.get(int(j), self.seen[j, 4:]) for j in m], dtype=np.float64)
        differ = self._look_different(np.array([r]), m)[0]
        holds = ~self.passes_by(r, box, m, boxes, differ)
        if (box_iou(boxes[holds], box[None].astype(np.float64)) >= 0.5).any():
            return True
        return any(inside_of(box, b) >= 0.8 for b in boxes[differ & holds])

    def passes_by(self, r: int, box: np.ndarray, rows: np.ndarray, boxes: np.ndarray, differ: np.ndarray) -> np.ndarray:
        """bool [K]: of the other ``rows`` [K] shown at ``boxes`` [K, 4] (``differ``: those that look different
        from lost row r), those that do not hold ``box`` [4] against r (gated: none)."""
        return np.zeros(len(rows), dtype=bool)

    def decide(self, rows: Sequence[tuple[Group, int]], t: int, reverse: bool, c: Candidates) -> Verdict:
        groups, keys = self.keys_of(rows, reverse)
        self.frame_size = c.masks.shape[-2:]
        n = len(keys)
        self._t = t
        self.mates = np.array([row for (_, rev), row in self.rows.items() if rev == reverse], dtype=np.int64)
        r = self.start_rows(keys, groups, t)
        pred = self.predict(r, t, np.where(self.lost[r] > 0, 0.8, 1.0))
        median = self.median_area(r)
        busy, trust = self._neighbours(r, pred, c)
        choice = c.chosen.copy()
        mask = self.masks_of(c, choice).copy()
        absent = np.zeros(n, dtype=bool)
        retry_at = np.full((n, 4), np.nan, dtype=np.float32)
        taken = np.full((n, 4), np.nan)  # boxes of what is shown
        pixels = np.zeros(n)  # and its area
        sure = np.zeros(n, dtype=bool)  # confident enough to remember
        self.now = {}  # row -> box shown on this frame
        for i in self.decision_order(r, c.score):
            ri = r[i]
            size = float(np.sqrt(median[i])) if np.isfinite(median[i]) else np.nan
            young = self.stable[ri] < self.settings.stable_frames or not np.isfinite(size)
            trusted = not young and self.trusted(ri, size) and not self.jumps_across(ri, mask[i] > 0)
            if young or trust[i] or trusted:
                # a young track: SAM 2's own mask is shown; its largest part is what the filter measures
                m = mask[i] > 0
                if m.any() and c.score[i] > 0:
                    main = components(m, keep=1)[0]
                    taken[i], pixels[i] = mask_boxes(main[None])[0], main.sum()
                    sure[i] = c.ious[i, choice[i]] > self.settings.memory_iou
                    if trusted or (self.trust_keeps_size and not young):
                        # (a cut or merged mask of a stable object is no measure of its size)
                        sure[i] &= self.settings.memory_size[0] <= pixels[i] / median[i] <= self.settings.memory_size[1]
                    self.now[int(ri)] = taken[i]
                continue
            parts = self.parts(c, i)
            best = self.best_part(parts, c, i, ri, pred[i], bool(busy[i]), float(median[i]))
            if best is None:
                absent[i] = True
                retry_at[i] = self._retry_box(keys[i], ri, pred[i], parts, size, float(median[i]))
                continue
            k, p, pb, ratio = best
            choice[i] = k
            mask[i] = only_part(c.masks[i, k], p)
            taken[i], pixels[i] = pb, p.sum()
            self.now[int(ri)] = pb
            lo, hi = self.settings.memory_size
            sure[i] = c.score[i] > 0 and c.ious[i, k] > self.settings.memory_iou and lo <= ratio <= hi
        # Two tracked objects close together: neither moves its filter (one may hide part of the other); two
        # masks on one place (half the smaller one shared, SAM 3's rule): no size or look, no memory unless told apart.
        crowded = self._close(taken)
        shared, told = self._on_one_place(r, mask, taken, crowded, c.score, median)
        coasting = crowded & (self.stable[r] >= self.settings.stable_frames)
        self.settle(keys, r, t, taken, pixels, c.score, sure & ~shared, coasting)
        self._learn_looks(r, c, mask, sure & ~shared)
        self._remember(keys, t, sure & told)
        for i, key in enumerate(keys):
            self._pred[key] = pred[i]
        return Verdict(choice, mask, absent, retry_at)

    def _remember(self, keys: Sequence[Key], t: int, which: np.ndarray) -> None:
        """Frame t of the rows ``which`` (bool [N]) enters memory, whatever was decided before."""
        for i in np.flatnonzero(which):
            self.pending[(keys[i][0], keys[i][1], t)] = Pending(mem=True, ptr=True)

    def _retry_box(
        self, key: Key, ri: int, pred: np.ndarray, parts: list[tuple[int, np.ndarray]], size: float, median: float
    ) -> np.ndarray:
        """Where the decoder is asked again for refused row ``ri`` (float32 [4]; NaN: nowhere), and why."""
        if self.lost[ri] < self.settings.coast and not self.exited[ri] and self._inside(pred):
            # asked again 1, 3, 7, ... frames after it went: an object hidden for longer would be refused every
            # frame (each a decoder call; no tuning clip or standard set scored differently)
            if (lost := int(self.lost[ri])) & (lost + 1) == 0:
                self._why[key] = "jump"
                return pred  # it jumped away (or just went): is it where it should be?
        elif self.lost[ri] > 0:
            # weak parts where it can be: ask the decoder with a box of its size there
            boxes = [mask_boxes(p[None])[0] for _, p in parts]
            # a sliver will do in view (coming out from behind something), not at the border, where a
            # look-alike in view is cut to a sliver too
            near = [
                b
                for b in boxes
                if (solid(b, size) or not self.exited[ri])
                and self.where_it_can_be(ri, b, size)
                and not self._held_by_other(ri, b)
            ]
            if near:
                self._why[key] = "recover"
                return self._grown(np.array(near), median)
        return np.full(4, np.nan, dtype=np.float32)

    def decision_order(self, r: np.ndarray, score: np.ndarray) -> list[int]:
        """The order rows ``r`` [N] are decided in, given SAM 2's object score logits [N]: tracked objects first
        (a lost one is then checked against where they are now)."""
        return sorted(range(len(r)), key=lambda i: bool(self.lost[r[i]] > 0))

    def edge_sliver(self, c: Candidates, i: int, ri: int, k: int) -> float:
        """The least share of its size a part of option k of row i's candidates (row ``ri``) may be when it is
        cut by the frame's border (gated: :data:`GOING_OUT` for a tracked object, :data:`COMING_BACK` for a
        lost one)."""
        return GOING_OUT if self.lost[ri] == 0 else COMING_BACK

    def retry_sliver(self, why: str) -> float:
        """The least share of its size a retry's part cut by the frame's border may be, asked because the object
        just went (``why`` "jump") or to recover it ("recover") (gated: :data:`GOING_OUT` either way)."""
        return GOING_OUT

    def held_elsewhere(self, r: int, box: np.ndarray) -> bool:
        """Whether what the decoder, asked again, found for lost row r (a part with ``box`` [4]) is another
        object's (gated: never)."""
        return False

    def told_apart(self, r: np.ndarray, taken: np.ndarray, score: np.ndarray, median: np.ndarray) -> np.ndarray:
        """bool [N, N]: pairs of rows whose confident masks on one place are remembered all the same (SAM 2
        remembers both), given the boxes shown ``taken`` [N, 4], score logits [N] and median areas [N]
        (gated: none)."""
        return np.zeros((len(r), len(r)), dtype=bool)

    def trusted(self, r: int, size: float) -> bool:
        """Whether SAM 2's own mask is shown for stable row r (of side ``size``) whatever motion says."""
        return False

    def jumps_across(self, r: int, own: np.ndarray) -> bool:
        """Whether SAM 2's mask ``own`` (bool [h, w]) for trusted row r is a jump it cannot have made, so that
        motion judges it after all (gated: never)."""
        return False

    def _on_one_place(
        self,
        r: np.ndarray,
        mask: np.ndarray,
        taken: np.ndarray,
        crowded: np.ndarray,
        score: np.ndarray,
        median: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """bool [N] twice: rows whose shown mask (logits [N, h, w]; shown where ``taken`` [N, 4] is finite),
        close to another (``crowded``), shares half of the smaller one with another's, and those of them
        :meth:`told_apart` from every such other (given score logits [N] and median areas [N]), none of the
        two masks being one (:data:`MERGED`)."""
        n = len(mask)
        shown = [mask[i] > 0 if np.isfinite(taken[i]).all() else None for i in range(n)]
        shared = np.zeros((n, n), dtype=bool)
        merged = np.zeros((n, n), dtype=bool)
        for i in range(n):
            for j in range(i + 1, n):
                a, b = shown[i], shown[j]
                if not (crowded[i] and crowded[j] and a is not None and b is not None):
                    continue
                both = np.logical_and(a, b).sum()
                shared[i, j] = shared[j, i] = both >= 0.5 * min(a.sum(), b.sum())
                merged[i, j] = merged[j, i] = both >= MERGED * np.logical_or(a, b).sum()
        on_one = shared.any(axis=1)
        if not on_one.any():
            return on_one, on_one
        apart = self.told_apart(r, taken, score, median) & ~merged
        return on_one, on_one & ~(shared & ~apart).any(axis=1)

    def _neighbours(self, r: np.ndarray, pred: np.ndarray, c: Candidates) -> tuple[np.ndarray, np.ndarray]:
        """bool [N] twice: rows with another tracked object predicted next to them, and those of them whose
        neighbours all look different (appearance vectors agreeing less than ``alike``; one not learnt yet
        counts as alike)."""
        near_pairs = self._close_pairs(pred)
        if c.appearance is not None and self.look.shape[1] != c.appearance.shape[1]:
            self.look = np.zeros((len(self.look), c.appearance.shape[1]))
        alike = near_pairs & ~self._look_different(r, r)
        busy = near_pairs.any(axis=1)
        # next to a different-looking tracked object, SAM 2 tells them apart by itself: its mask is shown
        return busy, busy & ~alike.any(axis=1)

    def _learnt(self, rows: np.ndarray) -> np.ndarray:
        """bool [len(rows)]: rows whose appearance vector is learnt (not zeros)."""
        return np.abs(self.look[rows]).sum(axis=1) > 0

    def _look_different(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """bool [len(a), len(b)]: pairs of rows whose appearance vectors agree less than ``alike`` (a row
        whose look is not learnt yet counts as alike to every other)."""
        known = self._learnt(a)[:, None] & self._learnt(b)[None, :]
        return known & (self.look[a] @ self.look[b].T < self.settings.alike)

    def _looks_like_another(self, r: int, c: Candidates, i: int) -> bool:
        """Whether candidate i (what a retry found for lost row r) looks unlike r (agreeing less than
        ``alike``) and more like another object of this pass: that one coming out, not r."""
        if c.appearance is None or not self._learnt(np.array([r]))[0] or not np.abs(c.appearance[i]).any():
            return False
        sim = self.look @ c.appearance[i]
        own = float(sim[r])
        others = self.mates[(self.mates != r) & self._learnt(self.mates)]
        return own < self.settings.alike and bool(len(others)) and float(sim[others].max()) > own

    def _learn_looks(self, r: np.ndarray, c: Candidates, mask: np.ndarray, sure: np.ndarray) -> None:
        """What each object looks like, learnt from confident frames where SAM 2's own mask is shown."""
        if c.appearance is None:
            return
        own = np.array([bool(((mask[i] > 0) == (c.masks[i, c.chosen[i]] > 0)).all()) for i in range(len(r))])
        for i in np.flatnonzero(sure & own & (np.abs(c.appearance).sum(axis=1) > 0)):
            old = self.look[r[i]]
            new = c.appearance[i] if not np.abs(old).any() else 0.9 * old + 0.1 * c.appearance[i]
            self.look[r[i]] = new / max(float(np.linalg.norm(new)), 1e-12)

    def best_part(
        self,
        parts: list[tuple[int, np.ndarray]],
        c: Candidates,
        i: int,
        ri: int,
        pred: np.ndarray,
        busy: bool,
        median: float,
    ) -> tuple[int, np.ndarray, np.ndarray, float] | None:
        """The part of row i's candidates (token, mask, box, area ratio) that is the object of stable row
        ``ri`` predicted at ``pred`` [4], or None."""
        size = float(np.sqrt(median))
        best, best_key = None, -1.0
        h, w = self.frame_size
        seen_part = np.clip(pred, 0, [w, h, w, h])  # what of the predicted box is in the frame
        for k, p in parts:
            pb = mask_boxes(p[None])[0]
            ratio = p.sum() / median
            # a part at the frame's edge may be cut by it, one inside (or half a size around) the predicted box
            # of a tracked object may be partly hidden: a tenth of the object's size is enough there
            edge = self._at_edge(pb)
            near = pred + np.array([-1, -1, 1, 1]) * 0.5 * size
            cut = edge or (self.lost[ri] == 0 and inside_of(pb, near) >= 0.8)
            sliver = self.edge_sliver(c, i, ri, k)
            fits = (
                (sliver if edge else 0.1 if cut else self.settings.size_range[0])
                <= ratio
                <= self.settings.size_range[1]
            )
            if not (fits and (cut or solid(pb, size))):
                continue
            if self.lost[ri] == 0:
                agree = float(box_iou((seen_part if edge else pred)[None], pb[None])[0])
                if not busy:  # or it moved on from where it was shown last
                    agree = max(agree, float(box_iou(self.seen[ri, 4:][None], pb[None])[0]) - 0.2)
                if edge and agree > 0:  # cut by the frame's edge: any overlap with what is left of it
                    agree = max(agree, self.settings.gate_iou)
                if agree < self.settings.gate_iou:
                    continue
                rank = agree + 0.1 * c.ious[i, k]
            elif self.where_it_can_be(ri, pb, size) and not self._held_by_other(ri, pb):
                rank = float(c.ious[i, k]) + ratio * 1e-3
            else:
                continue
            if rank > best_key:
                best, best_key = (k, p, pb, ratio), rank
        return best

    def _close_pairs(self, boxes: np.ndarray) -> np.ndarray:
        """bool [N, N]: pairs of rows whose boxes [N, 4], grown by ``overlap`` of their size, meet (NaN rows:
        none; a row is not close to itself)."""
        pad = self.settings.overlap * (boxes[:, 2:] - boxes[:, :2])
        lo, hi = boxes[:, :2] - pad, boxes[:, 2:] + pad
        with np.errstate(invalid="ignore"):
            meet = (np.minimum(hi[:, None], hi[None]) - np.maximum(lo[:, None], lo[None]) > 0).all(axis=2)
        np.fill_diagonal(meet, False)
        return meet

    def _close(self, boxes: np.ndarray) -> np.ndarray:
        """bool [N]: rows whose box [N, 4] is close to another's (:meth:`_close_pairs`)."""
        return self._close_pairs(boxes).any(axis=1)

    @staticmethod
    def _grown(boxes: np.ndarray, area: float) -> np.ndarray:
        """The union of ``boxes`` [K, 4], grown about its centre to the side of a box of ``area`` pixels."""
        x0, y0 = boxes[:, 0].min(), boxes[:, 1].min()
        x1, y1 = boxes[:, 2].max(), boxes[:, 3].max()
        half = max(x1 - x0, y1 - y0, np.sqrt(area) * 1.2) / 2
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        return np.array([cx - half, cy - half, cx + half, cy + half], dtype=np.float32)

    def _inside(self, box: np.ndarray) -> bool:
        h, w = self.frame_size
        x0, y0, x1, y1 = np.clip(box, 0, [w, h, w, h])
        full = (box[2] - box[0]) * (box[3] - box[1])
        return bool(full > 0 and (x1 - x0) * (y1 - y0) >= 0.5 * full)

    def settle(
        self,
        keys: Sequence[Key],
        r: np.ndarray,
        t: int,
        taken: np.ndarray,
        areas: np.ndarray,
        score: np.ndarray,
        sure: np.ndarray,
        crowded: np.ndarray,
    ) -> None:
        """Counters, filters and what enters memory, once the verdict is known. ``score``: SAM 2's object
        score logits [N]."""
        h, w = self.frame_size
        shown = np.isfinite(taken).all(axis=1)
        young = self.stable[r] < self.settings.stable_frames
        median = self.median_area(r)
        # a merged or partly hidden mask is no measurement of where the object is
        whole = ~np.isfinite(median) | ((areas <= self.settings.memory_size[1] * median) & (areas >= 0.5 * median))
        # one touching the frame's border is measured while most of it is in view (else the filter would stay
        # behind an object sliding along the border); less of it: its box is the border's, not its own
        edge = np.array([shown[i] and self._at_edge(taken[i]) for i in range(len(r))], dtype=bool)
        whole &= ~edge | (areas >= 0.8 * median)
        update = shown & ~crowded & whole
        # back after an absence: the filter restarts at the part taken (its old velocity is stale)
        back = shown & (self.lost[r] > 0) & ((whole & ~crowded) | self.exited[r])  # (coming in at an edge: cut by it)
        self.filter.start(r[back], taken[back])
        self.filter.update(r[update & ~back], taken[update & ~back])
        for i, ri in enumerate(r):
            if shown[i]:
                if self.lost[ri] > 0:
                    self.stable[ri] = self.settings.stable_frames  # taken back under the gate: trusted at once
                self.lost[ri] = 0
                self.exited[ri] = False
                self.stable[ri] += int(sure[i])
                self._saw(ri, taken[i])
            else:
                if self.lost[ri] == 0 and self.stable[ri] >= self.settings.stable_frames:
                    cx, cy = self.seen[ri, :2]
                    vx, vy = self.seen[ri, 2:4]
                    near = self._at_edge(self.filter.boxes(np.array([ri]))[0], margin=2)
                    outward = (cx < w / 2 and vx < 0) or (cx >= w / 2 and vx > 0) or (cy < h / 2 and vy < 0)
                    self.exited[ri] = bool(near and (outward or (cy >= h / 2 and vy > 0)))
                if self.stable[ri] >= self.settings.stable_frames:
                    self.lost[ri] += 1
                else:
                    self.stable[ri] = 0
        # only the pixel areas of remembered frames set the object's size
        masks_area = np.array([a if s else 0 for a, s in zip(areas, sure)])
        self.push_area(r, masks_area)
        # A young track's frames all enter memory, as SAM 2's do (motion is not known yet); so does a frame that
        # SAM 2 itself calls absent, as the absent memory SAM 2 writes: without those, an object that left is
        # searched for with its last frames in view alone. A frame the policy overrules stays out.
        remember = sure | young | (~shown & (score <= 0))
        for i, key in enumerate(keys):
            self.pending[(key[0], key[1], t)] = Pending(mem=bool(remember[i]), ptr=bool(remember[i]))

    def _saw(self, r: int, box: np.ndarray) -> None:
        """Row r was shown at ``box``: where and how fast it was last seen."""
        v = self.filter.velocity(np.array([r]))[0]
        self.seen[r] = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2, v[0], v[1], *box)

    def decide_retry(self, rows: Sequence[tuple[Group, int]], t: int, reverse: bool, c: Candidates) -> Verdict:
        keys = self.keys_of(rows, reverse)[1]
        n = len(keys)
        r = np.array([self.rows[k] for k in keys], dtype=np.int64)
        median = self.median_area(r)
        choice = c.chosen.copy()
        mask = self.masks_of(c, choice).copy()
        absent = np.ones(n, dtype=bool)
        boxes = np.full((n, 4), np.nan, dtype=np.float32)
        for i, key in enumerate(keys):
            pred, why = self._pred.get(key), self._why.pop(key, "jump")
            if pred is None or c.score[i] <= 0 or not (mask[i] > 0).any():
                continue
            ri = r[i]
            size = float(np.sqrt(median[i]))
            lo, hi = self.settings.retry_size
            sliver = self.retry_sliver(why)
            for part in components(mask[i] > 0, keep=4):
                pb = mask_boxes(part[None])[0]
                edge = self._at_edge(pb)  # cut by the frame's border: a sliver of it
                if not ((sliver if edge else lo) <= part.sum() / median[i] <= hi and (edge or solid(pb, size))):
                    continue
                if why == "jump":
                    ok = float(box_iou(pred[None], pb[None])[0]) >= self.settings.retry_iou
                else:
                    ok = self.where_it_can_be(ri, pb, size) and not self._held_by_other(ri, pb)
                    ok = ok and not self._looks_like_another(ri, c, i)
                if ok and not self.held_elsewhere(ri, pb):
                    mask[i] = only_part(mask[i], part)
                    boxes[i] = pb
                    break
            if np.isfinite(boxes[i]).all():
                absent[i] = False
                # as a click on a tracked frame in upstream's predictor: shown and remembered
                if why == "recover":
                    self.filter.start(np.array([ri]), boxes[i : i + 1])
                else:
                    self.filter.update(np.array([ri]), boxes[i : i + 1])
                self.lost[ri], self.exited[ri] = 0, False
                self.stable[ri] = max(self.stable[ri], self.settings.stable_frames)
                self.pending[(key[0], key[1], self._t)] = Pending(mem=True, ptr=True)
                self._saw(ri, boxes[i])
        return Verdict(choice, mask, absent)

    def own_state(self) -> dict:
        return {
            "stable": self.stable.tolist(),
            "lost": self.lost.tolist(),
            "exited": self.exited.tolist(),
            "seen": self.seen.tolist(),
            "look": self.look.tolist(),
        }

    def load_own_state(self, state: dict) -> None:
        self.stable = np.asarray(state["stable"], dtype=np.int64)
        self.lost = np.asarray(state["lost"], dtype=np.int64)
        self.exited = np.asarray(state["exited"], dtype=bool)
        self.seen = np.asarray(state["seen"], dtype=np.float64).reshape(-1, 8)
        self.look = np.asarray(state["look"], dtype=np.float64).reshape(len(self.seen), -1)
