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
import math
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ..masks import ImageError, decode_rle, encode_rle, png_id_hint
from ..records import Prompt, VideoInfo
from .images import read_image


class PromptError(ValueError):
    """The prompts do not describe valid objects."""


@dataclass(frozen=True)
class TrackSpec:
    """Everything the user asked to track: object labels and their prompts."""

    labels: Mapping[int, str | None]
    prompts: tuple[Prompt, ...]
    mask_files: tuple[Path, ...] = ()  # the mask PNGs the prompts were read from (inputs of the run)

    @property
    def object_ids(self) -> list[int]:
        return sorted(self.labels)

    def check_against(self, info: VideoInfo) -> None:
        for p in self.prompts:
            p.check_against(info)


MAX_OBJECT_ID = 2**31 - 1
_TOP_KEYS = {"objects"}
_OBJECT_KEYS = {"id", "label", "prompts"}
_PROMPT_KEYS = {"frame", "points", "box", "mask"}


MAX_LABEL_LENGTH = 100


def check_label(label: str, where: str = "label") -> str:
    """A name every output can carry: valid UTF-8 (no lone surrogates), at most 100 characters, no
    control characters (a tab, a newline or NUL would break MOT rows, YAML and the page)."""
    if len(label) > MAX_LABEL_LENGTH:
        raise PromptError(f"{where} is {len(label)} characters long: give at most {MAX_LABEL_LENGTH}")
    try:
        label.encode("utf-8")
    except UnicodeEncodeError:
        raise PromptError(f"{where} {label!r} is not valid UTF-8 (a lone surrogate): give a name in text") from None
    bad = next((c for c in label if unicodedata.category(c) in ("Cc", "Zl", "Zp")), None)
    if bad is not None:
        raise PromptError(f"{where} {label!r} holds the control character {bad!r}: give a name without it")
    return label


def _unknown(mapping: Mapping, allowed: set[str], where: str) -> None:
    unknown = sorted(str(k) for k in mapping if k not in allowed)
    if unknown:
        raise PromptError(f"{where}: unknown key {unknown[0]!r}: use {', '.join(sorted(allowed))}")


