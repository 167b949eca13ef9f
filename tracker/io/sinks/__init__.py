"""Sinks: where tracked frames go, one module each. A module registers its sink (``register``): the
``sink.<key>`` switch, the names it writes and its factory; a new sink is a new module here and a key in
``configs/sink/``. Every sink is a context manager with ``write(frame, masks)``."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable

from .base import SINKS, FrameImages, Sink, SinkContext, SinkKind, frame_name, sink_settings, write_json_atomic
from .coco import CocoSink
from .jsonl import JsonlSink
from .mot import MotSink, MotsSink
from .png import PngMasksSink, davis_palette
from .video import AnnotatedVideoSink
from .yolo import YoloSink, mask_polygon

# Every module here registers its sink on import (a new module joins without an edit here).
for _m in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_m.name}")


def sink_files(keys: Iterable[str]) -> list[str]:
    """The names the sinks ``keys`` write into OUT, sorted."""
    return sorted({name for k in keys for name in SINKS[k].files})


def make_sinks(keys: Iterable[str], context: SinkContext) -> list[Sink]:
    return [SINKS[k].make(context) for k in keys]


__all__ = [
    "SINKS",
    "AnnotatedVideoSink",
    "CocoSink",
    "FrameImages",
    "JsonlSink",
    "MotSink",
    "MotsSink",
    "PngMasksSink",
    "Sink",
    "SinkContext",
    "SinkKind",
    "YoloSink",
    "davis_palette",
    "frame_name",
    "make_sinks",
    "mask_polygon",
    "sink_files",
    "sink_settings",
    "write_json_atomic",
]
