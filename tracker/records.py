"""Typed records passed between the pipeline stages. Each validates itself on construction."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from .masks import check_pixels


def whole(value: object) -> bool:
    """An int that is not a bool (``True`` is 1 to Python, never a count or an index to us)."""
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class VideoInfo:
    """What a source knows about its video before any frame is decoded."""

    width: int
    height: int
    fps: float | None
    num_frames: int | None
    time_base: float | None = None
    has_audio: bool = False

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"video size {self.width}x{self.height} is empty: the file has no picture")
        check_pixels(self.width, self.height, "the video")


@dataclass(frozen=True)
class FrameRange:
    """Which frames of a video a run reads (``source.start/stop/stride/max_frames``): from ``start``, up to
    but not including ``stop`` (None: the end), every ``stride``-th, at most ``max_frames`` of them. The run
    numbers them 0, 1, 2, ... (its own frames); every output and prompt speaks the video's frame numbers."""

    start: int = 0
    stop: int | None = None
    stride: int = 1
    max_frames: int | None = None

    def __post_init__(self) -> None:
        for key, value, least in (("start", self.start, 0), ("stride", self.stride, 1)):
            if not whole(value) or value < least:
                raise ValueError(f"source.{key}={value!r} is not usable: give an integer of at least {least}")
        for key, value in (("stop", self.stop), ("max_frames", self.max_frames)):
            if value is not None and (not whole(value) or value < 1):
                raise ValueError(f"source.{key}={value!r} is not usable: give an integer of at least 1, or null")
        if self.stop is not None and self.stop <= self.start:
            raise ValueError(
                f"source.stop={self.stop} is not after source.start={self.start}: the run would read no frame "
                f"(stop is the first frame not read)"
            )

    @property
    def everything(self) -> bool:
        return self == EVERY_FRAME

    def count(self, num_frames: int | None) -> int | None:
        """How many frames the run reads from a video of ``num_frames`` (None: unknown)."""
        stop = self.stop if num_frames is None else min(self.stop or num_frames, num_frames)
        if stop is None:
            return self.max_frames
        n = len(range(self.start, stop, self.stride))
        return n if self.max_frames is None else min(n, self.max_frames)

    def check_against(self, num_frames: int | None) -> None:
        """Refuse a range that reads no frame of a video of ``num_frames``."""
        if self.count(num_frames) == 0:
            last = (num_frames or 0) - 1
            raise ValueError(
                f"source.start={self.start} is past the video's last frame ({last}): use source.start=0..{last}"
            )

    def video_frame(self, i: int) -> int:
        """The video's frame number of the run's frame ``i``."""
        return self.start + i * self.stride

    def run_frame(self, f: int, num_frames: int | None) -> int | None:
        """The run's frame showing the video's frame ``f``, or None when the run does not read it."""
        i, off = divmod(f - self.start, self.stride)
        n = self.count(num_frames)
        return i if f >= self.start and off == 0 and (n is None or i < n) else None

    def next_after(self, emitted: int) -> int:
        """The video's frame number after the run's first ``emitted`` frames (what a sink writes next)."""
        return 0 if emitted == 0 else self.video_frame(emitted - 1) + 1

    def describe(self, num_frames: int | None) -> str:
        """'frames 30, 32, ..., 98' (the video's numbers)."""
        n = self.count(num_frames)
        if n is None:
            return f"frames {self.start}, {self.start + self.stride}, ..."
        shown = [self.video_frame(i) for i in range(min(n, 2))]
        if n > 3:
            return f"frames {', '.join(map(str, shown))}, ..., {self.video_frame(n - 1)}"
        return f"frames {', '.join(str(self.video_frame(i)) for i in range(n))}"


EVERY_FRAME = FrameRange()


@dataclass(frozen=True)
class Frame:
    """One decoded frame: ``rgb`` is uint8 [H, W, 3]; ``time`` is its presentation time in seconds."""

    index: int
    time: float | None
    rgb: np.ndarray = field(repr=False)

    def __post_init__(self) -> None:
        if self.rgb.dtype != np.uint8 or self.rgb.ndim != 3 or self.rgb.shape[2] != 3:
            raise ValueError(f"frame {self.index}: expected uint8 [H, W, 3] RGB, got {self.rgb.dtype} {self.rgb.shape}")