def _integer(value: Any, lo: int, hi: int, where: str, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
        raise PromptError(f"{where}: {what} {shown} must be an integer from {lo} to {hi}")
    return value


def _load_mask(value: Any, base: Path, where: str, files: list[Path]) -> np.ndarray:
    if isinstance(value, str):
        path = (base / value) if not Path(value).is_absolute() else Path(value)
        files.append(path)
        if not path.is_file():
            raise PromptError(f"{where}: mask file {str(path)!r} does not exist: give a PNG path")
        try:
            return read_image(path, "L") > 0
        except ImageError as e:
            raise PromptError(f"{where}: mask {e}") from None
    if isinstance(value, Mapping):
        _unknown(value, {"size", "counts"}, f"{where}: mask RLE")
        try:
            return decode_rle(value)
        except ValueError as e:
            raise PromptError(f"{where}: mask {e}") from None
    raise PromptError(f"{where}: mask {value!r} is neither a PNG path nor a COCO RLE {{size, counts}}")


def _number_list(value: Any, n: int, where: str, what: str) -> list[float]:
    if not isinstance(value, Sequence) or isinstance(value, str) or len(value) != n:
        shape = "[x0, y0, x1, y1]" if what == "box" else "[x, y, label]"
        shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
        raise PromptError(f"{where}: {what} {shown} must be {shape}")
    out = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise PromptError(f"{where}: {what} {list(value)!r} must contain numbers")
        try:
            f = float(v)
        except OverflowError:
            f = math.inf
        if not math.isfinite(f):
            shown = repr(v) if len(repr(v)) <= 20 else repr(v)[:17] + "..."
            raise PromptError(f"{where}: {what} has the value {shown}: coordinates must be finite numbers")
        out.append(f)
    return out


def parse_prompts(data: Any, base: Path = Path("."), max_id: int = MAX_OBJECT_ID) -> TrackSpec:
    """Build a :class:`TrackSpec` from the parsed file content; raise PromptError naming the bad value.

    ``max_id``: the largest object id the outputs can hold (255 when mask PNGs are written)."""
    if not isinstance(data, Mapping) or not isinstance(data.get("objects"), list) or not data["objects"]:
        raise PromptError(
            "prompts file must have a non-empty 'objects:' list (see tracker/io/prompts.py for the schema)"
        )
    _unknown(data, _TOP_KEYS, "prompts file")
    labels: dict[int, str | None] = {}
    prompts: list[Prompt] = []
    files: list[Path] = []
    for i, obj in enumerate(data["objects"]):
        if not isinstance(obj, Mapping) or "id" not in obj:
            raise PromptError(f"objects[{i}] has no 'id': give every object an integer id")
        oid = obj["id"]
        if isinstance(oid, int) and not isinstance(oid, bool) and oid == 0:
            raise PromptError(f"objects[{i}]: id 0 is the background value of mask PNGs: use ids from 1")
        hint = png_id_hint(max_id)
        try:
            _integer(oid, 1, max_id, f"objects[{i}]", "id")
        except PromptError as e:
            raise PromptError(f"{e}{hint}") from None
        if oid in labels:
            raise PromptError(f"object id {oid} appears twice: ids must be unique")
        _unknown(obj, _OBJECT_KEYS, f"object {oid}")
        label = obj.get("label")
        if label is not None and (isinstance(label, bool) or not isinstance(label, (str, int, float))):
            raise PromptError(f"object {oid}: label {label!r} must be a name (text)")
        labels[oid] = None if label is None else check_label(str(label), f"object {oid}: label")
        entries = obj.get("prompts")
        if not isinstance(entries, list) or not entries:
            raise PromptError(f"object {oid}: no 'prompts:' list: give at least one prompt frame")
        for entry in entries:
            if not isinstance(entry, Mapping) or "frame" not in entry:
                raise PromptError(f"object {oid}: a prompt has no 'frame': give the frame index (from 0)")
            frame = _integer(entry["frame"], 0, 2**31 - 1, f"object {oid}", "frame")
            where = f"object {oid}, frame {frame}"
            _unknown(entry, _PROMPT_KEYS, where)
            raw_points = entry.get("points")
            if raw_points is not None and not isinstance(raw_points, list):
                raise PromptError(f"{where}: points {raw_points!r} must be a list of [x, y, label]")
            points = []
            for p in raw_points or []:
                x, y, lab = _number_list(p, 3, where, "point")
                if lab not in (0.0, 1.0):
                    raise PromptError(f"{where}: point label {p[2]!r} is unknown: use 1 (positive) or 0 (negative)")
                points.append((x, y, int(lab)))
            box = entry.get("box")
            box_t = tuple(_number_list(box, 4, where, "box")) if box is not None else None
            mask = _load_mask(entry["mask"], base, where, files) if entry.get("mask") is not None else None
            try:
                prompts.append(Prompt(oid, frame, points=tuple(points), box=box_t, mask=mask))  # type: ignore[arg-type]
            except ValueError as e:
                raise PromptError(str(e)) from None
    return TrackSpec(labels=labels, prompts=tuple(prompts), mask_files=tuple(files))


def load_prompts(path: str | Path, max_id: int = MAX_OBJECT_ID) -> TrackSpec:
    path = Path(path)
    if not path.is_file():
        raise PromptError(f"prompts file {str(path)!r} does not exist: check prompts.path")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        why = type(e).__name__
        raise PromptError(f"prompts file {str(path)!r} cannot be read as text ({why}): give YAML or JSON") from None
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError, RecursionError) as e:
        kind = path.suffix[1:].upper() or "YAML"
        first_line = (str(e).splitlines() or [type(e).__name__])[0]
        raise PromptError(f"prompts file {str(path)!r} is not valid {kind}: {first_line}") from None
    return parse_prompts(data, base=path.parent, max_id=max_id)


def quick_prompts(
    frame: int = 0,
    box: Sequence[float] | None = None,
    points: Sequence[Sequence[float]] | None = None,
    object_id: int = 1,
    label: str | None = None,
    max_id: int = MAX_OBJECT_ID,
) -> TrackSpec:
    """One object from command-line values (``prompts.box=[x0,y0,x1,y1] prompts.frame=0``)."""
    entry: dict[str, Any] = {"frame": frame}
    if box is not None:
        entry["box"] = list(box)
    if points is not None:
        entry["points"] = points
    return parse_prompts({"objects": [{"id": object_id, "label": label, "prompts": [entry]}]}, max_id=max_id)


def _num(v: float) -> float | int:
    return int(v) if float(v).is_integer() else float(v)


def prompt_entry(frame: int, points: Sequence, box: Sequence[float] | None, mask: np.ndarray | None) -> dict:
    """One prompt frame as the file's schema writes it (whole numbers as integers, a mask as COCO RLE)."""
    entry: dict[str, Any] = {"frame": frame}
    if points:
        entry["points"] = [[_num(x), _num(y), int(lab)] for x, y, lab in points]
    if box is not None:
        entry["box"] = [_num(v) for v in box]
    if mask is not None:
        entry["mask"] = encode_rle(mask)
    return entry


def prompts_yaml(spec: TrackSpec, head: str = "") -> str:
    """``spec`` as a prompts file that :func:`load_prompts` reads back as the same prompts: what a run
    given its prompts in Python keeps beside its outputs."""
    objects = []
    for oid, label in spec.labels.items():
        entries = [prompt_entry(p.frame_index, p.points, p.box, p.mask) for p in spec.prompts if p.object_id == oid]
        objects.append({"id": oid, **({"label": label} if label is not None else {}), "prompts": entries})
    return head + yaml.safe_dump({"objects": objects}, sort_keys=False, default_flow_style=None, width=1 << 16)
