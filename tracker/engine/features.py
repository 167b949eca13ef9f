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

import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch


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
            self._dir = Path(tempfile.mkdtemp(prefix="tracker-features-"))
            self._layout = [("backbone_fpn", i, tuple(x.shape), x.dtype) for i, x in enumerate(fpn)]
            self._pos = {"vision_pos_enc": list(backbone_out["vision_pos_enc"])}
            self._device = fpn[0].device
        with open(self._dir / f"{t}.bin", "wb") as f:
            for x in fpn:
                f.write(x.detach().contiguous().cpu().view(-1).view(torch.uint8).numpy().tobytes())
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
