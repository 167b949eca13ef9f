"""Prompts: what to track, read from a YAML/JSON file or given on the command line.

File schema (coordinates in original video pixels, frames counted from 0)::

    objects:
      - id: 1                 # stable integer id, written to every output
        label: car            # optional name
        prompts:
          - frame: 0
            points: [[x, y, 1], [x, y, 0]]   # 1 = positive click, 0 = negative click
            box: [x0, y0, x1, y1]
            mask: masks/car.png               # PNG (non-zero = object) or COCO RLE {size, counts}

Each prompt needs at least one of points, box, mask. Several prompt frames per object are allowed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from PIL import Image
from pycocotools import mask as mask_utils

from .records import Prompt, VideoInfo


class PromptError(ValueError):
    """The prompts do not describe valid objects."""


@dataclass(frozen=True)
class TrackSpec:
    """Everything the user asked to track: object labels and their prompts."""

    labels: Mapping[int, str | None]
    prompts: tuple[Prompt, ...]

    @property
    def object_ids(self) -> list[int]:
        return sorted(self.labels)

    def check_against(self, info: VideoInfo) -> None:
        for p in self.prompts:
            p.check_against(info)


def _load_mask(value: Any, base: Path, where: str) -> np.ndarray:
    if isinstance(value, str):
        path = (base / value) if not Path(value).is_absolute() else Path(value)
        if not path.is_file():
            raise PromptError(f"{where}: mask file {str(path)!r} does not exist: give a PNG path")
        try:
            with Image.open(path) as im:
                return np.asarray(im.convert("L")) > 0
        except OSError:
            raise PromptError(f"{where}: mask file {str(path)!r} is not an image: give a PNG") from None
    if isinstance(value, Mapping) and "size" in value and "counts" in value:
        rle = {"size": list(value["size"]), "counts": value["counts"]}
        if isinstance(rle["counts"], str):
            rle["counts"] = rle["counts"].encode()
        elif isinstance(rle["counts"], list):
            rle = mask_utils.frPyObjects(rle, *rle["size"])
        return mask_utils.decode(rle).astype(bool)
    raise PromptError(f"{where}: mask {value!r} is neither a PNG path nor a COCO RLE {{size, counts}}")


def _number_list(value: Any, n: int | None, where: str, what: str) -> list[float]:
    if not isinstance(value, Sequence) or isinstance(value, str) or (n is not None and len(value) != n):
        shape = f"[{', '.join(['x0', 'y0', 'x1', 'y1'][:n])}]" if what == "box" else "[x, y, label]"
        raise PromptError(f"{where}: {what} {value!r} must be {shape}")
    try:
        return [float(v) for v in value]
    except (TypeError, ValueError):
        raise PromptError(f"{where}: {what} {value!r} must contain numbers") from None


def parse_prompts(data: Any, base: Path = Path(".")) -> TrackSpec:
    """Build a :class:`TrackSpec` from the parsed file content; raise PromptError naming the bad value."""
    if not isinstance(data, Mapping) or not isinstance(data.get("objects"), Sequence) or not data["objects"]:
        raise PromptError("prompts file must have a non-empty 'objects:' list (see tracker/prompts.py for the schema)")
    labels: dict[int, str | None] = {}
    prompts: list[Prompt] = []
    for i, obj in enumerate(data["objects"]):
        if not isinstance(obj, Mapping) or "id" not in obj:
            raise PromptError(f"objects[{i}] has no 'id': give every object an integer id")
        oid = obj["id"]
        if not isinstance(oid, int) or isinstance(oid, bool) or oid < 0:
            raise PromptError(f"objects[{i}]: id {oid!r} is not a non-negative integer")
        if oid in labels:
            raise PromptError(f"object id {oid} appears twice: ids must be unique")
        labels[oid] = None if obj.get("label") is None else str(obj["label"])
        entries = obj.get("prompts")
        if not isinstance(entries, Sequence) or not entries:
            raise PromptError(f"object {oid}: no 'prompts:' list: give at least one prompt frame")
        for entry in entries:
            if not isinstance(entry, Mapping) or "frame" not in entry:
                raise PromptError(f"object {oid}: a prompt has no 'frame': give the frame index (from 0)")
            frame = entry["frame"]
            if not isinstance(frame, int) or isinstance(frame, bool):
                raise PromptError(f"object {oid}: frame {frame!r} is not an integer frame index")
            where = f"object {oid}, frame {frame}"
            unknown = set(entry) - {"frame", "points", "box", "mask"}
            if unknown:
                raise PromptError(f"{where}: unknown key {sorted(unknown)[0]!r}: use points, box or mask")
            points = []
            for p in entry.get("points") or []:
                x, y, lab = _number_list(p, 3, where, "point")
                if lab not in (0.0, 1.0):
                    raise PromptError(f"{where}: point label {p[2]!r} is unknown: use 1 (positive) or 0 (negative)")
                points.append((x, y, int(lab)))
            box = entry.get("box")
            box_t = tuple(_number_list(box, 4, where, "box")) if box is not None else None
            mask = _load_mask(entry["mask"], base, where) if entry.get("mask") is not None else None
            try:
                prompts.append(Prompt(oid, frame, points=tuple(points), box=box_t, mask=mask))  # type: ignore[arg-type]
            except ValueError as e:
                raise PromptError(str(e)) from None
    return TrackSpec(labels=labels, prompts=tuple(prompts))


def load_prompts(path: str | Path) -> TrackSpec:
    path = Path(path)
    if not path.is_file():
        raise PromptError(f"prompts file {str(path)!r} does not exist: check prompts.path")
    text = path.read_text()
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as e:
        kind = path.suffix[1:].upper() or "YAML"
        first_line = str(e).splitlines()[0]
        raise PromptError(f"prompts file {str(path)!r} is not valid {kind}: {first_line}") from None
    return parse_prompts(data, base=path.parent)


def quick_prompts(
    frame: int = 0,
    box: Sequence[float] | None = None,
    points: Sequence[Sequence[float]] | None = None,
    object_id: int = 1,
    label: str | None = None,
) -> TrackSpec:
    """One object from command-line values (``prompts.box=[x0,y0,x1,y1] prompts.frame=0``)."""
    entry: dict[str, Any] = {"frame": frame}
    if box is not None:
        entry["box"] = list(box)
    if points is not None:
        entry["points"] = [list(p) for p in points]
    return parse_prompts({"objects": [{"id": object_id, "label": label, "prompts": [entry]}]})
