"""Resumable file runs: ``OUT/.resume/`` holds the engine's bounded state and every sink's position
(``checkpoint.pt``, rewritten atomically every ``resume_every`` frames), the results waiting for their
frame (``spool.bin``) and the staged outputs (``staging/``). ``resume=true`` continues from there when
the source, the prompts and the config are those of the checkpoint; a finished run removes it all.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..engine.memory import check_states
from ..files import write_atomic
from ..io.prompts import TrackSpec
from ..records import whole
from .transaction import RESUME, ResumeRefused

VERSION = 2  # 2: the spool is plain data (run lengths), no longer pickled
# Keys that do not change what a run writes: a resumed run may set them otherwise.
_FREE = {"resume", "resume_every", "progress", "threads", "debug", "propagation.prefetch"}


class ResumeError(ResumeRefused):
    """``resume=true`` cannot continue: no checkpoint, or one made for other inputs (it is kept)."""


def _flat(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, Mapping):
        out: dict[str, Any] = {}
        for k, v in node.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: node}


def source_digest(path: str | Path) -> str:
    """SHA-256 of the source's bytes (a frame folder: of its files' names and bytes, in order)."""
    p = Path(path)
    h = hashlib.sha256()
    files = sorted(f for f in p.iterdir() if f.is_file()) if p.is_dir() else [p]
    for f in files:
        if p.is_dir():
            h.update(f.name.encode() + b"\0")
        with open(f, "rb") as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
    return h.hexdigest()


def fingerprint(
    plain: Mapping[str, Any], source_path: str | Path, spec: TrackSpec, content: bool = True
) -> dict[str, Any]:
    """What a checkpoint is valid for: the source (its bytes hashed when ``content``: a later copy or
    ``touch`` changes its time, not its bytes), the prompts (masks hashed), the config."""
    st = os.stat(source_path)
    h = hashlib.sha256()
    for p in sorted(spec.prompts, key=lambda p: (p.object_id, p.frame_index)):
        h.update(json.dumps([p.object_id, p.frame_index, p.points, p.box]).encode())
        if p.mask is not None:
            h.update(p.mask.tobytes())
    h.update(json.dumps(sorted((k, v) for k, v in spec.labels.items())).encode())
    config = {k: v for k, v in _flat(plain).items() if k not in _FREE and k != "output_dir"}
    return {
        "source": {
            "path": os.path.abspath(source_path),
            "size": st.st_size,
            "mtime_ns": st.st_mtime_ns,
            **({"sha256": source_digest(source_path)} if content else {}),
        },
        "prompts": h.hexdigest(),
        "config": config,
    }


def difference(old: Mapping[str, Any], new: Mapping[str, Any]) -> str | None:
    """The first thing that differs, said so that a person can act on it (None: the same). A source
    whose time changed but not its size is hashed again: the same bytes are the same source."""
    a, b = old["source"], new["source"]
    for key, what in (("path", "path"), ("size", "size in bytes")):
        if a.get(key) != b.get(key):
            return f"the source differs ({what}: {a.get(key)!r} then, {b.get(key)!r} now)"
    if a.get("mtime_ns") != b.get("mtime_ns"):
        then = a.get("sha256")
        now = b.get("sha256") or source_digest(b["path"])
        if then != now:
            return f"the source differs (its content: SHA-256 {str(then)[:12]} then, {now[:12]} now)"
    if old["prompts"] != new["prompts"]:
        return "the prompts differ"
    for key in sorted(set(old["config"]) | set(new["config"])):
        if old["config"].get(key) != new["config"].get(key):
            return f"the config differs ({key}={old['config'].get(key)!r} then, {new['config'].get(key)!r} now)"
    return None


STAGES = ("prompts", "warmup", "backward", "forward")


def damaged(path: Path, what: str) -> ResumeError:
    return ResumeError(
        f"resume=true: the checkpoint {str(path)!r} is damaged ({what}): run without resume=true to start over"[:400]
    )


def _int_in(value: Any, lo: int, hi: int) -> bool:
    return whole(value) and lo <= value <= hi


def check_checkpoint(
    ckpt: Mapping[str, Any],
    path: Path,
    frames: int,
    object_ids: Sequence[int],
    sizes: Mapping[str, tuple[int, ...]] | None = None,
) -> None:
    """A checkpoint's values checked as user input against the run it continues (its file may have been
    written by anyone): thread count, stage, frame counts and positions in range, every object of the run
    in exactly one group, frame keys within the video, tensors of the model's sizes (``sizes``).
    ResumeError (``.resume`` kept) names the first bad one."""
    if not _int_in(ckpt["threads"], 1, 1024):
        raise damaged(path, f"threads={ckpt['threads']!r}, not 1 to 1024")
    if ckpt["stage"] not in STAGES:
        raise damaged(path, f"stage={ckpt['stage']!r}, not one of {', '.join(STAGES)}")
    if not _int_in(ckpt["emitted"], 0, frames):
        raise damaged(path, f"emitted={ckpt['emitted']!r}, not 0 to {frames} frames")
    if not isinstance(ckpt["sinks"], list) or not all(isinstance(x, dict) for x in ckpt["sinks"]):
        raise damaged(path, "sinks is not a list of positions")
    engine = ckpt["engine"]
    keys = {"stage", "position", "groups", "spool", "maskmem_pos"}
    if not isinstance(engine, dict) or not keys <= set(engine):
        raise damaged(path, f"engine lacks {', '.join(sorted(keys - set(engine or {})))}")
    if engine["stage"] != ckpt["stage"] or not _int_in(engine["position"], -1, frames):
        raise damaged(path, f"engine position {engine['stage']!r} {engine['position']!r}")
    groups = engine["groups"]
    if not isinstance(groups, list) or not all(isinstance(g, dict) for g in groups):
        raise damaged(path, "groups is not a list")
    seen: list[Any] = []
    for g in groups:
        ids, firsts = g.get("object_ids"), g.get("prompt_frames")
        if not isinstance(ids, list) or not all(_int_in(i, 1, 2**31) for i in ids):
            raise damaged(path, f"object ids {str(ids)[:40]}")
        seen += ids
        if not isinstance(firsts, list) or not all(_int_in(t, 0, frames - 1) for t in firsts):
            raise damaged(path, f"prompt frames {str(firsts)[:40]}")
        if not _int_in(g.get("warm_end"), -1, frames):
            raise damaged(path, f"warm_end={g.get('warm_end')!r}")
        for k in ("cond", "fwd", "bwd"):
            if not isinstance(g.get(k), dict) or not all(_int_in(t, 0, frames - 1) for t in g[k]):
                raise damaged(path, f"{k} frames of objects {ids}")
    if len(seen) != len(set(seen)) or not set(object_ids) <= set(seen):
        raise damaged(path, f"its objects {sorted(seen)[:8]} are not the run's {sorted(object_ids)[:8]}")
    problem = check_states(groups, engine["maskmem_pos"], sizes)
    if problem is not None:
        raise damaged(path, problem)
    if not isinstance(engine.get("memory", {}), dict):
        raise damaged(path, "the memory policy's state is not a mapping")


class ResumeStore:
    """``OUT/.resume/checkpoint.pt``: written atomically (temp file, fsync, rename)."""

    def __init__(self, out: str | Path) -> None:
        self.dir = Path(out) / RESUME
        self.path = self.dir / "checkpoint.pt"
        self.spool = self.dir / "spool.bin"
        self.count = 0
        self.seconds = 0.0
        self.bytes = 0

    def load(self, fp: Mapping[str, Any]) -> dict[str, Any]:
        import torch

        if not self.path.is_file():
            raise ResumeError(
                f"resume=true: {str(self.dir)!r} has no checkpoint (the run finished, or stopped before its "
                "first one): run without resume=true to start over"
            )
        try:
            ckpt = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise ResumeError(
                f"resume=true: the checkpoint {str(self.path)!r} cannot be read ({type(e).__name__}): "
                "run without resume=true to start over"
            ) from None
        if not isinstance(ckpt, dict) or ckpt.get("version") != VERSION:
            raise ResumeError("resume=true: the checkpoint is from another tracker version: start over")
        keys = {"fingerprint", "threads", "stage", "emitted", "engine", "sinks"}
        old = ckpt.get("fingerprint")
        if not keys <= set(ckpt) or not isinstance(old, dict) or not {"source", "prompts", "config"} <= set(old):
            raise ResumeError(
                f"resume=true: the checkpoint {str(self.path)!r} is damaged (keys missing): "
                "run without resume=true to start over"
            )
        why = difference(old, fp)
        if why is not None:
            raise ResumeError(
                f"resume=true: {why} from the checkpoint's run: run it as it was, or without resume=true to start over"
            )
        return ckpt

    def save(self, fp: Mapping[str, Any], threads: int, checkpoint, positions: list[dict]) -> None:
        import torch

        t0 = time.perf_counter()
        data = {
            "version": VERSION,
            "fingerprint": dict(fp),
            "threads": threads,
            "stage": checkpoint.stage,
            "emitted": checkpoint.emitted,
            "engine": checkpoint.state,
            "sinks": positions,
        }
        buf = io.BytesIO()
        torch.save(data, buf)
        write_atomic(self.path, buf.getvalue(), fsync=True)
        self.count += 1
        self.seconds += time.perf_counter() - t0
        self.bytes = self.path.stat().st_size

    def summary(self) -> dict[str, Any]:
        spool = self.spool.stat().st_size if self.spool.is_file() else 0
        return {
            "count": self.count,
            "mean_ms": round(1000 * self.seconds / self.count, 2) if self.count else None,
            "checkpoint_bytes": self.bytes,
            "spool_bytes": spool,
        }
