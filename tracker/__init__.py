"""tracker: track objects through videos with SAM 2.

    import tracker
    model = tracker.load_model("toy")
    for frame, masks in tracker.track("clip.mp4", {"objects": [{"id": 1, "prompts": [{"frame": 0,
                                      "box": [10, 20, 200, 220]}]}]}, model=model):
        overlay = tracker.annotate(frame.rgb, masks)

Importing this package does not import sam2 (sam2 initialises Hydra's global state on import) nor torch:
only :mod:`tracker.engine.sam` does, loaded when a model is built.
"""

__version__ = "0.1.0"

from .api import load_model, model_names, track
from .io.annotation import annotate
from .io.prompts import TrackSpec, load_prompts
from .io.source import open_source
from .records import Frame, FrameMasks, Prompt, VideoInfo

__all__ = [
    "Frame",
    "FrameMasks",
    "Prompt",
    "TrackSpec",
    "VideoInfo",
    "annotate",
    "load_model",
    "load_prompts",
    "model_names",
    "open_source",
    "track",
]
