"""Image features kept on disk between passes, so that each frame goes through the image encoder once.

Objects with different first prompt frames make the warm-up and backward passes encode frames that the
forward sweep encodes again (8 objects prompted on frames 0, 10, ..., 70: 265 encoder runs for 120 frames).
The features those passes compute for a frame the forward sweep will track are written here as raw bytes
(a temporary folder of this process: never read from anything another process wrote) and read back, in
place of the encoder, when the sweep reaches the frame. The position encodings are the same for every
frame of a video (they depend on the size only) and stay in memory. A byte budget bounds the disk used: a
frame over it is encoded again, as before.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger(__name__)
_PREFIX = "tracker-features-"


def remove_dead_caches(root: str | Path | None = None) -> list[Path]:
    """Remove the feature folders of runs that died without removing theirs (SIGKILL): this user's
    ``tracker-features-<pid>-*`` folders in the temp folder whose process is gone. Returns those removed."""
    root = Path(root or tempfile.gettempdir())
    removed = []
    for p in root.glob(f"{_PREFIX}*-*"):
        pid = p.name[len(_PREFIX) :].split("-")[0]
        try:
            st = os.lstat(p)
            if not pid.isdigit() or not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
                continue
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p)
        except OSError:  # gone meanwhile, or another user's process (alive)
            continue
    return removed


class FeatureCache:
    """frame -> the backbone features of :class:`tracker.engine.sam.ImageFeatures`, on disk, each read once."""

    def __init__(self, max_bytes: int = 4 << 30) -> None:
        self.max_bytes = int(max_bytes)
        self.bytes = 0
        self.hits = 0
        self._dir: Path | None = None
        self._layout: list[tuple[str, int, tuple[int, ...], torch.dtype]] = []  # (key, level, shape, dtype)
        self._pos: dict[str, Any] = {}
        self._sizes: dict[int, int] = {}
        self._device: torch.device | None = None

    def __contains__(self, t: int) -> bool:
        return t in self._sizes

    def put(self, t: int, backbone_out: dict[str, Any]) -> None:
        """Keep frame t's features (the dict ``SAM2Base.forward_image`` returns), if the budget allows."""
        fpn = backbone_out["backbone_fpn"]
        size = sum(x.numel() * x.element_size() for x in fpn)
        if t in self._sizes or self.bytes + size > self.max_bytes:
            return
        if self._dir is None:
            remove_dead_caches()
            self._dir = Path(tempfile.mkdtemp(prefix=f"{_PREFIX}{os.getpid()}-"))
            self._layout = [("backbone_fpn", i, tuple(x.shape), x.dtype) for i, x in enumerate(fpn)]
            self._pos = {"vision_pos_enc": list(backbone_out["vision_pos_enc"])}
            self._device = fpn[0].device
        path = self._dir / f"{t}.bin"
        try:
            with open(path, "wb") as f:
                for x in fpn:
                    f.write(x.detach().contiguous().cpu().view(-1).view(torch.uint8).numpy().tobytes())
        except OSError as e:
            if e.errno != errno.ENOSPC:
                raise
            # The cache only saves encoder runs: a full temp folder makes the run slower, never fail.
            path.unlink(missing_ok=True)
            self.max_bytes = self.bytes
            log.warning(
                "no space left in %s for image features: frames are encoded again instead (set TMPDIR to a "
                "folder with room)",
                self._dir.parent,
            )
            return
        self._sizes[t] = size
        self.bytes += size

    def pop(self, t: int, keep: bool = False) -> dict[str, Any] | None:
        """Frame t's features as ``forward_image`` gave them (None when not kept); the file goes unless
        ``keep`` (a later pass reads the frame again)."""
        if t not in self._sizes or self._dir is None:
            return None
        path = self._dir / f"{t}.bin"
        raw = bytearray(path.read_bytes())
        if not keep:
            path.unlink()
            self.bytes -= self._sizes.pop(t)
        fpn, offset = [], 0
        for _, _, shape, dtype in self._layout:
            n = torch.Size(shape).numel() * torch.empty((), dtype=dtype).element_size()
            x = torch.frombuffer(raw, dtype=torch.uint8, count=n, offset=offset).view(dtype).reshape(shape)
            fpn.append(x.to(self._device))
            offset += n
        self.hits += 1
        # vision_features (the encoder's top level) is not read after forward_image: SAM 2 reads backbone_fpn
        return {"vision_features": fpn[-1], "vision_pos_enc": list(self._pos["vision_pos_enc"]), "backbone_fpn": fpn}

    def close(self) -> None:
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
        self._sizes.clear()
        self.bytes = 0
