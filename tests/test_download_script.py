"""scripts/download_checkpoints.sh: the checksum check, exercised with a local file:// mirror."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(tmp_path: Path, sums: str) -> subprocess.CompletedProcess:
    mirror = tmp_path / "mirror" / "092824"
    mirror.mkdir(parents=True)
    (mirror / "sam2.1_hiera_tiny.pt").write_bytes(b"pretend checkpoint bytes")
    (tmp_path / "sums").write_text(sums)
    env = {
        "PATH": "/usr/bin:/bin",
        "SAM2_BASE_URL": f"file://{tmp_path / 'mirror'}",
        "SHA256_FILE": str(tmp_path / "sums"),
        "HF_API": "file:///nonexistent",
    }
    return subprocess.run(
        ["bash", str(ROOT / "scripts" / "download_checkpoints.sh"), str(tmp_path / "ck"), "sam2.1_hiera_tiny"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def test_matching_checksum_keeps_the_file(tmp_path):
    sha = hashlib.sha256(b"pretend checkpoint bytes").hexdigest()
    res = _run(tmp_path, f"{sha}  sam2.1_hiera_tiny.pt\n")
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "ck" / "sam2.1_hiera_tiny.pt").read_bytes() == b"pretend checkpoint bytes"


def test_wrong_checksum_deletes_the_download(tmp_path):
    res = _run(tmp_path, f"{'0' * 64}  sam2.1_hiera_tiny.pt\n")
    assert res.returncode == 1 and "expected 000" in res.stderr
    assert not list((tmp_path / "ck").iterdir())


def test_unknown_checksum_refuses_to_download(tmp_path):
    res = _run(tmp_path, "")
    assert res.returncode == 1 and "no SHA-256 known" in res.stderr
    assert not list((tmp_path / "ck").iterdir())
