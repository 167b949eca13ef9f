import os
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
# Tests never read or fill the user's checkpoint cache (tracker-download): an empty home of their own, which
# the commands they start inherit.
os.environ["TRACKER_HOME"] = tempfile.mkdtemp(prefix="tracker-home-")
# Under pytest-xdist each worker has a core: torch's default of one OpenMP thread per core would make two
# workers' threads wait for each other (several times slower). The commands the tests start resolve
# threads=auto themselves, seeing the other worker's load.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")

from helpers import moving_shapes, write_video  # noqa: E402


@pytest.fixture(scope="session")
def clip32(tmp_path_factory) -> Path:
    """A real H.264 mp4: 32 frames, 160x120, two moving shapes."""
    return write_video(tmp_path_factory.mktemp("clip") / "clip32.mp4", moving_shapes(32, 160, 120))
