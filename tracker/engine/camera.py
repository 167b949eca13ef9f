"""The camera's own motion between two frames, as BoT-SORT's global motion compensation measures it: corners
of the previous frame followed into this one by sparse optical flow (pyramidal Lucas-Kanade), and a
similarity transform (shift, zoom, rotation) fitted to them by RANSAC, so that moving objects, a minority
of the corners, are outliers. NumPy and OpenCV only; one estimate costs about a millisecond.

A :class:`CameraMotion` keeps the last frame it saw per pass direction; :meth:`CameraMotion.step` gives the
transform from that frame to the new one (identity when the frames are not neighbours, when too few corners
are followed, or when the fit is not a plausible camera move)."""

from __future__ import annotations

import cv2
import numpy as np

WIDTH = 320  # frames are measured at this width at most: corners of a 4K frame are no better for this
CORNERS = 200  # corners followed per frame (BoT-SORT's sparse GMC: 1000 on 1080p frames scaled down 2x)
MIN_FOLLOWED = 12  # fewer corners followed than this: no estimate (a blank or cut frame)
MIN_INLIERS = 0.5  # the fit must explain this share of the followed corners: else most of the view moved
MAX_ZOOM_STEP = 0.1  # a camera zooms less than 10 % between two frames; more is a cut or a bad fit

IDENTITY = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


class CameraMotion:
    """Frame-to-frame camera motion, per pass direction, in the frame's own pixels."""

    def __init__(self) -> None:
        self._last: dict[bool, tuple[int, np.ndarray, float]] = {}  # reverse -> (frame, grey, scale)

    def step(self, t: int, reverse: bool, rgb: np.ndarray) -> np.ndarray:
        """float64 [2, 3]: the affine taking the previous frame of this direction (t - 1, or t + 1 in
        reverse) to frame t, in frame pixels; identity without a usable estimate."""
        h, w = rgb.shape[:2]
        scale = min(1.0, WIDTH / w)
        if scale < 1:
            rgb = cv2.resize(rgb, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        prev = self._last.get(reverse)
        self._last[reverse] = (t, grey, scale)
        if prev is None or prev[0] != (t + 1 if reverse else t - 1) or prev[1].shape != grey.shape:
            return IDENTITY.copy()
        return _estimate(prev[1], grey, scale)

    def state(self) -> dict:
        """The last frame seen per direction (a resumed run measures its first frame against it)."""
        return {
            "last": [[bool(r), f, g.tolist(), s] for r, (f, g, s) in self._last.items()],
        }

    def load_state(self, state: dict) -> None:
        self._last = {
            bool(r): (int(f), np.asarray(g, dtype=np.uint8), float(s)) for r, f, g, s in state.get("last", [])
        }


def _estimate(prev: np.ndarray, grey: np.ndarray, scale: float) -> np.ndarray:
    pts = cv2.goodFeaturesToTrack(prev, maxCorners=CORNERS, qualityLevel=0.01, minDistance=max(3, grey.shape[1] // 40))
    if pts is None or len(pts) < MIN_FOLLOWED:
        return IDENTITY.copy()
    nxt, ok, _ = cv2.calcOpticalFlowPyrLK(prev, grey, pts, None, winSize=(15, 15), maxLevel=3)
    ok = ok.reshape(-1).astype(bool)
    if ok.sum() < MIN_FOLLOWED:
        return IDENTITY.copy()
    a, b = pts.reshape(-1, 2)[ok], nxt.reshape(-1, 2)[ok]
    m, inliers = cv2.estimateAffinePartial2D(a, b, method=cv2.RANSAC, ransacReprojThreshold=1.0)
    if m is None or inliers is None or inliers.sum() < MIN_INLIERS * len(a):
        return IDENTITY.copy()
    zoom = float(np.hypot(m[0, 0], m[1, 0]))
    if abs(zoom - 1) > MAX_ZOOM_STEP:
        return IDENTITY.copy()
    m = m.astype(np.float64)
    m[:, 2] /= scale  # the shift in full-frame pixels (the linear part does not depend on the scale)
    return m


def warp_points(m: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """float [N, 2] points moved by the affine m [2, 3]."""
    return xy @ m[:, :2].T + m[:, 2]


def in_mask_pixels(m: np.ndarray, frame_size: tuple[int, int], mask_size: tuple[int, int]) -> np.ndarray:
    """The affine m [2, 3] of frame pixels (H, W) = ``frame_size`` as one of mask pixels (h, w) =
    ``mask_size`` (SAM 2 squeezes the frame into its square input, so x and y scale apart)."""
    sx, sy = mask_size[1] / frame_size[1], mask_size[0] / frame_size[0]
    s, inv = np.diag([sx, sy]), np.diag([1 / sx, 1 / sy])
    out = np.empty((2, 3))
    out[:, :2] = s @ m[:, :2] @ inv
    out[:, 2] = s @ m[:, 2]
    return out
