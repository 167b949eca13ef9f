"""Shared test helpers: compose the real configs, build SAM 2 with seeded random weights, write
real encoded videos with PyAV."""

from __future__ import annotations

import hashlib
import http.server
import itertools
import json
import sys
import time
from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def _geometry(t: int, n: int, width: int, height: int) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """(cx, cy, radius) of the disc and (cx, cy, side) of the square on frame t."""
    u = t / max(n, 1)
    disc = (int(width * (0.2 + 0.5 * u)), int(height * 0.4), min(width, height) // 8)
    square = (int(width * (0.7 - 0.4 * u)), int(height * 0.65), min(width, height) // 6)
    return disc, square


def ground_truth(t: int, n: int, width: int, height: int) -> np.ndarray:
    """uint8 [H, W] label map of frame t: 1 = disc, 2 = square (the square is drawn on top)."""
    (cx, cy, r), (sx, sy, s) = _geometry(t, n, width, height)
    yy, xx = np.mgrid[:height, :width]
    lab = np.zeros((height, width), dtype=np.uint8)
    lab[(xx - cx) ** 2 + (yy - cy) ** 2 < r * r] = 1
    lab[max(sy - s // 2, 0) : sy + s // 2, max(sx - s // 2, 0) : sx + s // 2] = 2
    return lab


def moving_shapes(n: int, width: int, height: int, seed: int = 0) -> Iterator[np.ndarray]:
    """n RGB frames (made lazily): textured background, a red disc and a blue square moving across it."""
    rng = np.random.default_rng(seed)
    bg = rng.integers(0, 60, size=(height // 8 + 1, width // 8 + 1, 3)).astype(np.uint8)
    bg = np.kron(bg, np.ones((8, 8, 1), dtype=np.uint8))[:height, :width]
    for t in range(n):
        lab = ground_truth(t, n, width, height)
        f = bg.copy()
        f[lab == 1] = (230, 40, 40)
        f[lab == 2] = (40, 60, 230)
        yield f


def compose_config(overrides: list[str] | None = None, name: str = "config"):
    # Importing sam2 initialises Hydra's global state (sam2/__init__.py); start from a clean one.
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(CONFIGS), version_base="1.3"):
        return compose(name, overrides=overrides or [])


def model_cfg(image_size: int = 128, extra: list[str] | None = None) -> dict:
    cfg = compose_config([f"model.image_size={image_size}", *(extra or [])])
    return OmegaConf.to_container(cfg.model, resolve=True)  # type: ignore[return-value]


def write_video(
    path: Path,
    frames: Iterable[np.ndarray],
    codec: str = "libx264",
    rate: int = 24,
    pix_fmt: str = "yuv420p",
    options: dict | None = None,
    audio: bool = False,
    pts: list[int] | None = None,
    time_base: Fraction | None = None,
    rotation: int = 0,
) -> Path:
    it = iter(frames)
    first = next(it)
    h, w = first.shape[:2]
    count = 0
    with av.open(str(path), "w") as out:
        vs = out.add_stream(codec, rate=rate)
        vs.width, vs.height, vs.pix_fmt = w, h, pix_fmt
        if rotation:
            vs.set_display_rotation(rotation)
        if time_base is not None:
            vs.time_base = time_base
            vs.codec_context.time_base = time_base
        vs.options = options or ({"crf": "18", "g": "12"} if codec == "libx264" else {})
        a_stream = out.add_stream("aac", rate=48000) if audio else None
        for i, f in enumerate(itertools.chain([first], it)):
            count += 1
            vf = av.VideoFrame.from_ndarray(f, format="rgb24")
            if pts is not None:
                vf.pts, vf.time_base = pts[i], time_base
            for p in vs.encode(vf):
                out.mux(p)
        for p in vs.encode():
            out.mux(p)
        if a_stream is not None:
            t = np.arange(int(48000 * count / rate)) / 48000
            encode_audio(out, a_stream, (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32))
    return path


def encode_audio(out: av.container.OutputContainer, stream, wave: np.ndarray, fmt: str = "fltp") -> None:
    """Encode mono samples at 48 kHz (float32 for "fltp", int16 for "s16") into ``stream`` and flush it."""
    for i in range(0, wave.size, 1024):
        af = av.AudioFrame.from_ndarray(wave[None, i : i + 1024], format=fmt, layout="mono")
        af.sample_rate, af.pts = 48000, i
        for p in stream.encode(af):
            out.mux(p)
    for p in stream.encode():
        out.mux(p)


def faststart_copy(src: Path, dst: Path) -> Path:
    """Remux ``src``'s video stream into ``dst`` with its index (moov) before the data, no re-encoding."""
    with av.open(str(src)) as i, av.open(str(dst), "w", options={"movflags": "faststart"}) as o:
        s = o.add_stream_from_template(i.streams.video[0])
        for p in i.demux(i.streams.video[0]):
            if p.dts is not None:
                p.stream = s
                o.mux(p)
    return dst


class WeightsServer(http.server.ThreadingHTTPServer):
    """Meta's checkpoint host and Hugging Face's file list on 127.0.0.1, for ``tracker-download``: serves
    ``payload`` as SAM 2.1 tiny under ``/files/092824/`` (HTTP ranges; ``cut_after`` drops the next
    transfer after that many bytes) and its SHA-256 as the LFS oid under ``/api/``."""

    daemon_threads = True

    def __init__(self, payload: bytes) -> None:
        super().__init__(("127.0.0.1", 0), _WeightsHandler)
        self.payload = payload
        self.oid = hashlib.sha256(payload).hexdigest()
        self.cut_after: int | None = None
        self.ranges: list[str | None] = []
        self.extra = b""  # sent after the payload, as a wrong or hostile file would be
        self.send_length = True  # False: no Content-Length (the body ends when the connection closes)
        self.drip_s: float | None = None  # one byte every drip_s seconds
        self.api_body: bytes | None = None  # the file list's reply instead of the real one
        self.sums: str | None = None  # served as /files/SHA256SUMS (a mirror's sums file), else 404

    def handle_error(self, request, client_address) -> None:
        # A client that stops reading (the tool refusing a reply part way) resets the connection: that is the
        # behaviour under test. socketserver would print it to stderr, into the test's captured stderr, or
        # not, depending on which thread ran first.
        if isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            return
        super().handle_error(request, client_address)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def env(self) -> dict[str, str]:
        """What points tracker-download here."""
        return {"TRACKER_WEIGHTS_URL": f"{self.url}/files", "TRACKER_HF_API": f"{self.url}/api"}


class _WeightsHandler(http.server.BaseHTTPRequestHandler):
    server: WeightsServer

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        s = self.server
        if self.path == "/api/facebook/sam2.1-hiera-tiny/tree/main":
            lfs = {"oid": s.oid, "size": len(s.payload)}
            body = s.api_body or json.dumps([{"path": "sam2.1_hiera_tiny.pt", "lfs": lfs}]).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if self.path == "/files/SHA256SUMS" and s.sums is not None:
            body = s.sums.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if self.path != "/files/092824/sam2.1_hiera_tiny.pt":
            self.send_error(404)
            return
        rng = self.headers.get("Range")
        s.ranges.append(rng)
        start = int(rng.removeprefix("bytes=").rstrip("-")) if rng else 0
        if start >= len(s.payload):
            self.send_error(416)
            return
        body = s.payload[start:] + s.extra
        self.send_response(206 if rng else 200)
        if s.send_length:
            self.send_header("Content-Length", str(len(body)))
        else:
            self.close_connection = True
        self.end_headers()
        if s.cut_after is not None:
            body, s.cut_after = body[: s.cut_after], None
        try:
            if s.drip_s is None:
                self.wfile.write(body)
                return
            for i in range(len(body)):
                self.wfile.write(body[i : i + 1])
                self.wfile.flush()
                time.sleep(s.drip_s)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up, as it should


def cli_main(*args: str) -> int:
    """``tracker ARGS`` through the CLI's real entry point in this process (no interpreter start per case):
    its exit code. The caller captures stderr its own way; the signal handlers, thread counts and
    ``sys.argv`` the CLI sets are restored."""
    import signal
    import sys

    from hydra.initialize import get_gh_backup, restore_gh_from_backup

    from tracker.apps import cli
    from tracker.threads import current_threads, restore_threads

    threads = current_threads()
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    argv = sys.argv
    sys.argv = ["tracker", *args]
    # The tracker command starts in a process where nothing initialised Hydra; here, importing sam2 (a test
    # before this one) does, and @hydra.main would refuse to start.
    hydra_state = get_gh_backup()
    GlobalHydra.instance().clear()
    try:
        cli.main()
        return 0
    except SystemExit as e:
        return int(e.code or 0)
    finally:
        restore_gh_from_backup(hydra_state)
        sys.argv = argv
        restore_threads(threads)
        for s, h in saved.items():
            signal.signal(s, h)
