"""Errors as one line: what every door prints (``tracker: error: ...``) or answers (the studio)."""

from __future__ import annotations

import errno
import os
import tempfile

# Optional packages and the extra of sam2-tracker that brings each.
EXTRAS = {"supervision": "supervision", "uvicorn": "studio", "fastapi": "studio", "decord": "decord"}
EXTRAS.update({"matplotlib": "experiments", "hydra_plugins": "experiments"})
# Every folder the tool makes in the temp folder starts so (feature caches, the studio's downloads).
TEMP_PREFIX = "tracker-"


def missing_extra(e: ImportError) -> str | None:
    """The line that names the extra to install, for an optional package that is missing."""
    name = (getattr(e, "name", None) or "").split(".")[0]
    if isinstance(e, ModuleNotFoundError) and name in EXTRAS:
        return f"{name} is not installed: pip install 'sam2-tracker[{EXTRAS[name]}]'"
    return None


def one_line(e: BaseException) -> str:
    """The error as one line: our own errors say the bad value and the fix already."""
    if isinstance(e, ImportError) and missing_extra(e):
        return missing_extra(e)  # type: ignore[return-value]
    if isinstance(e, OSError) and e.errno == errno.ENOSPC:
        temp = tempfile.gettempdir()
        inside = os.path.relpath(os.path.abspath(str(e.filename or "")), temp).split(os.sep)[0]
        # Only our own temp folders are the temp folder's fault: an output_dir under /tmp is the output's disk.
        if e.filename and inside.startswith(TEMP_PREFIX):
            return f"no space left in the temp folder {temp!r} writing {str(e.filename)!r}: free space or set TMPDIR"
        where = repr(e.filename) if e.filename else "the outputs"
        return f"no space left on the device writing {where}: free space or pick another output_dir"
    if isinstance(e, MemoryError):
        return "out of memory: lower model.image_size, or track fewer objects at once"
    if isinstance(e, OSError) and e.strerror:
        return f"{e.strerror}: {e.filename!r}" if e.filename else e.strerror
    text = " ".join(str(e).split())
    if type(e).__module__.startswith("hydra"):
        # Hydra's messages run over several lines: keep what names the value, drop its search path.
        text = text.split(" Config search path:")[0]
        if text.startswith("Multiple values for"):
            text += " (a group in the defaults takes no '+': e.g. experiment=demo)"
        cause = e.__cause__ or e.__context__
        first = str(cause).strip().splitlines()[0] if cause is not None and str(cause).strip() else ""
        if first and first not in text:
            text += f" ({first})"
    if not isinstance(e, ValueError) and not type(e).__module__.startswith("hydra"):
        text = f"{type(e).__name__}: {text} (unexpected: run again with debug=true for the traceback)"
    text = text or type(e).__name__
    return text if len(text) <= 400 else text[:397] + "..."
