"""Writing into folders a run does not own alone (OUT, its staging, ``.resume/``) without following links:
whatever stands at a name is data, never a way out of the folder."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomic(path: Path, data: bytes | str, fsync: bool = False) -> None:
    """Write ``data`` to a private temp name beside ``path`` (``mkstemp``: a new file with a random name,
    never an existing one or a link planted there), then rename it over ``path``: a link at ``path`` is
    replaced, not written through; readers see the old or the new content, never half of it."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def links_under(root: Path) -> list[Path]:
    """Symbolic links at ``root`` or anywhere below it (links are not followed)."""
    root = Path(root)
    if root.is_symlink():
        return [root]
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in (*dirnames, *filenames):
            p = Path(dirpath) / name
            if p.is_symlink():
                found.append(p)
    return found
