"""The engine: SAM 2 (``sam``, the only module that imports sam2), streaming propagation with bounded
state (``propagation``), memory policies (``memory``: SAM 2's own; ``policies``: samurai, dam4sam, gated),
mask finishing (``masks``) and the threaded run (``pipeline``)."""

from . import policies  # noqa: E402,F401  (registers samurai, dam4sam, gated in memory.MEMORY_POLICIES)
