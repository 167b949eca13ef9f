"""tracker: track objects through videos with SAM 2.

    import tracker
    model = tracker.load_model("toy")
    for frame, masks in tracker.track("clip.mp4", {"objects": [{"id": 1, "prompts": [{"frame": 0,
                                      "box": [10, 20, 200, 220]}]}]}, model=model):
        overlay = tracker.annotate(frame.rgb, masks)

Importing this package does not import sam2 (sam2 initialises Hydra's global state on import) nor torch:
only :mod:`tracker.engine.sam` does, loaded when a model is built.
"""

# ``tracker.run`` is both the spine's package and the function below. Importing a submodule sets it as an
# attribute of its parent the first time only: the package is imported first, then the name is rebound to
# the function (``from tracker.run import RunSpec`` still finds the package in sys.modules).
from . import run as _spine  # noqa: F401  (imported for the order above)
from .api import load_model, model_names, run, track
from .io.annotation import annotate
from .io.prompts import TrackSpec, load_prompts
from .io.source import open_source
from .records import Frame, FrameMasks, Prompt, VideoInfo
from .version import __version__

__all__ = [
    "__version__",
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
    "run",
    "track",
]
