"""tracker: track objects through videos with SAM 2.

Importing this package does not import sam2 (sam2 initialises Hydra's global state on import);
only :mod:`tracker.sam` does, and it is loaded lazily by :func:`tracker.propagation.build_tracker`.
"""

__version__ = "0.1.0"
