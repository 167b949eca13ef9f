"""The engine: SAM 2 (``sam``, the only module that imports sam2), streaming propagation with bounded
state (``propagation``), mask finishing (``masks``) and the threaded run (``pipeline``)."""
