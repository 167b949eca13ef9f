"""Detections in: boxes per frame from a box detector or tracker, read into prompts.

    mot   MOTChallenge text: ``frame, id, x, y, w, h, conf, ...`` (frames and pixels from 1)
    coco  COCO detection JSON: ``images`` (frame by ``frame_index``, else by file-name order) and
          ``annotations`` with ``bbox`` [x, y, w, h] and, when present, ``track_id``
    yolo  a folder of YOLO txt files, one per frame in the order of the numbers in their names:
          ``class cx cy w h`` normalised to 0..1, no ids

Each track's first box seeds an object with the track's id on that frame (a box prompt). Detections
without ids (yolo) are linked into tracks first: a box continues the track whose last box, at most
``max_gap`` frames earlier, overlaps it most (box IoU above ``link_iou``); otherwise it starts a track.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..records import Prompt
from .prompts import MAX_OBJECT_ID, PromptError, TrackSpec

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in video pixels (from 0)


@dataclass(frozen=True)
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
                out.append(Detection(int(frame) - 1, (x - 1, y - 1, x - 1 + w, y - 1 + h), int(tid), conf))
    except UnicodeDecodeError:
        raise PromptError(f"detections file {str(path)!r} is not text: give a MOTChallenge .txt/.csv") from None
    return out


def read_coco(path: Path) -> list[Detection]:
    """COCO detection JSON; ``track_id`` when the annotations have one."""
    try:
        data = json.loads(Path(path).read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise PromptError(f"detections file {str(path)!r} is not valid JSON ({type(e).__name__})") from None
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
    names. Boxes stay normalised (0..1): :func:`detection_prompts` scales them to the video."""
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


def link(detections: list[Detection], link_iou: float = 0.3, max_gap: int = 2) -> list[Detection]:
    """Give id-less detections track ids (1, 2, ...): greedy box-IoU linking, frame by frame."""
    tracks: dict[int, Detection] = {}  # id -> last detection
    out = []
    for frame in sorted({d.frame for d in detections}):
        here = sorted((d for d in detections if d.frame == frame), key=lambda d: -d.score)
        taken: set[int] = set()
        for d in here:
            best, best_iou = None, link_iou
            for tid, last in tracks.items():
                if tid in taken or frame - last.frame > max_gap:
                    continue
                iou = box_iou(last.box, d.box)
                if iou > best_iou:
                    best, best_iou = tid, iou
            tid = best if best is not None else len(tracks) + 1
            taken.add(tid)
            d = Detection(d.frame, d.box, tid, d.score)
            tracks[tid] = d
            out.append(d)
    return out


def detection_prompts(
    detections: list[Detection],
    width: int,
    height: int,
    min_score: float = 0.0,
    max_id: int = MAX_OBJECT_ID,
    normalised: bool = False,
) -> TrackSpec:
    """A box prompt per track on its first frame (boxes clipped to the frame; empty ones skipped).
    ``normalised``: boxes are in 0..1 (YOLO) and are scaled to the video first."""
    dets = [d for d in detections if d.score >= min_score]
    if normalised:
        sx, sy = width, height
        dets = [
            Detection(d.frame, (d.box[0] * sx, d.box[1] * sy, d.box[2] * sx, d.box[3] * sy), d.track_id, d.score)
            for d in dets
        ]
    if any(d.track_id is None for d in dets):
        dets = link(dets)
    first: dict[int, Detection] = {}
    for d in sorted(dets, key=lambda d: d.frame):
        x0, y0, x1, y1 = (
            max(0.0, d.box[0]),
            max(0.0, d.box[1]),
            min(float(width), d.box[2]),
            min(float(height), d.box[3]),
        )
        if x1 - x0 < 1 or y1 - y0 < 1 or d.track_id in first:
            continue
        first[d.track_id] = Detection(d.frame, (x0, y0, x1, y1), d.track_id, d.score)  # type: ignore[index]
    if not first:
        raise PromptError("the detections hold no box inside the video (check the format and prompts.min_score)")
    bad = [t for t in first if not 1 <= t <= max_id]
    if bad:
        hint = " (mask PNGs hold 0..255: turn sink.png off for larger ids)" if max_id == 255 else ""
        raise PromptError(f"track id {bad[0]} is outside 1..{max_id}{hint}")
    prompts = tuple(Prompt(t, d.frame, box=d.box) for t, d in sorted(first.items()))
    return TrackSpec(labels={t: None for t in first}, prompts=prompts)


def read_detections(path: str | Path, fmt: str) -> list[Detection]:
    """Read and check a detections file (a folder for yolo, whose boxes stay normalised)."""
    p = Path(path)
    if not p.exists():
        raise PromptError(f"detections {str(p)!r} do not exist: check prompts.path")
    if fmt == "mot":
        return read_mot(p)
    if fmt == "coco":
        return read_coco(p)
    if fmt == "yolo":
        return read_yolo(p)
    raise PromptError(f"prompts.format={fmt!r} is unknown: use mot, coco or yolo")
