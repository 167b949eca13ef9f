"""Checks of one setting's value, shared by the plug-ins' settings records (a sink's, a source kind's) and
the run's config checks: each returns the value or raises one ValueError line naming ``key=value`` and the
fix."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import fields
from typing import Any


def record_from(record: type, node: Mapping[str, Any]) -> Any:
    """A settings record (a frozen dataclass that checks itself) from a config node: its fields' keys found
    there, the rest its defaults."""
    return record(**{f.name: node[f.name] for f in fields(record) if f.name in node})


def shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def integer(key: str, v: Any, lo: int, hi: int | None = None, example: int | None = None) -> int:
    bad = not isinstance(v, int) or isinstance(v, bool) or v < lo or (hi is not None and v > hi)
    if bad:
        span = f"from {lo} to {hi}" if hi is not None else f"of at least {lo}"
        eg = example if example is not None else lo
        raise ValueError(f"{key}={shown(v)} is not usable: give an integer {span} (e.g. {key}={eg})")
    return v


def number(key: str, v: Any, lo: float, hi: float, open_lo: bool = False) -> float:
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    if not ok or v > hi or v < lo or (open_lo and v == lo):
        lo_text = f"over {lo}" if open_lo else f"from {lo}"
        raise ValueError(f"{key}={shown(v)} is not usable: give a number {lo_text} to {hi}")
    return float(v)


def boolean(key: str, v: Any) -> bool:
    if not isinstance(v, bool):
        raise ValueError(f"{key}={shown(v)} is not usable: give true or false")
    return v


def choice(key: str, v: Any, options: Sequence[Any]) -> Any:
    if v not in options:
        raise ValueError(f"{key}={shown(v)} is unknown: use one of {', '.join(map(str, options))}")
    return v


def text_or_null(key: str, v: Any) -> str | None:
    if v is not None and (not isinstance(v, str) or not v.strip()):
        raise ValueError(f"{key}={shown(v)} is not usable: give a path or leave it unset")
    return v
