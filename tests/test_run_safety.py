"""Run safety: inputs never harmed, outputs all or nothing, one line for every bad input, no hang.

Every test asserts the exit code, the stderr lines and the exact state of the output folder afterwards
(file names and contents, hashed)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import av
import numpy as np
import pytest
from helpers import cli_main, encode_audio, faststart_copy, moving_shapes, write_video
from PIL import Image

from tracker.run.transaction import OutputTransaction
from tracker.threads import resolve_threads, usable_cores

BASE = ["model.image_size=128", "model.random_weights=true", "progress=false"]
BOX = ["prompts.box=[10,10,40,40]", "prompts.frame=0"]


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return write_video(tmp_path_factory.mktemp("safety") / "clip.mp4", moving_shapes(12, 96, 64))


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory) -> Path:
    return write_video(tmp_path_factory.mktemp("safety_long") / "long.mp4", moving_shapes(120, 96, 64))


def snapshot(folder: Path) -> dict[str, str]:
    """Relative path -> content hash of every file and folder under ``folder`` (empty: it does not exist)."""
    if not folder.exists():
        return {}
    out = {}
    for p in sorted(folder.rglob("*")):
        rel = str(p.relative_to(folder))
        out[rel] = "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def tracker(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tracker.apps.cli", *BASE, *args], capture_output=True, text=True, timeout=timeout
    )


def tool(entry: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """``tracker-eval`` / ``tracker-train`` (their console scripts' functions) in a child process."""
    code = f"from tracker.apps.cli import {entry}; {entry}()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=timeout)


def assert_one_error(res: subprocess.CompletedProcess, needle: str, code: int = 2) -> None:
    assert res.returncode == code, res.stderr[-3000:]
    lines = [x for x in res.stderr.splitlines() if x.strip()]
    assert len(lines) == 1, res.stderr[-3000:]
    assert lines[0].startswith("tracker: error:") and needle in lines[0], lines[0]


def complete_run(out: Path, clip: Path, *extra: str) -> dict[str, str]:
    res = tracker(f"source.path={clip}", f"output_dir={out}", *BOX, *extra)
    assert res.returncode == 0, res.stderr[-3000:]
    return snapshot(out)


# ---- the transaction ------------------------------------------------------------------------------------


def test_data_loss_retracking_an_output_into_its_folder(clip, tmp_path):
    out = tmp_path / "out"
    before = complete_run(out, clip)
    res = tracker(f"source.path={out / 'annotated.mp4'}", f"output_dir={out}", *BOX)
    assert_one_error(res, "lies in the outputs this run replaces")
    assert snapshot(out) == before
    # the earlier run wrote annotated.mp4; a rerun without that sink would still delete it (stale file)
    res = tracker(f"source.path={out / 'annotated.mp4'}", f"output_dir={out}", "sink.annotated=false", *BOX)
    assert_one_error(res, "lies in the outputs this run replaces")
    assert snapshot(out) == before


def test_data_loss_frame_folder_inside_the_outputs(clip, tmp_path):
    out = tmp_path / "out"
    before = complete_run(out, clip)
    res = tracker("source=images", f"source.path={out / 'masks'}", f"output_dir={out}", *BOX)
    assert_one_error(res, "lies in the outputs this run replaces")
    assert snapshot(out) == before
    frames = tmp_path / "frames"
    frames.mkdir()
    for i, f in enumerate(moving_shapes(4, 96, 64)):
        Image.fromarray(f).save(frames / f"{i:05d}.png")
    kept = snapshot(frames)
    res = tracker("source=images", f"source.path={frames}", f"output_dir={frames}", *BOX)
    assert_one_error(res, "is the output folder")
    assert snapshot(frames) == kept


def test_rerun_with_fewer_sinks_replaces_the_whole_set(clip, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("the user's own file")
    complete_run(out, clip)
    assert {"annotated.mp4", "masks", "masks.jsonl", "tracks.csv", "run.json"} <= {p.name for p in out.iterdir()}
    complete_run(out, clip, "sink.annotated=false", "sink.png=false")
    names = {p.name for p in out.iterdir()}
    expected = {"masks.jsonl", "tracks.csv", "tracks_labels.txt", "run.json", "run.log", ".hydra", ".outputs.json"}
    assert names == expected | {"notes.txt"}
    assert json.loads((out / ".outputs.json").read_text())["files"] == sorted(names - {"notes.txt", ".outputs.json"})
    assert (out / "notes.txt").read_text() == "the user's own file"


def test_sink_failing_at_close_commits_nothing(clip, tmp_path, monkeypatch, capfd):
    from tracker.io import sinks

    out = tmp_path / "out"
    before = complete_run(out, clip)

    def broken_close(self, ok):
        self._f.close()
        raise OSError(5, "Input/output error", str(self.partial))

    monkeypatch.setattr(sinks.MotSink, "close", broken_close)
    code, err = run_in_process(capfd, f"source.path={clip}", f"output_dir={out}", *BOX)
    assert code == 2 and err == [f"tracker: error: Input/output error: '{out}/.resume/staging/tracks.csv.partial'"]
    assert snapshot(out) == before


def test_full_disk_leaves_the_earlier_run(tmp_path, small_disk):
    rng = np.random.default_rng(0)
    noisy = (rng.integers(0, 256, (48, 240, 320, 3))).astype(np.uint8)
    big = write_video(tmp_path / "noisy.mp4", iter(noisy))
    out = small_disk / "out"
    before = complete_run(out, big, "sink.annotated=false", "sink.png=false")
    res = tracker(f"source.path={big}", f"output_dir={out}", "sink.crf=0", "sink.preset=ultrafast", *BOX)
    assert_one_error(res, "no space left on the device")
    assert snapshot(out) == before


def start_writing(out: Path, clip: Path) -> subprocess.Popen:
    """A run in the background, returned once it has started writing its staged outputs."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tracker.apps.cli", *BASE, f"source.path={clip}", f"output_dir={out}", *BOX],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    staged = ".resume/staging/masks.partial/*.png"  # a file run stages where a resumed run finds it
    while not list(out.glob(staged)) and time.time() < deadline:
        time.sleep(0.1)
    assert list(out.glob(staged)), "the run did not start writing"
    return proc


def test_two_runs_into_one_folder(clip, tmp_path):
    out = tmp_path / "out"
    first_clip = write_video(tmp_path / "first.mp4", moving_shapes(60, 96, 64))
    first = start_writing(out, first_clip)
    first.send_signal(signal.SIGSTOP)  # it holds the folder however long the second takes to start
    try:
        second = tracker(f"source.path={clip}", f"output_dir={out}", *BOX)
        assert first.poll() is None, "the second run must be refused while the first still runs"
    finally:
        first.send_signal(signal.SIGCONT)
    assert_one_error(second, "is in use by another run")
    _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err[-2000:]
    record = json.loads((out / "run.json").read_text())
    assert record["source"]["path"] == str(first_clip) and record["frames"] == 60
    assert len(list((out / "masks").glob("*.png"))) == 60
    assert not list(out.glob(".staging-*")) and not (out / ".resume").exists()


def test_a_dead_runs_half_commit_is_finished_by_the_next(tmp_path):
    """A process killed in the middle of a commit: the next run into the folder rolls it forward."""
    out = tmp_path / "out"
    with OutputTransaction(out) as tx:
        tx.path("a.txt").write_text("old a")
        tx.path("b.txt").write_text("old b")
        tx.commit()
    # the state a crash would leave half-way: new a.txt moved in, old b.txt parked, new b.txt still staged
    dead = out / ".staging-999999"
    (dead / ".old").mkdir(parents=True)
    os.replace(out / "b.txt", dead / ".old" / "b.txt")
    (dead / "b.txt").write_text("new b")
    (dead / ".outputs.json").write_text(json.dumps({"files": ["a.txt", "b.txt"]}))
    (out / "a.txt").write_text("new a")
    (dead / ".commit").write_text(
        json.dumps({"new": ["a.txt", "b.txt", ".outputs.json"], "old": [".outputs.json", "a.txt", "b.txt"]})
    )
    with OutputTransaction(out) as tx:
        assert (out / "a.txt").read_text() == "new a" and (out / "b.txt").read_text() == "new b"
        assert not dead.exists()
    assert {p.name for p in out.iterdir()} == {"a.txt", "b.txt", ".outputs.json"}


# ---- bombs, pipes, signals ------------------------------------------------------------------------------


def png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG that declares width x height (8-bit grey) but holds one row of data: decoding it would
    allocate the whole picture, reading its header does not."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    body = chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * (width + 1))) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)
    return path


@pytest.mark.parametrize("kind", ["rle", "png_prompt", "frame"])
def test_bombs_are_refused_before_allocation(clip, tmp_path, kind):
    out = tmp_path / "out"
    args = [f"source.path={clip}", f"output_dir={out}"]
    p = tmp_path / "p.yaml"
    if kind == "rle":
        p.write_text("objects:\n  - {id: 1, prompts: [{frame: 0, mask: {size: [200000, 200000], counts: '0'}}]}\n")
        args.append(f"prompts.path={p}")
    elif kind == "png_prompt":
        png_header_only(tmp_path / "bomb.png", 60000, 60000)
        p.write_text("objects:\n  - {id: 1, prompts: [{frame: 0, mask: bomb.png}]}\n")
        args.append(f"prompts.path={p}")
    else:
        frames = tmp_path / "frames"
        frames.mkdir()
        png_header_only(frames / "00000.png", 30000, 30000)
        args = ["source=images", f"source.path={frames}", f"output_dir={out}", *BOX]
    res = tracker(*args)
    assert_one_error(res, "Mpx limit")
    # the child never got near the 4 GB (RLE: 40 GB) the declared sizes would take
    assert resource_peak_children_mib() < 3000
    assert not out.exists()


def resource_peak_children_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def test_fifo_in_file_mode_is_refused_not_waited_on(tmp_path):
    # (mode=auto reads a FIFO as a live stream: tests/test_live.py)
    fifo = tmp_path / "pipe.mp4"
    os.mkfifo(fifo)
    out = tmp_path / "out"
    res = tracker(f"source.path={fifo}", f"output_dir={out}", "mode=file", *BOX, timeout=60)
    assert_one_error(res, "use mode=online")
    assert not out.exists()


def test_silent_fifo_ends_after_the_timeout(tmp_path):
    fifo = tmp_path / "pipe.ts"
    os.mkfifo(fifo)
    out = tmp_path / "out"
    res = tracker(f"source.path={fifo}", f"output_dir={out}", "source.timeout=2", *BOX, timeout=60)
    assert_one_error(res, "gave no frame within source.timeout=2 s")
    assert not out.exists()


@pytest.mark.parametrize(
    "signals, code, earlier_run",
    [
        ([signal.SIGTERM], 143, True),
        ([signal.SIGHUP], 129, True),
        ([signal.SIGINT] * 4, 130, True),
        ([signal.SIGINT], 130, False),
    ],
)
def test_signals_clean_up_and_keep_the_earlier_run(clip, long_clip, tmp_path, signals, code, earlier_run):
    """Each signal leaves the folder as it was: the earlier run's set, or no folder when there was none."""
    out = tmp_path / "out"
    before = complete_run(out, clip) if earlier_run else {}
    proc = start_writing(out, long_clip)
    for s in signals:
        proc.send_signal(s)
        time.sleep(0.05)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err[-2000:]
    lines = [x for x in err.splitlines() if x.strip()]
    assert len(lines) == 1 and "interrupted" in lines[0], err[-2000:]
    # the outputs are as they were; the stopped run's checkpoint and staging wait in .resume/ for resume=true
    assert (out / ".resume" / "checkpoint.pt").is_file()
    assert {k: v for k, v in snapshot(out).items() if not k.startswith(".resume")} == before
    if signals == [signal.SIGTERM]:
        done = tracker(f"source.path={long_clip}", f"output_dir={out}", *BOX, "resume=true")
        assert done.returncode == 0, done.stderr[-2000:]
        resumed = json.loads((out / "run.json").read_text())["resumed_from"]  # it continued from its checkpoint
        assert resumed["frame"] >= 0
        assert len(list((out / "masks").glob("*.png"))) == 120 and not (out / ".resume").exists()


# ---- threads --------------------------------------------------------------------------------------------


AFFINITY_CHECK = """
import os, subprocess, sys, time
from tracker.threads import resolve_threads, usable_cores
cpus = sorted(os.sched_getaffinity(0))[:2]
os.sched_setaffinity(0, set(cpus))
spin = "import os; os.sched_setaffinity(0, {%d}); exec('while True: pass')" % cpus[0]
busy = subprocess.Popen([sys.executable, "-c", spin])
time.sleep(0.5)
beside = resolve_threads("auto")
busy.kill()
os.sched_setaffinity(0, {cpus[0]})
print(len(cpus), beside, usable_cores(), resolve_threads("auto"))
"""


def test_threads_setting(clip, tmp_path):
    out = tmp_path / "out"
    complete_run(out, clip, "threads=1")
    assert json.loads((out / "run.json").read_text())["threads"] == 1
    # threads=auto is the default of every other run here; what it resolves to:
    assert 1 <= resolve_threads("auto") <= usable_cores()
    assert resolve_threads("auto", jobs=64) == 1 and resolve_threads(3) == 3
    # auto leaves out a core that another process keeps busy, and follows the CPU affinity it is given
    res = subprocess.run([sys.executable, "-c", AFFINITY_CHECK], capture_output=True, text=True, timeout=60)
    n, beside, pinned, pinned_auto = map(int, res.stdout.split())
    if n < 2:
        pytest.skip("needs two cores")
    assert beside == n - 1 and pinned == 1 and pinned_auto == 1
    # bad values (threads=0, threads=abc): test_generated_bad_input_gets_one_line_and_no_output


# ---- sources and tools that used to end in a traceback ----------------------------------------------------


def test_pcm_audio_is_transcoded_to_aac(tmp_path):
    src = tmp_path / "camera.mov"
    with av.open(str(src), "w") as c:
        vs = c.add_stream("libx264", rate=24)
        vs.width, vs.height, vs.pix_fmt = 96, 64, "yuv420p"
        a = c.add_stream("pcm_s16le", rate=48000, layout="mono")
        for f in moving_shapes(12, 96, 64):
            for p in vs.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        for p in vs.encode():
            c.mux(p)
        t = np.arange(24000) / 48000
        encode_audio(c, a, (0.2 * np.sin(2 * np.pi * 440 * t) * 32767).astype(np.int16), fmt="s16")
    out = tmp_path / "out"
    complete_run(out, src, "sink.png=false")
    assert json.loads((out / "run.json").read_text())["audio"] == {
        "mode": "transcode",
        "codec": "pcm_s16le",
        "to": "aac",
    }
    with av.open(str(out / "annotated.mp4")) as c:
        assert c.streams.audio[0].codec_context.name == "aac"
        assert len(list(c.decode(video=0))) == 12
    with av.open(str(out / "annotated.mp4")) as c:
        samples = sum(f.samples for f in c.decode(audio=0))
    assert abs(samples - 24000) < 2048


def test_damaged_inputs_end_in_one_line(clip, tmp_path):
    out = tmp_path / "out"
    frames = tmp_path / "frames"
    frames.mkdir()
    for i, f in enumerate(moving_shapes(4, 96, 64)):
        Image.fromarray(f).save(frames / f"{i:05d}.jpg")
    data = (frames / "00002.jpg").read_bytes()
    (frames / "00002.jpg").write_bytes(data[: len(data) // 3])
    assert_one_error(tracker("source=images", f"source.path={frames}", f"output_dir={out}", *BOX), "00002.jpg")
    # decord on a file whose data is garbage past its header
    broken = tmp_path / "broken.mp4"
    raw = bytearray(clip.read_bytes())
    raw[len(raw) // 4 :] = np.random.default_rng(1).integers(0, 256, len(raw) - len(raw) // 4, dtype=np.uint8).tobytes()
    broken.write_bytes(bytes(raw))
    res = tracker("source=decord", f"source.path={broken}", f"output_dir={out}", *BOX)
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1, res.stderr[-2000:]
    # a truncated video with a prompt frame inside the frame count its index announces
    fast = faststart_copy(clip, tmp_path / "fast.mp4")
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(fast.read_bytes()[: int(fast.stat().st_size * 0.5)])
    res = tracker(f"source.path={cut}", f"output_dir={out}", "prompts.box=[10,10,40,40]", "prompts.frame=11")
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1, res.stderr[-2000:]
    assert "Traceback" not in res.stderr
    assert not out.exists()


def test_eval_reads_rgb_masks_and_reports_na(tmp_path):
    from tracker.io.sinks import davis_palette

    gt, pred, empty = tmp_path / "gt" / "s", tmp_path / "pred" / "s", tmp_path / "gt0" / "s"
    for d in (gt, pred, empty):
        d.mkdir(parents=True)
    for i in range(4):
        lab = np.zeros((48, 64), dtype=np.uint8)
        lab[10:30, 5 + i : 25 + i] = 1
        lab[30:45, 40:60] = 2
        im = Image.fromarray(lab, mode="P")
        im.putpalette(davis_palette())
        im.save(gt / f"{i:05d}.png")
        im.convert("RGBA").save(pred / f"{i:05d}.png")  # what an image editor saves
        Image.fromarray(np.zeros((48, 64), dtype=np.uint8), mode="L").save(empty / f"{i:05d}.png")
    out = tmp_path / "out"
    res = tool("eval_main", f"pred={pred.parent}", f"gt={gt.parent}", f"output_dir={out}")
    assert res.returncode == 0, res.stderr
    assert json.loads((out / "results.json").read_text())["dataset"]["J&F-Mean"] == pytest.approx(1.0)
    # ground truth without objects: n/a, never NaN
    out0 = tmp_path / "out0"
    res = tool("eval_main", f"pred={pred.parent}", f"gt={empty.parent}", f"output_dir={out0}")
    assert res.returncode == 0, res.stderr
    text = (out0 / "results.json").read_text()
    assert "NaN" not in text and json.loads(text)["dataset"]["J&F-Mean"] is None
    assert "n/a" in res.stdout and "n/a" in (out0 / "results.csv").read_text()
    # an RGB colour outside the palette (as prediction, and as ground truth), and a corrupt PNG: one line each
    Image.fromarray(np.full((48, 64, 3), 77, dtype=np.uint8)).save(pred / "00001.png")
    bad = tmp_path / "o"
    for args in ([f"pred={pred.parent}", f"gt={gt.parent}"], [f"pred={gt.parent}", f"gt={pred.parent}"]):
        assert_one_error(tool("eval_main", *args, f"output_dir={bad}"), "not in the DAVIS palette")
    (gt / "00002.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    assert_one_error(tool("eval_main", f"pred={gt.parent}", f"gt={gt.parent}", f"output_dir={bad}"), "00002.png")
    assert not bad.exists()


def test_train_with_a_bad_last_checkpoint(tmp_path):
    from tracker.experiments.synthetic import write_dataset

    data = tmp_path / "data"
    write_dataset(data, 2, seed=1, frames=4, split="train")
    out = tmp_path / "run"
    out.mkdir()
    (out / "last.pt").write_bytes(b"not a checkpoint")
    args = [f"train.data_root={data}", f"output_dir={out}", "train.steps=2", "progress=false", "model.image_size=64"]
    res = tool("train_main", *args)
    assert_one_error(res, "cannot resume from")
    assert (out / "last.pt").read_bytes() == b"not a checkpoint"


# ---- generated bad input: the prompts schema and the config ------------------------------------------------


def run_in_process(capfd, *args: str) -> tuple[int, list[str]]:
    """``tracker ARGS`` in this process (fast: no torch import per case); (exit code, stderr lines)."""
    capfd.readouterr()
    code = cli_main(*BASE, *args)
    err = capfd.readouterr().err
    return code, [x for x in err.splitlines() if x.strip()]


def _valid_prompts() -> dict:
    """Valid for the 96x64, 12-frame clip; every mutation below makes it invalid."""
    return {
        "objects": [
            {"id": 1, "label": "disc", "prompts": [{"frame": 0, "box": [10, 10, 40, 40]}]},
            {"id": 2, "prompts": [{"frame": 5, "points": [[60, 40, 1], [5, 5, 0]]}]},
            {"id": 3, "prompts": [{"frame": 3, "mask": {"size": [64, 96], "counts": [100, 50, 5994]}}]},
        ]
    }


BAD_NUMBERS = [float("nan"), float("inf"), -float("inf"), 10**400, "a", None, True, [], {}]
BAD_IDS = [0, -1, 256, 1.5, "a", True, None, [1], 10**400, 2**31]
BAD_FRAMES = [-1, 12, 99, 1.5, "0", None, True, 10**400, [0]]
BAD_POINTS = [
    5,
    "x",
    {},
    [5],
    [[1, 2]],
    [[1, 2, 3, 4]],
    [[1, 2, 2]],
    [[-1, 5, 1]],
    [[97, 5, 1]],
    [[5, 65, 1]],
    [[5, 5, 0.5]],
    [[5, 5, None]],
] + [[[v, 5, 1]] for v in BAD_NUMBERS]
BAD_BOXES = [
    5,
    "x",
    {},
    [1, 2, 3],
    [1, 2, 3, 4, 5],
    [40, 10, 10, 40],
    [10, 10, 10, 40],
    [-5, 0, 10, 10],
    [0, 0, 97, 10],
    [0, 0, 10, 65],
    [[1, 2], [3, 4]],
] + [[v, 1, 20, 20] for v in BAD_NUMBERS]
BAD_RLES = [
    5,
    [],
    {"size": [64, 96]},
    {"counts": [6144]},
    {"size": [64, 96], "counts": "!!"},
    {"size": [64, 96], "counts": [1, 2, 3]},
    {"size": [0, 96], "counts": []},
    {"size": [-64, 96], "counts": [6144]},
    {"size": [64], "counts": [64]},
    {"size": ["64", 96], "counts": [6144]},
    {"size": [200000, 200000], "counts": [1]},
    {"size": [64, 96], "counts": [-5, 6149]},
    {"size": [64, 96], "counts": [1.5, 6142.5]},
    {"size": [64, 96], "counts": {}},
    {"size": [32, 48], "counts": [10, 10, 1516]},
    {"size": [64, 96], "counts": [6144]},
    {"size": [64, 96], "counts": [100, 50, 5994], "format": "rle"},
    {"size": [64, 96], "counts": "PPPPPPPPPPPPPP"},
    {"size": [64, 96], "counts": "0" * 5000},
    "missing.png",
    "notes.txt",
    "empty.png",
    "bomb.png",
    "small.png",
]


def _mutations() -> list:
    """Functions doc -> doc, each introducing one invalid value somewhere in the prompts schema."""
    muts = []

    def at_top(value):
        return lambda d: value

    for v in [None, [], "text", 5, {"objects": []}, {"objects": None}, {"object": [1]}]:
        muts.append(at_top(v))
    muts.append(lambda d: {**d, "extra": 1})

    def on_object(fn):
        def m(d, i=None, rng=None):
            i = (rng.integers(len(d["objects"])) if rng is not None else 0) if i is None else i
            d["objects"][i] = fn(d["objects"][i])
            return d

        return m

    for v in BAD_IDS:
        muts.append(on_object(lambda o, v=v: {**o, "id": v}))
    muts.append(on_object(lambda o: {k: x for k, x in o.items() if k != "id"}))
    for typo in ("lable", "prompt", "ids"):
        muts.append(on_object(lambda o, t=typo: {**o, t: 1}))
    for v in [[1], {"a": 1}, True]:
        muts.append(on_object(lambda o, v=v: {**o, "label": v}))
    for v in [None, [], "x", 5, {}]:
        muts.append(on_object(lambda o, v=v: {**o, "prompts": v}))
    for v in [5, "x", None, []]:
        muts.append(on_object(lambda o, v=v: v))
    muts.append(lambda d: {"objects": [*d["objects"], dict(d["objects"][0])]})  # duplicate id

    def on_prompt(fn):
        return on_object(
            lambda o: {
                **o,
                "prompts": [
                    fn(dict(o["prompts"][0]))
                    if isinstance(o.get("prompts"), list) and o["prompts"] and isinstance(o["prompts"][0], dict)
                    else 5
                ],
            }
        )

    for v in BAD_FRAMES:
        muts.append(on_prompt(lambda p, v=v: {**p, "frame": v}))
    muts.append(on_prompt(lambda p: {k: x for k, x in p.items() if k != "frame"}))
    for typo in ("pionts", "boxes", "frames"):
        muts.append(on_prompt(lambda p, t=typo: {**p, t: 1}))
    muts.append(on_prompt(lambda p: {"frame": p.get("frame", 0)}))  # empty prompt
    muts.append(
        on_object(
            lambda o: (
                {**o, "prompts": [o["prompts"][0], o["prompts"][0]]}
                if isinstance(o.get("prompts"), list) and o["prompts"]
                else 5
            )
        )
    )
    for v in BAD_POINTS:
        muts.append(on_prompt(lambda p, v=v: {**p, "points": v}))
    for v in BAD_BOXES:
        muts.append(on_prompt(lambda p, v=v: {**p, "box": v}))
    for v in BAD_RLES:
        muts.append(on_prompt(lambda p, v=v: {**p, "mask": v}))
    return muts


def generated_cases(n_random: int, seed: int = 7) -> list[dict]:
    """Every single mutation once, then random stacks of 2-3 of them (seeded)."""
    import copy

    muts = _mutations()
    docs = [m(_valid_prompts()) for m in muts]
    rng = np.random.default_rng(seed)
    for _ in range(n_random):
        d = _valid_prompts()
        for k in rng.choice(len(muts), size=int(rng.integers(2, 4)), replace=False):
            m = muts[int(k)]
            # an earlier mutation may have removed what this one edits: the document stays invalid
            with contextlib.suppress(KeyError, TypeError, IndexError, AttributeError, ValueError):
                d = m(copy.deepcopy(d), rng=rng) if m.__code__.co_argcount == 3 else m(copy.deepcopy(d))
        docs.append(d)
    return docs


BAD_OVERRIDES = [
    ["model.image_size=100"],
    ["model.image_size=abc"],
    ["model.image_size=0"],
    ["model.device=cuda"],
    ["model.device=cuda:3"],
    ["model.device=nope"],
    ["model.device=mps"],
    ["model.memory_stride=0"],
    ["model.fill_hole_area=-3"],
    ["model.compile=maybe"],
    ["model.tf32=maybe"],
    ["model.kv_cache=1"],
    ["model.dtype=half"],
    ["threads=0"],
    ["threads=abc"],
    ["sink.crf=99"],
    ["sink.preset=bogus"],
    ["sink.alpha=2"],
    ["sink.png=2"],
    ["propagation.prefetch=-1"],
    ["propagation.reverse_chunk=0"],
    ["prompts.frame=-1"],
    ["prompts.frame=12"],
    ["prompts.box=[1,2,3]"],
    ["prompts.points=5"],
    ["prompts.points=[[1,2]]"],
    ["prompts.id=0"],
    ["prompts.id=300"],
    ["seed=-1"],
    ["progress=maybe"],
    ["source.kind=ffmpeg"],
    ["model.foo=1"],
    ["model=nope"],
    ["prompts.box=[1,2"],
    ["source.path=/nonexistent/clip.mp4"],
    ["source.path=rtsp://127.0.0.1:9/stream", "mode=file"],
    ["source.path=-", "mode=file"],
    ["source.path=ftp://127.0.0.1/clip.mp4"],
    ["mode=sometimes"],
    ["live.realtime=maybe"],
    ["source=camera", "source.device=/nonexistent/video0"],
    ["model.checkpoint=/nonexistent.pt"],
    ["prompts.path=/nonexistent.yaml"],
    ["source=images", "source.fps=0"],
    ["output_dir=FILE"],
    ["output_dir=FILE/sub"],
    ["source.path=DIR"],
    ["prompts=detections"],
    ["prompts=detections", "prompts.format=xml", "prompts.path=FILE"],
    ["prompts=detections", "prompts.path=/nonexistent.txt"],
    ["prompts=detections", "prompts.path=FILE"],
    ["prompts=detections", "prompts.format=yolo", "prompts.path=FILE"],
    ["prompts=detections", "prompts.format=coco", "prompts.path=FILE"],
    ["prompts=detections", "prompts.path=FILE", "prompts.reprompt_iou=2"],
    ["prompts=detections", "prompts.path=FILE", "prompts.match_iou=0"],
    ["prompts=auto", "prompts.frames=[12]"],
    ["prompts=auto", "prompts.frames=[-1]"],
    ["prompts=auto", "prompts.frames=abc"],
    ["prompts=auto", "resume=true"],
    ["discover.every=-1"],
    ["discover.every=4", "resume=true"],
    ["discover.new_iou=0"],
    ["discover.max_covered=1.5"],
    ["discover.confirm=abc"],
    ["generator.nms=soft"],
    ["generator.points_per_side=0"],
    ["generator.min_area=0.5", "generator.max_area=0.1"],
    ["generator.pred_iou_thresh=nan"],
]


def test_generated_bad_input_gets_one_line_and_no_output(clip, tmp_path, capfd):
    """A sixth of the malformed prompts file mutations, ten random stacks of them, and every bad config value,
    through the real CLI entry point (the prompts parser has its own property tests, in process)."""
    import yaml

    (tmp_path / "notes.txt").write_text("not an image")
    Image.fromarray(np.zeros((64, 96), dtype=np.uint8)).save(tmp_path / "empty.png")
    Image.fromarray(np.full((10, 10), 255, dtype=np.uint8)).save(tmp_path / "small.png")
    png_header_only(tmp_path / "bomb.png", 50000, 50000)
    (tmp_path / "FILE").write_text("a file where a folder should be")
    out = tmp_path / "out"
    cases = []
    docs = generated_cases(10)
    # a sixth of the single mutations (each parser rule has its property test in process) and the stacks
    for i, doc in enumerate(docs[:-10:6] + docs[-10:]):
        (tmp_path / f"p{i}.yaml").write_text(yaml.safe_dump(doc))
        cases.append([f"prompts.path={tmp_path / f'p{i}.yaml'}"])
    for o in BAD_OVERRIDES:
        o = [x.replace("FILE", str(tmp_path / "FILE")).replace("DIR", str(tmp_path)) for x in o]
        cases.append(
            [*BOX, *o] if not any(x.startswith(("prompts.box", "prompts.points", "prompts=")) for x in o) else o
        )
    assert len(cases) > 90
    for args in cases:
        base = [f"source.path={clip}"] if not any(a.startswith("source.path") for a in args) else []
        dest = [] if any(a.startswith("output_dir") for a in args) else [f"output_dir={out}"]
        code, err = run_in_process(capfd, *base, *dest, *args)
        text = "\n".join(err)
        if args[0].startswith("prompts.path="):
            text += "\n" + Path(args[0].split("=", 1)[1]).read_text()[:500]
        assert code == 2, text
        assert len(err) == 1 and err[0].startswith("tracker: error:"), text
        assert "Traceback" not in err[0]
        assert not out.exists(), text
    # and one through a real child process, as a user runs it
    for args in cases[len(cases) // 2 : len(cases) // 2 + 1]:
        res = tracker(f"source.path={clip}", f"output_dir={out}", *args)
        assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1, res.stderr[-2000:]
        assert not out.exists()
