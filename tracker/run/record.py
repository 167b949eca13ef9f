"""run.json: one shape for file, online and dataset runs — the resolved config, versions, device, mode,
threads, the time split and peak memory — with a section for what differs (source and objects, stream
counters, per-sequence results)."""

from __future__ import annotations

import platform
import time
from typing import Any

from .model import device_name
from .spec import RunSpec


def versions() -> dict[str, str]:
    import av
    import cv2
    import numpy
    import torch

    from ..version import __version__

    try:
        from importlib.metadata import version

        sam2_version = version("sam2")
    except Exception:
        sam2_version = "unknown"
    return {
        "tracker": __version__,
        "sam2": sam2_version,
        "torch": torch.__version__,
        "av": av.__version__,
        "opencv": cv2.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
    }


def peak_gpu_mib() -> float:
    import torch

    return round(torch.cuda.max_memory_allocated() / 2**20, 1) if torch.cuda.is_available() else 0.0


def base_record(spec: RunSpec, model: Any, mode: str, threads: int) -> dict[str, Any]:
    """What every run.json starts with."""
    return {
        "config": spec.config,
        "checkpoint": spec.model.checkpoint,  # the one loaded (model.checkpoint, or the cached one); null: untrained
        "versions": versions(),
        "device": device_name(model),
        "tf32": bool(getattr(model, "tf32", False)),  # float32 on CUDA in TF32 (model.tf32)
        "kv_cache": bool(getattr(model, "kv_cache", False)),  # memory attention's projections kept
        "compiled": list(getattr(model, "compiled", ())),  # what model.compile compiled on this device
        "mode": mode,
        "threads": threads,
    }


def finished_record(base: dict[str, Any], timings: Any, started: float, **sections: Any) -> dict[str, Any]:
    """``base`` with the sections, the time split (``timings.as_dict()``), total time and peak memory."""
    from ..engine.pipeline import peak_rss_mib

    return {
        **base,
        **sections,
        **timings.as_dict(),
        "total_s": round(time.perf_counter() - started, 3),
        "peak_rss_mib": peak_rss_mib(),
        "peak_gpu_mib": peak_gpu_mib(),
    }
