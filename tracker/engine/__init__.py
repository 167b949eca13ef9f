"""The engine: SAM 2 (``sam``, the only module that imports sam2), the records its parts share (``types``,
torch-free), streaming propagation with bounded state (``propagation``), memory policies (``memory``: the
seam and SAM 2's own; ``policies``: one module per policy), mask finishing (``masks``) and the threaded run
(``pipeline``)."""
