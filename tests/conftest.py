import os
import subprocess
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


def mount_tmpfs(path: Path, options: str) -> Path:
    """A tmpfs mounted at ``path`` (``size=1m``: a disk that fills; ``ro``: a folder nobody writes, root
    included); skipped where mounting is not allowed."""
    path.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.decode().strip()}")
    return path


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB file system: writes past it fail with ENOSPC, as on a full disk."""
    yield mount_tmpfs(tmp_path / "disk", "size=1m")
    subprocess.run(["umount", str(tmp_path / "disk")], check=False)


@pytest.fixture
def read_only(tmp_path):
    """A folder on a read-only file system (EROFS even for root)."""
    yield mount_tmpfs(tmp_path / "ro", "ro,size=64k")
    subprocess.run(["umount", str(tmp_path / "ro")], check=False)
