"""Detections in: boxes per frame from a box detector or tracker, read into prompts.

    mot   MOTChallenge text: ``frame, id, x, y, w, h, conf, ...`` (frames and pixels from 1; id -1, as in
          det.txt files, is a detection without identity)
    coco  COCO detection JSON: ``images`` (frame by ``frame_index``, else by file-name order) and
          ``annotations`` with ``bbox`` [x, y, w, h] and, when present, ``track_id``
    yolo  a folder of YOLO txt files, one per frame in the order of the numbers in their names:
          ``class cx cy w h`` normalised to 0..1, no ids

Each track's first box seeds an object with the track's id on that frame (a box prompt); its later
boxes re-prompt the object where its mask drifts off them. Detections without ids (yolo): the boxes of
the first frame that has any seed objects 1, 2, ...; later boxes are matched to the tracked masks by
the engine (tracker/discovery/discover.py) and those matching none start new objects.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..masks import png_id_hint
from ..records import Prompt
from .prompts import MAX_OBJECT_ID, PromptError, TrackSpec

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in video pixels (from 0)


@dataclass(frozen=True, slots=True)  # slots: a large file's rows stay small in memory
class Detection:
    frame: int  # from 0
    box: Box
    track_id: int | None
    score: float


def _finite(values: Iterable[str | float], where: str) -> list[float]:
    out = []
    for v in values:
        try:
            f = float(v)
        except (TypeError, ValueError):
            raise PromptError(f"{where}: {v!r} is not a number") from None
        if not math.isfinite(f):
            raise PromptError(f"{where}: {v!r} is not a finite number")
        out.append(f)
    return out


def read_mot(path: Path) -> list[Detection]:
    """MOTChallenge rows; frames and pixel coordinates count from 1 there, from 0 here."""
    out = []
    try:
        with open(path, newline="") as f:
            for n, row in enumerate(csv.reader(f), start=1):
                if not row or not "".join(row).strip():
                    continue
                where = f"{path}, line {n}"
                if len(row) < 6:
                    raise PromptError(
                        f"{where}: {len(row)} columns, MOTChallenge rows need frame,id,x,y,w,h[,conf,...]"
                    )
                frame, tid, x, y, w, h = _finite(row[:6], where)
                conf = _finite(row[6:7], where)[0] if len(row) > 6 and row[6].strip() else 1.0
                if frame < 1 or frame != int(frame) or tid != int(tid):
                    raise PromptError(f"{where}: frame {row[0]!r} and id {row[1]!r} must be integers, frames from 1")
                # id -1: a detection without identity (MOTChallenge's det.txt)
                track_id = None if tid == -1 else int(tid)
                out.append(Detection(int(frame) - 1, (x - 1, y - 1, x - 1 + w, y - 1 + h), track_id, conf))
    except UnicodeDecodeError:
        raise PromptError(f"detections file {str(path)!r} is not text: give a MOTChallenge .txt/.csv") from None
    return out


def read_coco(path: Path) -> list[Detection]:
    """COCO detection JSON; ``track_id`` when the annotations have one."""
    try:
        data = json.loads(Path(path).read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise PromptError(f"detections file {str(path)!r} is not valid JSON ({type(e).__name__})") from None
    except RecursionError:
        raise PromptError(f"detections file {str(path)!r} is nested too deeply to be COCO") from None
    check_depth(data, MAX_JSON_DEPTH, f"detections file {str(path)!r}")
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("images"), list)
        or not isinstance(data.get("annotations"), list)
    ):
        raise PromptError(f"detections file {str(path)!r} is not COCO: it needs 'images' and 'annotations' lists")
    images = [im for im in data["images"] if isinstance(im, dict)]
    if all("frame_index" in im for im in images):
        frame_of = {im.get("id"): im["frame_index"] for im in images}
    else:
        order = sorted(images, key=lambda im: str(im.get("file_name", "")))
        frame_of = {im.get("id"): i for i, im in enumerate(order)}
    out = []
    for i, a in enumerate(data["annotations"]):
        where = f"{path}, annotations[{i}]"
        if not isinstance(a, dict) or a.get("image_id") not in frame_of or not isinstance(a.get("bbox"), list):
            raise PromptError(f"{where}: needs an 'image_id' of a listed image and a 'bbox' [x, y, w, h]")
        if len(a["bbox"]) != 4:
            raise PromptError(f"{where}: bbox {a['bbox']!r} must be [x, y, w, h]")
        x, y, w, h = _finite(a["bbox"], where)
        tid = a.get("track_id")
        if tid is not None and (not isinstance(tid, int) or isinstance(tid, bool)):
            raise PromptError(f"{where}: track_id {tid!r} must be an integer")
        frame = frame_of[a["image_id"]]
        if not isinstance(frame, int) or frame < 0:
            raise PromptError(f"{where}: its image's frame_index {frame!r} must be an integer from 0")
        score = _finite([a.get("score", 1.0)], where)[0]
        out.append(Detection(frame, (x, y, x + w, y + h), tid, score))
    return out


def read_yolo(folder: Path) -> list[Detection]:
    """YOLO txt files (``class cx cy w h``, normalised), one per frame, ordered by the numbers in their
    names. Boxes stay normalised (0..1): :func:`detection_plan` scales them to the video."""
    folder = Path(folder)
    if not folder.is_dir():
        raise PromptError(f"YOLO detections {str(folder)!r} is not a folder of .txt files (one per frame)")
    files = sorted(folder.glob("*.txt"), key=lambda p: (int((re.findall(r"\d+", p.stem) or ["-1"])[-1]), p.name))
    out = []
    for frame, f in enumerate(files):
        for n, line in enumerate(f.read_text(errors="replace").splitlines(), start=1):
            if not line.strip():
                continue
            parts = line.split()
            where = f"{f}, line {n}"
            if len(parts) < 5:
                raise PromptError(f"{where}: YOLO boxes are 'class cx cy w h' (normalised), got {len(parts)} values")
            _, cx, cy, w, h = _finite(parts[:5], where)
            score = _finite(parts[5:6], where)[0] if len(parts) > 5 else 1.0
            if not (0 <= cx <= 1 and 0 <= cy <= 1 and 0 < w <= 1 and 0 < h <= 1):
                raise PromptError(f"{where}: YOLO values must be normalised to 0..1")
            box = (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
            out.append(Detection(frame, box, None, score))
    return out


def box_iou(a: Box, b: Box) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


@dataclass(frozen=True)
class DetectionPlan:
    """What a run does with detections: ``spec`` seeds objects (a box prompt per track on its first
    frame; without ids, the boxes of the first frame that has any, ids 1, 2, ...); ``later``: frame ->
    {track id: box}, the tracks' later boxes (they re-prompt drifting masks); ``unmatched``: frame ->
    boxes without ids after the first frame (they join as new objects where no tracked mask matches)."""

    spec: TrackSpec
    later: dict[int, dict[int, Box]]
    unmatched: dict[int, list[Box]]


def detection_plan(
    detections: list[Detection],
    width: int,
    height: int,
    min_score: float = 0.0,
    max_id: int = MAX_OBJECT_ID,
    normalised: bool = False,
) -> DetectionPlan:
    """Boxes clipped to the frame (empty ones skipped) and sorted into seeds, later boxes and id-less
    boxes. ``normalised``: boxes are in 0..1 (YOLO) and are scaled to the video first."""
    sx, sy = (width, height) if normalised else (1, 1)
    clipped: list[Detection] = []
    for d in sorted((d for d in detections if d.score >= min_score), key=lambda d: (d.frame, -d.score)):
        x0, y0 = max(0.0, d.box[0] * sx), max(0.0, d.box[1] * sy)
        x1, y1 = min(float(width), d.box[2] * sx), min(float(height), d.box[3] * sy)
        if x1 - x0 >= 1 and y1 - y0 >= 1:
            clipped.append(Detection(d.frame, (x0, y0, x1, y1), d.track_id, d.score))
    if not clipped:
        raise PromptError("the detections hold no box inside the video (check the format and prompts.min_score)")
    first: dict[int, Detection] = {}
    later: dict[int, dict[int, Box]] = {}
    unmatched: dict[int, list[Box]] = {}
    seed_frame = min(d.frame for d in clipped if d.track_id is None) if any(d.track_id is None for d in clipped) else -1
    next_id = max((d.track_id for d in clipped if d.track_id is not None), default=0) + 1
    for d in clipped:
        if d.track_id is None and d.frame == seed_frame:
            first[next_id] = Detection(d.frame, d.box, next_id, d.score)
            next_id += 1
        elif d.track_id is None:
            unmatched.setdefault(d.frame, []).append(d.box)
        elif d.track_id not in first:
            first[d.track_id] = d
        else:
            later.setdefault(d.frame, {})[d.track_id] = d.box
    bad = [t for t in first if not 1 <= t <= max_id]
    if bad:
        hint = png_id_hint(max_id)
        raise PromptError(f"track id {bad[0]} is outside 1..{max_id}{hint}")
    prompts = tuple(Prompt(t, d.frame, box=d.box) for t, d in sorted(first.items()))
    return DetectionPlan(TrackSpec(labels={t: None for t in first}, prompts=prompts), later, unmatched)


MAX_JSON_DEPTH = 32  # COCO is 4 levels deep


def check_depth(data: object, limit: int, what: str) -> None:
    """Refuse data nested deeper than ``limit`` (walked without recursion)."""
    stack = [(data, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            raise PromptError(f"{what} is nested more than {limit} levels deep: it is not what it claims to be")
        if isinstance(node, dict):
            stack += [(v, depth + 1) for v in node.values()]
        elif isinstance(node, list):
            stack += [(v, depth + 1) for v in node]


def read_detections(path: str | Path, fmt: str, max_mb: float = 16, max_per_frame: int = 256) -> list[Detection]:
    """Read and check a detections file (a folder for yolo, whose boxes stay normalised). Files over
    ``max_mb`` and frames with more than ``max_per_frame`` boxes are refused (memory stays bounded)."""
    p = Path(path)
    if not p.exists():
        raise PromptError(f"detections {str(p)!r} do not exist: check prompts.path")
    if fmt not in ("mot", "coco", "yolo"):
        raise PromptError(f"prompts.format={fmt!r} is unknown: use mot, coco or yolo")
    size = sum(f.stat().st_size for f in p.glob("*.txt")) if p.is_dir() else p.stat().st_size
    if size > max_mb * 2**20:
        raise PromptError(
            f"detections {str(p)!r} are {size / 2**20:.0f} MB, over limits.max_detections_mb={max_mb:g}: "
            "split the video, or raise the limit"
        )
    out = read_mot(p) if fmt == "mot" else read_coco(p) if fmt == "coco" else read_yolo(p)
    per_frame = Counter(d.frame for d in out)
    if per_frame:
        frame, n = per_frame.most_common(1)[0]
        if n > max_per_frame:
            raise PromptError(
                f"detections {str(p)!r} hold {n} boxes on frame {frame}, over limits.max_boxes_per_frame="
                f"{max_per_frame}: filter them (prompts.min_score) or raise the limit"
            )
    return out
