"""Plug-ins: the Python files (or importable modules) the config's ``plugins`` list names, imported before
the rest of the config is checked, so that the sinks, source kinds and memory policies they register are
known to the checks like the built-in ones. Their yaml (``memory/<name>.yaml``, ``source/<kind>.yaml``, a
``sink/`` file with their switch and keys) comes from a config folder Hydra is given (``--config-dir``).

    tracker --config-dir my_plugins plugins=[my_plugins/blur_sink.py] sink=with_blur sink.blur=true ...
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from ..settings import shown

_MODULE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_LOADED: set[str] = set()  # resolved files: a plug-in is imported once per process


class PluginError(ValueError):
    """A ``plugins`` entry that cannot be imported; the message names it and the fix."""


def load_plugins(entries: Any, output_dir: str | Path | None = None) -> None:
    """Import each entry of ``plugins`` (a ``.py`` file, or a module name on ``sys.path``) once. A plug-in
    file inside the run's output folder is refused: what a run finds there is data, never code."""
    if entries is None:
        return
    if not isinstance(entries, (list, tuple)) or not all(isinstance(e, str) and e.strip() for e in entries):
        raise PluginError(
            f"plugins={shown(entries)} is not usable: give a list of Python files or module names "
            "(e.g. plugins=[my_plugins/blur_sink.py])"
        )
    for entry in entries:
        _load(entry, output_dir)


def _is_file(entry: str) -> bool:
    return entry.endswith(".py") or "/" in entry or "\\" in entry


def _load(entry: str, output_dir: str | Path | None) -> None:
    if not _is_file(entry):
        if not _MODULE_NAME.fullmatch(entry):
            raise PluginError(f"plugins: {entry!r} is neither a .py file nor a module name: give one of those")
        _run(entry, lambda: importlib.import_module(entry))
        return
    path = Path(entry).expanduser().resolve()
    if path.suffix != ".py" or not path.is_file():
        raise PluginError(f"plugins: {entry!r} is not a Python file (.py): give the plug-in's file or module name")
    if output_dir is not None and path.is_relative_to(Path(output_dir).resolve()):
        raise PluginError(
            f"plugins: {entry!r} is inside the output folder {str(output_dir)!r}: a run reads what it finds there "
            "as data, never code; keep plug-ins in a folder of their own"
        )
    if str(path) not in _LOADED:
        _run(entry, lambda: _import_file(path))
        _LOADED.add(str(path))


def _import_file(path: Path) -> ModuleType:
    # A name of its own per file (two plug-ins may both be called sink.py), registered before it runs:
    # dataclasses look their module up in sys.modules.
    stem = re.sub(r"[^A-Za-z0-9_]", "_", path.stem)
    name = f"tracker_plugin_{stem}_{hashlib.sha1(str(path).encode()).hexdigest()[:8]}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def _run(entry: str, load: Any) -> Any:
    try:
        return load()
    except Exception as e:
        text = " ".join(str(e).split())[:300]
        raise PluginError(f"plugins: {entry!r} failed to load ({type(e).__name__}: {text}): fix the plug-in") from None
