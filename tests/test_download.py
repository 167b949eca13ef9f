"""``tracker-download`` against a server on 127.0.0.1: checksums from a second place, resume after a cut
connection, one line when anything fails; and a run without weights refused before any frame is decoded."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from helpers import WeightsServer, moving_shapes, write_video

from tracker import weights_cache as wc
from tracker.apps.download import main as download_main

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB: several chunks


@pytest.fixture
def server(monkeypatch, tmp_path):
    srv = WeightsServer(PAYLOAD)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    monkeypatch.setenv("TRACKER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TRACKER_WEIGHTS_URL", f"{srv.url}/files")
    monkeypatch.setenv("TRACKER_HF_API", f"{srv.url}/api")
    monkeypatch.setenv("TRACKER_SHA256_FILE", str(tmp_path / "no-sums"))
    yield srv
    srv.shutdown()
    srv.server_close()


def _download(capsys, *args: str) -> tuple[int, str, str]:
    try:
        download_main([*args, "--quiet"])
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def _cached() -> list[str]:
    folder = wc.cache_dir()
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_download_checks_and_caches_by_model_name(server, capsys):
    code, out, err = _download(capsys, "sam2.1_hiera_t")
    assert code == 0, err
    assert wc.cached("sam2.1_hiera_t").read_bytes() == PAYLOAD
    assert "SHA-256 checked" in out and _cached() == ["sam2.1_hiera_tiny.pt"]
    asked = len(server.ranges)
    code, _, _ = _download(capsys, "sam2.1_hiera_tiny")  # file stems work too; a good file is kept
    assert code == 0 and len(server.ranges) == asked


def test_checksum_mismatch_keeps_no_file(server, capsys):
    server.oid = "0" * 64
    code, _, err = _download(capsys, "sam2.1_hiera_t")
    assert code == 1
    assert err.count("\n") == 1 and err.startswith("tracker-download: error: sam2.1_hiera_tiny.pt has SHA-256")
    assert "expected 0000" in err and "deleted" in err
    assert _cached() == []


def test_a_pinned_sum_wins_over_the_published_one(server, capsys, tmp_path, monkeypatch):
    sums = tmp_path / "sums"
    sums.write_text(f"{'1' * 64}  sam2.1_hiera_tiny.pt\n")
    monkeypatch.setenv("TRACKER_SHA256_FILE", str(sums))
    code, _, err = _download(capsys, "sam2.1_hiera_t")
    assert code == 1 and "expected 1111" in err and _cached() == []


def test_an_interrupted_download_resumes(server, capsys):
    server.cut_after = 300_000
    code, _, err = _download(capsys, "sam2.1_hiera_t")
    assert code == 1 and err.count("\n") == 1
    assert "stopped at 300000 of 1048576 bytes" in err and "run the same command again to resume" in err
    assert _cached() == ["sam2.1_hiera_tiny.pt.partial"]
    code, _, err = _download(capsys, "sam2.1_hiera_t")
    assert code == 0, err
    assert server.ranges[-1] == "bytes=300000-"  # only the rest was asked for
    assert wc.cached("sam2.1_hiera_t").read_bytes() == PAYLOAD and _cached() == ["sam2.1_hiera_tiny.pt"]


def test_offline_is_one_line(server, capsys, monkeypatch):
    monkeypatch.setenv("TRACKER_HF_API", "http://127.0.0.1:9/api")  # port 9 (discard): nothing listens
    code, _, err = _download(capsys, "sam2.1_hiera_t")
    assert code == 1 and err.count("\n") == 1
    assert err.startswith("tracker-download: error: cannot reach http://127.0.0.1:9/api/")
    assert _cached() == []


def test_unknown_name_is_refused(server, capsys):
    code, _, err = _download(capsys, "sam3_huge")
    assert code == 2 and "'sam3_huge'" in err and "sam2.1_hiera_t" in err
    assert server.ranges == []


def test_list_says_what_is_cached(server, capsys):
    _download(capsys, "sam2.1_hiera_t")
    code, out, _ = _download(capsys, "--list")
    rows = {line.split()[0]: line.split()[-1] for line in out.splitlines()}
    assert code == 0 and rows["sam2.1_hiera_t"] == str(wc.cached("sam2.1_hiera_t")) and rows["sam2_hiera_l"] == "-"


def test_weights_table_matches_the_model_configs():
    configs = Path(__file__).resolve().parents[1] / "configs" / "model"
    published = {p.stem for p in configs.glob("sam2*.yaml")}
    assert published == set(wc.WEIGHTS)


def _tracker(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    clip = write_video(tmp_path / "clip.mp4", moving_shapes(4, 96, 64))
    cmd = [sys.executable, "-m", "tracker.apps.cli", f"source.path={clip}", "prompts.box=[10,10,40,40]"]
    cmd += ["model.image_size=128", "progress=false", "sink.annotated=false", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def test_a_run_without_weights_is_refused_with_the_command_that_gets_them(tmp_path, monkeypatch):
    monkeypatch.setenv("TRACKER_HOME", str(tmp_path / "empty-home"))
    res = _tracker(tmp_path, "model=sam2.1_hiera_t", f"output_dir={tmp_path / 'out'}")
    assert res.returncode == 2 and res.stderr.count("\n") == 1, res.stderr
    assert "model=sam2.1_hiera_t has no weights here" in res.stderr
    assert "`tracker-download sam2.1_hiera_t`" in res.stderr and "model.random_weights=true" in res.stderr
    assert not (tmp_path / "out").exists()


def test_a_cached_checkpoint_is_found_by_the_model_name(tmp_path, monkeypatch):
    import torch
    from helpers import model_cfg

    from tracker.engine.sam import build_model

    monkeypatch.setenv("TRACKER_HOME", str(tmp_path / "home"))
    net = build_model(model_cfg(128, ["model=sam2.1_hiera_t"])["arch"]["model"], seed=3)
    wc.cache_dir().mkdir(parents=True)
    torch.save({"model": net.net.state_dict()}, wc.cache_dir() / "sam2.1_hiera_tiny.pt")
    res = _tracker(tmp_path, "model=sam2.1_hiera_t", f"output_dir={tmp_path / 'out'}")
    assert res.returncode == 0, res.stderr[-2000:]
    record = json.loads((tmp_path / "out" / "run.json").read_text())
    assert record["checkpoint"] == str(wc.cache_dir() / "sam2.1_hiera_tiny.pt")
    assert "untrained" not in (tmp_path / "out" / "run.log").read_text()


# ---- issue 40 case 7: every filesystem error one line, a size cap, a bounded reply, a deadline ----------


def _one_line(code: int, err: str, *needles: str) -> None:
    assert code in (1, 2) and err.count("\n") == 1 and err.startswith("tracker-download: error: "), err
    assert "Traceback" not in err
    for n in needles:
        assert n in err, err


def test_a_folder_where_a_file_goes_is_one_line_and_left_alone(server, capsys):
    for name in ("sam2.1_hiera_tiny.pt.partial", "sam2.1_hiera_tiny.pt"):
        spot = wc.cache_dir() / name
        spot.mkdir(parents=True)
        (spot / "keep.txt").write_text("mine")
        _one_line(*_download(capsys, "sam2.1_hiera_t")[::2], repr(str(spot)), "is not a file")
        assert (spot / "keep.txt").read_text() == "mine"
        (spot / "keep.txt").unlink()
        spot.rmdir()


def test_a_home_that_is_a_file_and_a_folder_nobody_can_write_are_one_line(
    server, capsys, monkeypatch, tmp_path, read_only
):
    home = tmp_path / "home-file"
    home.write_text("not a folder")
    monkeypatch.setenv("TRACKER_HOME", str(home))
    _one_line(*_download(capsys, "sam2.1_hiera_t")[::2], "TRACKER_HOME")
    assert home.read_text() == "not a folder"
    _one_line(*_download(capsys, "sam2.1_hiera_t", "--folder", str(read_only))[::2], repr(str(read_only)), "--folder")
    _one_line(*_download(capsys, "sam2.1_hiera_t", "--folder", str(read_only / "sub"))[::2], "Read-only", "--folder")


def test_a_binary_sums_file_is_one_line(server, capsys, monkeypatch, tmp_path):
    sums = tmp_path / "sums"
    sums.write_bytes(bytes(range(256)) * 10)
    monkeypatch.setenv("TRACKER_SHA256_FILE", str(sums))
    _one_line(*_download(capsys, "sam2.1_hiera_t")[::2], "sums file", "not UTF-8")
    assert server.ranges == []


def test_a_full_disk_says_what_was_kept(server, capsys, small_disk):
    server.payload = bytes(range(256)) * 8192  # 2 MiB on a 1 MiB disk
    server.oid = wc.hashlib.sha256(server.payload).hexdigest()
    code, _, err = _download(capsys, "sam2.1_hiera_t", "--folder", str(small_disk))
    _one_line(code, err, "No space left on device", "free space", "to resume")
    kept = int(err.split("; ")[1].split(" bytes kept")[0])
    assert kept > 256 * 1024 and (small_disk / "sam2.1_hiera_tiny.pt.partial").stat().st_size == kept


@pytest.mark.parametrize("send_length", [True, False])
def test_a_body_larger_than_the_file_is_cut_at_its_size(server, capsys, send_length):
    """The file list says 1 MiB: a server offering 300 MiB more is refused (at once when it says so, at the
    first byte past 1 MiB when it does not) and nothing past the size is written."""
    server.extra = b"\0" * (8 << 20)
    server.send_length = send_length
    code, _, err = _download(capsys, "sam2.1_hiera_t")
    _one_line(code, err, str(len(PAYLOAD)), "--base-url")
    partial = wc.cache_dir() / "sam2.1_hiera_tiny.pt.partial"
    assert not partial.exists() or partial.stat().st_size <= len(PAYLOAD)
    assert wc.cached("sam2.1_hiera_t") is None


def test_a_huge_file_list_is_not_read_whole(server, capsys):
    server.api_body = b"[" + b" " * (8 << 20) + b"]"  # 8 MiB of nothing: read no further than the cap
    _one_line(*_download(capsys, "sam2.1_hiera_t")[::2], "MiB, not a file list")
    assert server.ranges == []


def test_a_server_that_drips_is_cut_by_the_deadline_and_the_stall_rule(server, capsys, monkeypatch):
    server.drip_s = 0.2
    started = time.monotonic()
    code, _, err = _download(capsys, "sam2.1_hiera_t", "--deadline", "1.5")
    _one_line(code, err, "the deadline passed", "to resume")
    assert time.monotonic() - started < 10
    monkeypatch.setattr(wc, "STALL_S", 1.0)
    code, _, err = _download(capsys, "sam2.1_hiera_t")
    _one_line(code, err, "bytes a second for 1 s")
    assert time.monotonic() - started < 20
    _one_line(*_download(capsys, "sam2.1_hiera_t", "--deadline", "-3")[::2], "'-3' is not a number of seconds")


def test_a_pinned_size_caps_the_download(server, capsys, tmp_path, monkeypatch):
    sums = tmp_path / "sums"
    sums.write_text(f"{server.oid}  sam2.1_hiera_tiny.pt  1000\n")
    monkeypatch.setenv("TRACKER_SHA256_FILE", str(sums))
    _one_line(*_download(capsys, "sam2.1_hiera_t")[::2], f"offers {len(PAYLOAD)} bytes, the file has 1000")
    sums.write_text(f"{server.oid}  sam2.1_hiera_tiny.pt  {len(PAYLOAD)}\n")
    assert _download(capsys, "sam2.1_hiera_t")[0] == 0


def test_a_mirror_works_without_hugging_face(server, capsys, monkeypatch):
    """Hugging Face unreachable: the error says how to give the sum; a SHA256SUMS beside the mirror's files
    or --sha256 then does it."""
    monkeypatch.setenv("TRACKER_HF_API", "http://127.0.0.1:9/api")  # nothing listens
    code, _, err = _download(capsys, "sam2.1_hiera_t")
    _one_line(code, err, "cannot reach http://127.0.0.1:9/api/", "--sha256 HEX", "SHA256SUMS", "TRACKER_SHA256_FILE")
    code, _, err = _download(capsys, "sam2.1_hiera_t", "--sha256", "1" * 64)
    _one_line(code, err, "expected 1111", "deleted")
    assert _download(capsys, "sam2.1_hiera_t", "--sha256", server.oid)[0] == 0
    wc.cached("sam2.1_hiera_t").unlink()
    server.sums = f"# a mirror's sums\n{server.oid}  092824/sam2.1_hiera_tiny.pt  {len(PAYLOAD)}\n"
    code, out, err = _download(capsys, "sam2.1_hiera_t")
    assert code == 0 and "SHA-256 checked" in out, err
    assert wc.cached("sam2.1_hiera_t").read_bytes() == PAYLOAD
    _one_line(*_download(capsys, "--all", "--sha256", server.oid)[::2], "name one model")


def test_help_names_every_environment_variable(capsys):
    code, out, _ = _download(capsys, "--help")
    assert code == 0
    for name in ("TRACKER_HOME", "TRACKER_WEIGHTS_URL", "TRACKER_SHA256_FILE", "TRACKER_HF_API", "SHA256SUMS"):
        assert name in out, out
