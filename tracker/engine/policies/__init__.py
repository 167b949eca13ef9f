"""Memory policies, one module each: ``sam2`` (upstream's own, in :mod:`tracker.engine.memory`), ``samurai``,
``dam4sam``, ``gated`` and ``guard`` (ours). A policy module registers its class (``@register``, with a
``name``) and has a ``configs/memory/<name>.yaml``; every module here is found without an edit here."""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import fields
from typing import Any

from ..memory import MEMORY_POLICIES, MemoryPolicy, Sam2Memory, register
from .base import SlotMemory

for _m in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_m.name}")


def memory_policy(name: str, **settings: Any) -> MemoryPolicy:
    """A new policy of the registered ``name`` (``memory=<name>``) with its settings."""
    if name not in MEMORY_POLICIES:
        raise ValueError(f"memory={name!r} is unknown: use one of {', '.join(sorted(MEMORY_POLICIES))}")
    cls = MEMORY_POLICIES[name]
    if cls.Settings is None:
        if settings:
            raise ValueError(
                f"memory={name}: it takes no settings (given: {', '.join(sorted(settings))}): "
                f"see configs/memory/{name}.yaml"
            )
        return cls()
    unknown = sorted(set(settings) - {f.name for f in fields(cls.Settings)})
    if unknown:
        raise ValueError(
            f"memory.{unknown[0]} is not a key of memory={name}: see configs/memory/{name}.yaml for its keys"
        )
    return cls(cls.Settings(**settings))  # type: ignore[call-arg]


__all__ = ["MEMORY_POLICIES", "MemoryPolicy", "Sam2Memory", "SlotMemory", "memory_policy", "register"]