@dataclass(frozen=True)
class Prompt:
    """What the user says about one object on one prompt frame, in original video pixels.

    ``points`` are ``(x, y, label)`` with label 1 (positive) or 0 (negative); ``box`` is
    ``(x0, y0, x1, y1)``; ``mask`` is bool [H, W]. Points and box may be combined; a mask may be
    refined by points and/or a box (the mask is applied first, as SAM 2 does).
    """

    object_id: int
    frame_index: int
    points: tuple[tuple[float, float, int], ...] = ()
    box: tuple[float, float, float, float] | None = None
    mask: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.object_id, int) or isinstance(self.object_id, bool) or self.object_id < 1:
            raise ValueError(f"object id {self.object_id!r} is invalid: use an integer from 1 (0 is the background)")
        if self.frame_index < 0:
            raise ValueError(
                f"object {self.object_id}: prompt frame {self.frame_index} is negative: frames count from 0"
            )
        object.__setattr__(self, "points", tuple(tuple(p) for p in self.points))
        numbers = [v for p in self.points for v in p[:2]] + list(self.box or ())
        if not all(math.isfinite(v) for v in numbers):
            raise ValueError(
                f"object {self.object_id}, frame {self.frame_index}: a coordinate is not a finite number: "
                "give pixel coordinates"
            )
        if not self.points and self.box is None and self.mask is None:
            raise ValueError(
                f"object {self.object_id}, frame {self.frame_index}: empty prompt: "
                "give points [[x, y, 1], ...], a box [x0, y0, x1, y1] or a mask"
            )
        for p in self.points:
            if len(p) != 3:
                raise ValueError(
                    f"object {self.object_id}, frame {self.frame_index}: point {list(p)} must be [x, y, label]"
                )
            if p[2] not in (0, 1):
                raise ValueError(
                    f"object {self.object_id}, frame {self.frame_index}: point label {p[2]!r} is unknown: "
                    "use 1 (positive) or 0 (negative)"
                )
        if self.box is not None:
            if len(self.box) != 4:
                raise ValueError(
                    f"object {self.object_id}, frame {self.frame_index}: box {list(self.box)} must be [x0, y0, x1, y1]"
                )
            x0, y0, x1, y1 = self.box
            if x1 <= x0 or y1 <= y0:
                raise ValueError(
                    f"object {self.object_id}, frame {self.frame_index}: box {list(self.box)} is inverted "
                    "or empty: it must be [x0, y0, x1, y1] with x1 > x0 and y1 > y0"
                )
        if self.mask is not None:
            m = np.asarray(self.mask)
            if m.ndim != 2:
                raise ValueError(
                    f"object {self.object_id}, frame {self.frame_index}: mask has shape {m.shape}: "
                    "it must be 2-D [H, W]"
                )
            m = m.astype(bool)
            if not m.any():
                raise ValueError(
                    f"object {self.object_id}, frame {self.frame_index}: mask is empty: "
                    "give a mask with object pixels (non-zero), or a box or points"
                )
            object.__setattr__(self, "mask", m)

    def check_against(self, info: VideoInfo) -> None:
        """Raise ValueError when the prompt does not fit the video (frame range, image bounds, size)."""
        where = f"object {self.object_id}, frame {self.frame_index}"
        if info.num_frames is not None and self.frame_index >= info.num_frames:
            raise ValueError(
                f"{where}: prompt frame {self.frame_index} is out of range: "
                f"the video has {info.num_frames} frames (0..{info.num_frames - 1})"
            )
        w, h = info.width, info.height
        for x, y, _ in self.points:
            if not (0 <= x <= w and 0 <= y <= h):
                raise ValueError(f"{where}: point ({x}, {y}) is outside the {w}x{h} image: use video pixel coordinates")
        if self.box is not None:
            x0, y0, x1, y1 = self.box
            if x0 < 0 or y0 < 0 or x1 > w or y1 > h:
                raise ValueError(
                    f"{where}: box {list(self.box)} is outside the {w}x{h} image: use video pixel coordinates"
                )
        if self.mask is not None and self.mask.shape != (h, w):
            raise ValueError(
                f"{where}: mask has shape {self.mask.shape[1]}x{self.mask.shape[0]} (WxH) but the video "
                f"is {w}x{h}: give a mask of the video's size"
            )


