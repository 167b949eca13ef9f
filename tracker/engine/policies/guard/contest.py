"""Look-alikes in view: whether anything but the object itself has the object's colours.

guard overrules SAM 2 (refuses its mask, keeps a frame out of memory) to stop a swap onto a look-alike. Where
nothing in view looks like the object there is nothing to swap onto, and each rule that overrules SAM 2 can
only lose what SAM 2 keeps: on the standard sets (three objects of different colours, nothing else like them)
every loss of guard's was such an overrule. So an object is *contested* from the first frame that something
besides it shows its colours: a patch outside every tracked object's mask, or another tracked object; until
then SAM 2's own mask is shown and remembered, as upstream. Colours, not SAM 2's features: a look-alike that
has not been tracked has no pooled features to compare, and a colour histogram back-projects onto the whole
frame at once (CamShift's idea). Coarse bins make real footage (textured objects, busy backgrounds) contested
early, where guard's rules then decide as before: the rule can only hand back to SAM 2, never take from it.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

LEVELS = 8  # per RGB channel: 512 colours
OWN = 0.8  # the object's colours: the fewest that cover this share of its pixels
PATCH = 0.25  # a connected patch of its colours outside every tracked mask, this share of the object's area: a
#               look-alike in view (the object's own pixels SAM 2's mask misses are a rim, far under this)
RIM = 1  # pixels each tracked mask is grown by before patches are looked for, and shrunk by before its colours
#          are learnt (edges blend the object's colours with what is behind it)
SIDE = 320  # colours are read on the frame made no larger than this on its longer side (SAM 2's low-res masks,
#             a quarter of its input, blur small objects' colours into the background's)
MATCH = 0.5  # another tracked object with this share of its pixels in the object's colours looks like it
STRAY = 0.25  # SAM 2's mask of the object with under this share of its pixels in its colours is on something else
HOLD = 30  # frames after something else last showed the object's colours that the rules still judge it (a
#           look-alike that went behind something is still there)
LEARN = 0.1  # each confident frame's histogram moves the object's by this much (it turns, the light changes)


def quantise(rgb: np.ndarray) -> np.ndarray:
    """int64 [h, w]: the colour bin of each pixel of frame ``rgb`` (uint8 [H, W, 3]), made no larger than
    :data:`SIDE` on its longer side."""
    scale = SIDE / max(rgb.shape[:2])
    if scale < 1:
        size = (max(1, round(rgb.shape[1] * scale)), max(1, round(rgb.shape[0] * scale)))
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    q = rgb.astype(np.int64) * LEVELS // 256
    return (q[..., 0] * LEVELS + q[..., 1]) * LEVELS + q[..., 2]


def resized(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """bool [h, w] = ``size``: a low-res mask (bool) on the colour grid (SAM 2 squeezes the frame into its
    square input, so x and y scale apart: resized, not cropped)."""
    return cv2.resize(mask.astype(np.uint8), (size[1], size[0]), interpolation=cv2.INTER_NEAREST) > 0


_RIM = np.ones((2 * RIM + 1, 2 * RIM + 1), np.uint8)


def _grown(mask: np.ndarray) -> np.ndarray:
    """bool [h, w]: ``mask`` grown by :data:`RIM` pixels."""
    return cv2.dilate(mask.astype(np.uint8), _RIM) > 0


def _shrunk(mask: np.ndarray) -> np.ndarray:
    """bool [h, w]: ``mask`` shrunk by :data:`RIM` pixels."""
    return cv2.erode(mask.astype(np.uint8), _RIM) > 0


class Colours:
    """Per row: a colour histogram (float [LEVELS**3], sums to 1) learnt from its confident masks."""

    def __init__(self) -> None:
        self.hist: dict[int, np.ndarray] = {}
        self._colours: dict[int, np.ndarray] = {}  # row -> its colours, made from hist when it changes

    def learn(self, r: int, bins: np.ndarray, mask: np.ndarray) -> None:
        """Row r was ``mask`` (bool [h, w]) on a frame whose colour bins are ``bins`` [h, w]: its inside (the
        mask shrunk by ``RIM``) is learnt, or the whole of a mask too thin for that."""
        inner = _shrunk(mask)
        h = np.bincount(bins[inner if inner.any() else mask], minlength=LEVELS**3).astype(np.float64)
        if h.sum() == 0:
            return
        h /= h.sum()
        old = self.hist.get(r)
        self.hist[r] = h if old is None else (1 - LEARN) * old + LEARN * h
        self._colours.pop(r, None)

    def colours(self, r: int) -> np.ndarray | None:
        """bool [LEVELS**3]: row r's colours (the fewest bins holding ``OWN`` of it), or None before any."""
        h = self.hist.get(r)
        if h is None or r in self._colours:
            return self._colours.get(r)
        order = np.argsort(-h)
        keep = order[: int(np.searchsorted(np.cumsum(h[order]), OWN)) + 1]
        out = self._colours[r] = np.zeros(LEVELS**3, dtype=bool)
        out[keep] = True
        return out

    def lookalikes(
        self, rows: Sequence[int], bins: np.ndarray, masks: Sequence[np.ndarray], areas: np.ndarray
    ) -> np.ndarray:
        """bool [N]: whether something besides each of ``rows`` shows its colours on a frame of colour bins
        ``bins`` [h, w], given every tracked object's SAM 2 mask there (``masks``: bool [h, w] each, in the
        order of ``rows``) and each one's size (``areas`` [N], pixels of the grid): SAM 2's mask of it not in
        its colours (it is on something else), another tracked object's mask with ``MATCH`` of its own pixels
        in them, or a connected patch of ``PATCH`` of its size outside every tracked mask. A row whose colours
        are not learnt, or that SAM 2 does not show, is not judged (False)."""
        n = len(rows)
        out = np.zeros(n, dtype=bool)
        label = np.zeros(bins.shape, dtype=np.int64)  # 1 + the index of the mask on each pixel, 0: none
        for j, m in enumerate(masks):
            label[m] = j + 1
        covered = _grown(label > 0)
        on = np.flatnonzero(label)  # (the pixels of tracked masks, where another one's colours are read)
        flat_bins, flat_label = bins.ravel()[on], label.ravel()[on]
        for i, r in enumerate(rows):
            mine = self.colours(r)
            if mine is None or not np.isfinite(areas[i]) or not masks[i].any():
                continue
            hit = mine[bins]
            if hit[masks[i]].mean() < STRAY:
                out[i] = True
                continue
            away = ~_grown(masks[i]).ravel()[on]  # (two masks on one place share the object's pixels)
            total = np.bincount(flat_label[away], minlength=n + 1)[1:]
            share = np.bincount(flat_label[away & mine[flat_bins]], minlength=n + 1)[1:] / np.maximum(total, 1)
            if ((share >= MATCH) & (total >= PATCH * areas[i])).any():
                out[i] = True
                continue
            free = hit & ~covered
            if free.sum() >= PATCH * areas[i]:
                _, _, stats, _ = cv2.connectedComponentsWithStats(free.astype(np.uint8), connectivity=8)
                out[i] = bool(stats[1:, cv2.CC_STAT_AREA].max() >= PATCH * areas[i])
        return out

    def clear(self, r: int) -> None:
        self.hist.pop(r, None)
        self._colours.pop(r, None)

    def state(self) -> list:
        return [[r, h.tolist()] for r, h in self.hist.items()]

    def load_state(self, state: list) -> None:
        self.hist = {int(r): np.asarray(h, dtype=np.float64) for r, h in state}
        self._colours = {}
