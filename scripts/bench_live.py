"""Benchmark: online tracking of a live stream, and the cost of checkpoints in a resumable file run.

1. A 25 fps 1280x720 H.264 MPEG-TS stream (the demo's synthetic world) is served over HTTP at real-time
   pace (chunked transfer, from this process) and tracked by the real ``tracker`` command with the toy
   model: latency from a frame's arrival to its masks (p50, p95) and the share of frames skipped, with
   ``live.realtime=true`` (keep up, drop frames) and ``false`` (track every frame, fall behind).
2. File runs of the same world at two lengths with ``resume_every=100``: checkpoints written, time per
   checkpoint, ``checkpoint.pt`` size (flat in video length) and the spool's size (the backward pass's
   results waiting for their frame).
Run it on an otherwise quiet machine.

    python scripts/bench_live.py --json benchmarks/bench_live_cpu.json
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import av
import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tracker.experiments.demo import demo_sequence, write_demo_clip  # noqa: E402


def mpegts(frames: int, width: int, height: int, fps: int) -> list[bytes]:
    """The stream cut at frame boundaries: chunk i holds what the muxer wrote once frame i was encoded,
    so the server sends each frame at its time, as a camera does."""
    buf = io.BytesIO()
    seq = demo_sequence(frames, width, height, 0)
    cuts = []
    with av.open(buf, "w", format="mpegts", options={"flush_packets": "1"}) as out:
        vs = out.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        vs.options = {"crf": "23", "tune": "zerolatency", "g": str(fps)}
        for t in range(frames):
            for p in vs.encode(av.VideoFrame.from_ndarray(seq.frame(t)[0], format="rgb24")):
                out.mux(p)
            cuts.append(buf.tell())
        for p in vs.encode():
            out.mux(p)
    data = buf.getvalue()
    cuts[-1] = len(data)
    return [data[a:b] for a, b in zip([0, *cuts[:-1]], cuts)]


def serve(chunks: list[bytes], fps: float) -> tuple[ThreadingHTTPServer, str]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_GET(self):
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            t0 = time.monotonic()
            try:
                for i, b in enumerate(chunks):
                    if b:
                        self.wfile.write(f"{len(b):X}\r\n".encode() + b + b"\r\n")
                        self.wfile.flush()
                    time.sleep(max(0.0, t0 + (i + 1) / fps - time.monotonic()))  # real-time pace
                self.wfile.write(b"0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):
                pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/stream.ts"


def box(seq, t: int, oid: int) -> list[int]:
    ys, xs = np.nonzero(seq.frame(t)[1] == oid)
    return [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]


def tracker(*args: str) -> dict:
    cmd = [sys.executable, "-m", "tracker.apps.cli", "model=toy", "progress=false", *args]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if res.returncode != 0:
        raise SystemExit(res.stderr)
    out = next(a.split("=", 1)[1] for a in args if a.startswith("output_dir="))
    return json.loads((Path(out) / "run.json").read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=12)
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=720)
    ap.add_argument("--lengths", type=int, nargs=2, default=[200, 400])
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    fps = 25
    n = args.seconds * fps
    w, h = args.width, args.height
    result: dict = {
        "benchmark": "bench_live",
        "machine": {"cpu": platform.processor() or platform.machine(), "python": platform.python_version()},
        "model": "toy",
        "stream": {"width": w, "height": h, "fps": fps, "frames": n, "transport": "HTTP chunked MPEG-TS"},
        "live": {},
        "checkpoints": {},
    }
    seq = demo_sequence(n, w, h, 0)
    prompt = [f"prompts.box=[{','.join(map(str, box(seq, 0, 1)))}]", "prompts.frame=0"]
    data = mpegts(n, w, h, fps)
    with tempfile.TemporaryDirectory(prefix="bench-live-") as tmp:
        for realtime in (True, False):
            server, url = serve(data, fps)
            try:
                run = tracker(
                    f"source.path={url}", f"output_dir={tmp}/live-{realtime}", f"live.realtime={realtime}", *prompt
                )
            finally:
                server.shutdown()
            result["live"][f"realtime={str(realtime).lower()}"] = {
                "frames_received": run["frames_received"],
                "frames_tracked": run["frames_tracked"],
                "frames_skipped": run["frames_skipped"],
                "skipped_rate": round(run["frames_skipped"] / max(run["frames_received"], 1), 3),
                "latency_ms": run["latency_ms"],
                "tracked_fps": run["fps"],
            }
        for length in args.lengths:
            clip = write_demo_clip(Path(tmp) / f"clip{length}.mp4", length, w, h, 0)
            s = demo_sequence(length, w, h, 0)
            late = length // 2
            prompts = Path(tmp) / f"p{length}.yaml"
            prompts.write_text(
                yaml.safe_dump(
                    {
                        "objects": [
                            {"id": 1, "prompts": [{"frame": 0, "box": box(s, 0, 1)}]},
                            {"id": 2, "prompts": [{"frame": late, "box": box(s, late, 2)}]},
                        ]
                    }
                )
            )
            run = tracker(
                f"source.path={clip}", f"prompts.path={prompts}", f"output_dir={tmp}/file{length}", "resume_every=100"
            )
            result["checkpoints"][f"{length}_frames"] = {**run["checkpoints"], "run_wall_s": run["wall_s"]}
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