@dataclass(frozen=True)
class FrameMasks:
    """The final masks of every tracked object on one frame.

    ``masks`` is bool [N, H, W] at video resolution, ``scores`` float32 [N] (object presence
    probability, sigmoid of SAM 2's object score), ``labels`` the objects' labels from their prompts (None:
    unnamed; empty: none given), all ordered as ``object_ids``.
    """

    frame_index: int
    object_ids: tuple[int, ...]
    masks: np.ndarray = field(repr=False)
    scores: np.ndarray = field(repr=False)
    labels: tuple[str | None, ...] = ()

    def __post_init__(self) -> None:
        n = len(self.object_ids)
        if self.masks.dtype != np.bool_ or self.masks.ndim != 3 or self.masks.shape[0] != n:
            raise ValueError(f"frame {self.frame_index}: masks must be bool [{n}, H, W], got {self.masks.shape}")
        if self.scores.shape != (n,):
            raise ValueError(f"frame {self.frame_index}: scores must be [{n}], got {self.scores.shape}")
        if self.labels and len(self.labels) != n:
            raise ValueError(f"frame {self.frame_index}: labels must be {n} (one per object), got {len(self.labels)}")

    def mask_of(self, object_id: int) -> np.ndarray:
        return self.masks[self.object_ids.index(object_id)]

    def label_of(self, object_id: int) -> str | None:
        return self.labels[self.object_ids.index(object_id)] if self.labels else None

    def label_map(self) -> dict[int, str | None]:
        """Object id -> label, for the objects of this frame."""
        return {oid: self.label_of(oid) for oid in self.object_ids}

    def exclusive(self) -> FrameMasks:
        """One object per pixel, the rule of every output: where masks overlap, the object with the higher
        score keeps the pixel; on equal scores, the one later in ``object_ids``. (A palette PNG can hold only
        one id per pixel; COCO, MOTS, YOLO and the video follow it so that all outputs agree.)"""
        n = len(self.object_ids)
        if n < 2:
            return self
        # Painting the masks in ascending score order (stable: equal scores in id order) leaves each pixel
        # to its winner; a mask then keeps the pixels it won (one pass per object, no [N, H, W] temporaries).
        label = self.label_image(by_score=True)
        masks = np.empty_like(self.masks)
        for i in range(n):
            np.equal(label, i + 1, out=masks[i])
        return FrameMasks(self.frame_index, self.object_ids, masks, self.scores, self.labels)

    def label_image(self, by_score: bool = False) -> np.ndarray:
        """uint8 (uint16 past 254 objects) [H, W]: 0 background, i + 1 where object ``object_ids[i]`` is.
        Where masks overlap the later object is shown, or with ``by_score`` the one with the higher score
        (equal scores: the later one), the rule of :meth:`exclusive`."""
        n = len(self.object_ids)
        label = np.zeros(self.masks.shape[1:], dtype=np.uint8 if n < 255 else np.uint16)
        order = np.argsort(self.scores, kind="stable") if by_score else range(n)
        for i in order:
            label[self.masks[i]] = i + 1
        return label

    def to_supervision(self, labels: Mapping[int, str | None] | None = None):
        """A ``supervision.Detections`` of the objects whose mask is not empty: ``xyxy`` float32 [N, 4]
        (the mask's box, exclusive x1/y1), ``mask`` bool [N, H, W], ``confidence`` (the object score),
        ``tracker_id`` (the object id), ``class_id`` and ``data["class_name"]`` from ``labels`` (id -> name;
        default: the objects' own labels; "object" when unnamed; class ids number the sorted names). Needs
        the optional ``supervision`` package."""
        try:
            import supervision as sv
        except ModuleNotFoundError:
            raise ModuleNotFoundError(
                "to_supervision needs supervision: pip install 'sam2-tracker[supervision]'", name="supervision"
            ) from None

        from .masks import mask_bbox

        labels = self.label_map() if labels is None else labels
        names = sorted({labels.get(i) or "object" for i in self.object_ids} or {"object"})
        keep = [i for i in range(len(self.object_ids)) if self.masks[i].any()]
        boxes = np.zeros((len(keep), 4), dtype=np.float32)
        for row, i in enumerate(keep):
            x, y, w, h = mask_bbox(self.masks[i])  # type: ignore[misc]
            boxes[row] = (x, y, x + w, y + h)
        class_names = [labels.get(self.object_ids[i]) or "object" for i in keep]
        return sv.Detections(
            xyxy=boxes,
            mask=self.masks[keep],
            confidence=self.scores[keep].astype(np.float32),
            tracker_id=np.array([self.object_ids[i] for i in keep], dtype=int),
            class_id=np.array([names.index(n) for n in class_names], dtype=int),
            data={"class_name": np.array(class_names, dtype=str)},
        )


class FrameSource(Protocol):
    """A video: its ``info`` and its frames in order (``frames(start, stop)``; what ``open_source`` returns)."""

    info: VideoInfo

    def frames(self, start: int = 0, stop: int | None = None) -> Iterator[Frame]: ...
