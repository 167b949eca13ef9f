"""Benchmark: tracker-studio's latencies as a person meets them, over real HTTP.

A 1280x720 H.264 clip (the demo's synthetic world, x264's default GOP of 250 frames, so a random jump
decodes up to 249 frames after the seek) is served by the real ``tracker-studio`` command with the toy
model. Measured from this process through a keep-alive HTTP client:
  - frame fetch stepping forward (the next frame, as a scrubber or the arrow key asks for it);
  - frame fetch after a random jump;
  - the preview after the first click on a frame that was just shown (its image features not cached),
    and after each further click there (features cached);
  - the same fetches and previews while a Track of the whole clip runs, and the Track's frames/s;
  - playback in the page (headless Chromium): frames shown per second, with the Track's masks, against
    the clip's 25 fps.
Run it on an otherwise quiet machine.

    python scripts/bench_studio.py --json benchmarks/bench_studio_cpu.json
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tracker.experiments.demo import demo_sequence  # noqa: E402


def write_clip(path: Path, frames: int, width: int, height: int) -> Path:
    with av.open(str(path), "w", format="mp4") as out:
        vs = out.add_stream("libx264", rate=25)
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        vs.options = {"crf": "23", "preset": "medium"}  # x264's defaults: keyint 250
        seq = demo_sequence(frames, width, height, 0)
        for t in range(frames):
            for p in vs.encode(av.VideoFrame.from_ndarray(seq.frame(t)[0], format="rgb24")):
                out.mux(p)
        for p in vs.encode():
            out.mux(p)
    return path


def stats(ms: list[float]) -> dict:
    a = np.asarray(ms)
    return {
        "n": len(ms),
        "p50_ms": round(float(np.percentile(a, 50)), 1),
        "p95_ms": round(float(np.percentile(a, 95)), 1),
        "max_ms": round(float(a.max()), 1),
    }


def timed(fn) -> tuple[float, object]:
    t0 = time.perf_counter()
    r = fn()
    return (time.perf_counter() - t0) * 1000, r


def centre(seq, t: int, oid: int | None, k: int) -> list[list[float]]:
    """k clicks on object ``oid`` (None: the largest one) on frame t, spread around its centre."""
    lab = seq.frame(t)[1]
    if oid is None:
        oid = int(np.argmax(np.bincount(lab.ravel(), minlength=3)[1:])) + 1
    ys, xs = np.nonzero(lab == oid)
    cx, cy = xs.mean(), ys.mean()
    order = np.argsort((xs - cx) ** 2 + (ys - cy) ** 2)
    return [[float(xs[i]), float(ys[i]), 1] for i in order[:: max(1, len(order) // (3 * k))][:k]]


def play_in_chromium(url: str, seconds: float) -> dict:
    """Open the page in headless Chromium (Debian's), press play and count the frames it shows (with the
    last Track's masks drawn) in ``seconds``, after a second of playing; the frame it reaches says whether
    it kept to the source's clock (it drops frames rather than drift)."""
    import os
    import shutil

    from playwright.sync_api import sync_playwright

    exe = os.environ.get("TRACKER_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=exe, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.goto(url)
            page.wait_for_selector("body[data-ready='1']", timeout=60_000)
            page.keyboard.press("Space")
            page.wait_for_selector("body[data-playing='1']")
            page.wait_for_timeout(1000)  # counted once it plays: the first frames and masks are fetched cold
            t0, p0, f0 = page.evaluate("[performance.now(), window.studio.state().played, window.studio.state().frame]")
            page.wait_for_timeout(seconds * 1000)
            t1, p1, f1 = page.evaluate("[performance.now(), window.studio.state().played, window.studio.state().frame]")
            page.keyboard.press("Space")
        finally:
            browser.close()
    elapsed = (t1 - t0) / 1000
    return {
        "seconds": round(elapsed, 2),
        "frames_shown": p1 - p0,
        "shown_fps": round((p1 - p0) / elapsed, 2),
        "first_frame": f0,
        "last_frame": f1,
    }


def main() -> None:
    import httpx

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=250)
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=720)
    ap.add_argument("--samples", type=int, default=30, help="random jumps and preview frames")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--play-s", type=float, default=10.0, help="seconds of playback in Chromium (0: none)")
    args = ap.parse_args()
    rng = random.Random(7)

    with tempfile.TemporaryDirectory(prefix="bench-studio-") as tmp:
        clip = write_clip(Path(tmp) / "clip720.mp4", args.frames, args.width, args.height)
        seq = demo_sequence(args.frames, args.width, args.height, 0)
        # frames where an object shows enough to click on (the synthetic objects leave the view)
        visible = [t for t in range(args.frames) if (seq.frame(t)[1] > 0).sum() > 400]
        exe = Path(sys.executable).with_name("tracker-studio")
        cmd = [str(exe), "model=toy", f"source.path={clip}", f"output_dir={Path(tmp) / 'out'}", "sink.png=false"]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            m = re.match(r"studio: (http://\S+)/\?token=(\S+)", proc.stdout.readline())
            assert m, "tracker-studio did not start"
            base, token = m[1], m[2]
            # TCP_NODELAY on the client too, as browsers set it.
            nodelay = httpx.HTTPTransport(socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)])
            c = httpx.Client(
                base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=120, transport=nodelay
            )
            c.get("/api/video").raise_for_status()
            frame = lambda i: c.get(f"/api/frames/{i}.jpg").raise_for_status()  # noqa: E731

            # Stepping forward (a person holding the arrow key: one request after the other).
            step = []
            for i in range(60):
                step.append(timed(lambda i=i: frame(i))[0])
                time.sleep(0.04)
            jumps = []
            for _ in range(args.samples):
                jumps.append(timed(lambda: frame(rng.randrange(args.frames)))[0])
                time.sleep(0.1)

            first, more = [], []
            oid = 1
            for t in rng.sample(visible, min(args.samples, len(visible))):
                frame(t)  # the frame is on screen before anyone clicks on it
                time.sleep(0.3)
                clicks = centre(seq, t, None, 3)
                for k in range(1, 4):
                    url, body = f"/api/objects/{oid}/prompts/{t}", {"points": clicks[:k]}
                    ms, _ = timed(lambda url=url, body=body: c.put(url, json=body).raise_for_status())
                    (first if k == 1 else more).append(ms)
                c.delete(f"/api/objects/{oid}").raise_for_status()
                oid += 1

            # A Track of the whole clip, with the page in use beside it.
            c.put("/api/objects/1/prompts/0", json={"points": centre(seq, 0, 1, 3)}).raise_for_status()
            c.put("/api/objects/2/prompts/0", json={"points": centre(seq, 0, 2, 3)}).raise_for_status()
            t0 = time.perf_counter()
            job = c.post("/api/track").raise_for_status().json()["job"]
            busy_step, busy_preview = [], []
            i = 0
            while c.get(f"/api/track/{job}").json()["state"] == "running":
                busy_step.append(timed(lambda i=i: frame(100 + i % 100))[0])
                if i % 5 == 0:
                    t = rng.choice(visible)
                    frame(t)
                    pts = centre(seq, t, None, 3)
                    busy_preview.append(
                        timed(lambda t=t, pts=pts: c.put(f"/api/objects/50/prompts/{t}", json={"points": pts}))[0]
                    )
                    c.delete("/api/objects/50")
                i += 1
                time.sleep(0.05)
            track_s = time.perf_counter() - t0
            st = c.get(f"/api/track/{job}").json()
            assert st["state"] == "done", st
            playback = play_in_chromium(f"{base}/?token={token}", args.play_s) if args.play_s > 0 else None
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)

    result = {
        "benchmark": "bench_studio",
        "machine": {"cpu": platform.processor() or platform.machine(), "python": platform.python_version()},
        "clip": {"frames": args.frames, "width": args.width, "height": args.height, "codec": "h264", "gop": 250},
        "model": "toy",
        "frame_step": stats(step),
        "frame_random_jump": stats(jumps),
        "preview_first_click": stats(first),
        "preview_further_clicks": stats(more),
        "while_tracking": {
            "frame_step": stats(busy_step),
            "preview_first_click": stats(busy_preview) if busy_preview else None,
            "track_frames": args.frames,
            "track_wall_s": round(track_s, 2),
            "track_fps": round(args.frames / track_s, 2),
        },
        "playback": {**playback, "source_fps": 25, "shown_over_source": round(playback["shown_fps"] / 25, 3)}
        if playback
        else None,
        "targets_ms": {
            "preview_first_click": {"p50": 300, "p95": 600},
            "preview_further_clicks": 120,
            "frame_step_p50": 60,
            "frame_random_jump_p50": 200,
        },
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
