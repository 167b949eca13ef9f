"""Live sources and online mode, with real streams made on this machine: an MPEG-TS stream served over
HTTP (chunked, at real-time pace) by a server inside the test, the same bytes on standard input and
through a FIFO, a stream that stalls, a source faster than the model, and SIGKILL / SIGINT mid-run."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import av
import numpy as np
import pytest
from helpers import compose_config
from PIL import Image

from tracker.engine.propagation import Propagator
from tracker.engine.types import Passes
from tracker.experiments.demo import demo_prompts, demo_sequence
from tracker.io.source import open_source

W, H, FPS = 320, 240, 25


def mpegts(frames: int, seed: int = 0, quality: dict | None = None) -> bytes:
    """The demo world as an H.264 MPEG-TS stream (what a camera or an encoder sends). ``quality``: x264's
    rate options (default crf 18; ``{"qp": "0"}``: lossless)."""
    buf = io.BytesIO()
    seq = demo_sequence(frames, W, H, seed)
    with av.open(buf, "w", format="mpegts") as out:
        vs = out.add_stream("libx264", rate=FPS)
        vs.width, vs.height, vs.pix_fmt = W, H, "yuv420p"
        vs.options = {**(quality or {"crf": "18"}), "tune": "zerolatency", "g": str(FPS)}
        for t in range(frames):
            for p in vs.encode(av.VideoFrame.from_ndarray(seq.frame(t)[0], format="rgb24")):
                out.mux(p)
        for p in vs.encode():
            out.mux(p)
    return buf.getvalue()


class StreamServer:
    """Serves ``data`` at /stream.ts with HTTP/1.1 chunked transfer, ``frames`` chunks ``1/rate`` s apart
    (``rate`` None: as fast as it goes). ``stall_after``: after that many chunks, go silent (connection
    open) for ``stall_s``."""

    def __init__(self, data: bytes, frames: int, rate: float | None = FPS, stall_after=None, stall_s=0.0):
        chunks = np.array_split(np.frombuffer(data, dtype=np.uint8), frames)
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "video/mp2t")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                try:
                    for i, c in enumerate(chunks):
                        if outer.stall_after is not None and i == outer.stall_after:
                            time.sleep(outer.stall_s)
                            return
                        b = c.tobytes()
                        self.wfile.write(f"{len(b):X}\r\n".encode() + b + b"\r\n")
                        self.wfile.flush()
                        if outer.rate:
                            time.sleep(1.0 / outer.rate)
                    self.wfile.write(b"0\r\n\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.rate, self.stall_after, self.stall_s = rate, stall_after, stall_s
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/stream.ts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def _box_args(seed: int = 0, frames: int = 24) -> list[str]:
    spec = demo_prompts(frames, W, H, seed)
    p = spec.prompts[0]
    return [f"prompts.box=[{','.join(str(int(v)) for v in p.box)}]", "prompts.frame=0"]


def _tracker(args: list[str]) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "tracker.apps.cli", "model=toy", "progress=false", *args]
    # (PYTHONFAULTHANDLER: a run that hangs prints every thread's stack on SIGABRT, see _stopped)
    env = {**os.environ, "PYTHONFAULTHANDLER": "1"}
    return subprocess.Popen(
        cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


def _stopped(proc: subprocess.Popen, sig: int, timeout: float = 60) -> str:
    """``proc``'s stderr once it has stopped after ``sig``; one that does not stop within ``timeout`` is
    aborted and the test fails with where each of its threads was waiting."""
    try:
        return proc.communicate(timeout=timeout)[1]
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)
        try:
            err = proc.communicate(timeout=30)[1]
        except subprocess.TimeoutExpired:
            proc.kill()
            err = proc.communicate()[1]
        pytest.fail(f"the run did not stop within {timeout:g} s of {signal.Signals(sig).name}:\n{err[-8000:]}")


def _frames_in(video: Path) -> int:
    with av.open(str(video)) as c:
        return sum(1 for _ in c.decode(video=0))


def _check_outputs(out: Path, state: str = "complete") -> dict:
    run = json.loads((out / "run.json").read_text())
    lines = [json.loads(x) for x in (out / "masks.jsonl").read_text().splitlines()]
    assert run["state"] == state and run["mode"] == "online"
    assert len(lines) == run["frames_tracked"] > 0
    assert run["frames_tracked"] + run["frames_skipped"] == run["frames_received"]
    assert _frames_in(out / "annotated.mp4") == run["frames_tracked"]
    assert len(list((out / "masks").glob("*.png"))) == run["frames_tracked"]
    assert run["latency_ms"]["frames"] == run["frames_tracked"] and run["latency_ms"]["p95_ms"] is not None
    return run


def test_http_stream_at_real_time_pace(tmp_path):
    n = 50
    server = StreamServer(mpegts(n), n)
    try:
        proc = _tracker([f"source.path={server.url}", f"output_dir={tmp_path / 'out'}", *_box_args(frames=n)])
        _, err = proc.communicate(timeout=300)
    finally:
        server.close()
    assert proc.returncode == 0, err
    run = _check_outputs(tmp_path / "out")
    assert run["frames_received"] == n and run["frames_skipped"] == 0 and run["ended"] == "end"
    # the masks follow the object (the toy model, online from its prompt frame)
    seq = demo_sequence(n, W, H, 0)
    lines = [json.loads(x) for x in (tmp_path / "out" / "masks.jsonl").read_text().splitlines()]
    ious = []
    for line in lines[:: len(lines) // 5]:
        gt = seq.frame(line["frame"])[1] == 1
        m = np.asarray(Image.open(tmp_path / "out" / "masks" / f"{line['frame']:05d}.png")) == 1
        ious.append((m & gt).sum() / max((m | gt).sum(), 1))
    assert np.mean(ious) > 0.5, ious


def test_standard_input_and_fifo(tmp_path):
    n = 30
    data = mpegts(n)
    cmd = [sys.executable, "-m", "tracker.apps.cli", "model=toy", "progress=false", "source.path=-"]
    res = subprocess.run(
        [*cmd, f"output_dir={tmp_path / 'stdin'}", *_box_args(frames=n)], input=data, capture_output=True, timeout=300
    )
    assert res.returncode == 0, res.stderr.decode()
    assert _check_outputs(tmp_path / "stdin")["frames_received"] == n

    fifo = tmp_path / "cam.ts"
    os.mkfifo(fifo)

    def writer():
        with open(fifo, "wb") as f:
            f.write(data)

    threading.Thread(target=writer, daemon=True).start()
    proc = _tracker([f"source.path={fifo}", f"output_dir={tmp_path / 'fifo'}", *_box_args(frames=n)])
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert _check_outputs(tmp_path / "fifo")["frames_received"] == n
    # the same bytes, the same masks
    assert (tmp_path / "fifo" / "masks.jsonl").read_text() == (tmp_path / "stdin" / "masks.jsonl").read_text()


def test_stalled_stream_ends_cleanly_after_the_timeout(tmp_path):
    n = 60
    server = StreamServer(mpegts(n), n, stall_after=30, stall_s=30)
    try:
        proc = _tracker(
            [f"source.path={server.url}", f"output_dir={tmp_path / 'out'}", "source.timeout=2", *_box_args(frames=n)]
        )
        _, err = proc.communicate(timeout=300)
    finally:
        server.close()
    assert proc.returncode == 0, err
    run = _check_outputs(tmp_path / "out")
    # ended by source.timeout: after the server's 30 s of silence the rest would have come (ended "end")
    assert run["ended"] == "stalled" and 10 <= run["frames_received"] < n


def test_realtime_drops_frames_it_cannot_keep_up_with(tmp_path):
    n = 150
    server = StreamServer(mpegts(n), n, rate=200)  # 200 fps: far faster than the model here
    try:
        proc = _tracker(
            [
                f"source.path={server.url}",
                f"output_dir={tmp_path / 'out'}",
                "live.realtime=true",
                "sink.png=false",
                *_box_args(frames=n),
            ]
        )
        _, err = proc.communicate(timeout=300)
    finally:
        server.close()
    assert proc.returncode == 0, err
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["frames_received"] == n and run["frames_skipped"] > 0
    assert run["frames_tracked"] + run["frames_skipped"] == n
    lines = [json.loads(x) for x in (tmp_path / "out" / "masks.jsonl").read_text().splitlines()]
    assert len(lines) == run["frames_tracked"] == _frames_in(tmp_path / "out" / "annotated.mp4")
    assert lines[0]["frame"] == 0  # the prompt frame is never dropped
    frames = [x["frame"] for x in lines]
    assert frames == sorted(frames) and len(set(frames)) == len(frames)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_killed_live_run_leaves_playable_outputs(tmp_path, sig):
    n = 250  # 10 s at real-time pace; the process is stopped part-way
    server = StreamServer(mpegts(n), n)
    out = tmp_path / "out"
    try:
        proc = _tracker([f"source.path={server.url}", f"output_dir={out}", *_box_args(frames=n)])
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            jsonl = out / "masks.jsonl"
            if jsonl.exists() and jsonl.read_text().count("\n") >= 40:
                break
            time.sleep(0.1)
        proc.send_signal(sig)
        err = _stopped(proc, sig)
    finally:
        server.close()
    lines = [json.loads(x) for x in (out / "masks.jsonl").read_text().splitlines()]
    assert 40 <= len(lines) < n
    decoded = _frames_in(out / "annotated.mp4")
    pngs = sorted((out / "masks").glob("*.png"))
    for p in pngs:
        Image.open(p).load()  # every PNG is whole
    run = json.loads((out / "run.json").read_text())
    if sig == signal.SIGKILL:
        assert proc.returncode == -signal.SIGKILL
        assert decoded >= len(lines) - 3 and len(pngs) >= len(lines) - 3
        assert run["state"] == "running"  # as last written, before the kill
    else:
        assert proc.returncode == 130 and "Traceback" not in err
        assert run["state"] == "interrupted" and decoded == len(lines) == len(pngs) == run["frames_tracked"]


def test_online_mode_on_a_file_equals_the_vos_protocol(tmp_path):
    """One prompt frame per object: forward-only online tracking gives what backward=False gives."""
    from tracker.api import load_model
    from tracker.experiments.demo import write_demo_clip

    clip = write_demo_clip(tmp_path / "c.mp4", 24, W, H, 3)
    spec = demo_prompts(24, W, H, 3)
    late = [p.__class__(p.object_id, 5 if p.object_id == 2 else 0, box=p.box) for p in spec.prompts]
    model = load_model("toy")
    src = open_source("pyav", clip)
    offline = list(Propagator(model, passes=Passes(backward=False)).run(src, late, spec.object_ids))
    online = list(Propagator(model, passes=Passes(backward=False)).run_online(src.frames(), late, spec.object_ids))
    assert len(online) == len(offline) == 24
    for (_, a), (_, b) in zip(offline, online):
        assert a.object_ids == b.object_ids and np.array_equal(a.masks, b.masks)
        np.testing.assert_allclose(a.scores, b.scores, atol=1e-6)
    assert not online[3][1].masks[1].any()  # object 2 does not exist before its prompt frame


def test_online_mode_key_on_a_file(tmp_path):
    from tracker.apps import cli
    from tracker.experiments.demo import write_demo_clip

    clip = write_demo_clip(tmp_path / "c.mp4", 24, W, H, 0)
    cfg = compose_config(
        ["model=toy", f"source.path={clip}", f"output_dir={tmp_path / 'o'}", "progress=false", "mode=online"]
        + _box_args()
    )
    record = cli.run(cfg)
    assert record["state"] == "complete" and record["frames_tracked"] == 24
    _check_outputs(tmp_path / "o")
