"""End to end: real encoded files in, every output written, decoded back and checked."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from helpers import compose_config, encode_audio, faststart_copy, moving_shapes, write_video
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from pycocotools import mask as mask_utils

from tracker.apps import cli
from tracker.io.source import open_source

N = 12
PROMPTS = "prompts.box=[10,10,40,40] prompts.frame=0"


def _videos(root: Path) -> dict[str, tuple[Path, str]]:
    """name -> (path, source kind): each a real file written by PyAV (or PIL for the JPEG folder)."""
    out: dict[str, tuple[Path, str]] = {}
    out["h264_audio"] = (write_video(root / "a.mp4", moving_shapes(N, 96, 64), audio=True), "pyav")
    vfr_pts = [0, 40, 80, 200, 240, 300, 420, 460, 500, 540, 700, 740]
    out["vfr"] = (
        write_video(root / "vfr.mp4", moving_shapes(N, 96, 64), pts=vfr_pts, time_base=Fraction(1, 1000)),
        "pyav",
    )
    out["odd_size"] = (write_video(root / "odd.mp4", moving_shapes(N, 97, 65), pix_fmt="yuv444p"), "pyav")
    out["10bit"] = (write_video(root / "ten.mkv", moving_shapes(N, 96, 64), pix_fmt="yuv420p10le"), "pyav")
    out["vp9"] = (
        write_video(root / "v.webm", moving_shapes(N, 96, 64), codec="libvpx-vp9", options={"crf": "30"}),
        "pyav",
    )
    out["mjpeg"] = (
        write_video(root / "m.avi", moving_shapes(N, 96, 64), codec="mjpeg", pix_fmt="yuvj420p", options={}),
        "pyav",
    )
    folder = root / "jpegs"
    folder.mkdir()
    for i, f in enumerate(moving_shapes(N, 96, 64)):
        Image.fromarray(f).save(folder / f"{i:05d}.jpg", quality=95)
    out["jpeg_folder"] = (folder, "images")
    return out


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    return _videos(tmp_path_factory.mktemp("videos"))


def _run(out: Path, *overrides: str) -> dict:
    base = ["model.image_size=128", "model.random_weights=true", f"output_dir={out}", "progress=false"]
    cfg = compose_config([*base, *overrides])
    return cli.run(cfg)


def _source_times(path: Path, kind: str) -> list[float]:
    return [f.time for f in open_source(kind, path).frames()]


@pytest.mark.parametrize("name", ["h264_audio", "vfr", "odd_size", "10bit", "vp9", "mjpeg", "jpeg_folder"])
def test_every_output_matches_the_source(videos, tmp_path, name):
    path, kind = videos[name]
    src = open_source(kind, path)
    n, w, h = src.info.num_frames, src.info.width, src.info.height
    assert n == N
    prompts = tmp_path / "p.yaml"
    prompts.write_text(
        "objects:\n"
        "  - {id: 3, label: disc, prompts: [{frame: 0, box: [10, 10, 40, 40]}]}\n"
        "  - {id: 7, prompts: [{frame: 5, points: [[60, 40, 1], [5, 5, 0]]}]}\n"
    )
    out = tmp_path / "out"
    record = _run(out, f"source={kind}", f"source.path={path}", f"prompts.path={prompts}")
    assert record["frames"] == n and set(record) >= {"decode_s", "model_s", "encode_s", "fps", "peak_rss_mib"}
    assert json.loads((out / "run.json").read_text())["config"]["source"]["path"] == str(path)
    assert not list(out.glob("*.partial"))

    # annotated.mp4: decodes, same frame count and timestamps as the source, audio copied
    with av.open(str(out / "annotated.mp4")) as c:
        vs = c.streams.video[0]
        times = [float(f.pts * vs.time_base) for f in c.decode(vs)]
        has_audio = bool(c.streams.audio)
        assert (vs.width, vs.height) == (w + w % 2, h + h % 2)
    assert len(times) == n
    assert np.allclose(times, _source_times(path, kind), atol=2e-3)
    assert has_audio == src.info.has_audio == (name == "h264_audio")

    # masks.jsonl: RLE decodes (pycocotools) to the masks; PNG ids agree; MOT rows are the mask boxes
    lines = [json.loads(x) for x in (out / "masks.jsonl").read_text().splitlines()]
    assert [x["frame"] for x in lines] == list(range(n))
    pngs = sorted((out / "masks").glob("*.png"))
    assert [p.name for p in pngs] == [f"{i:05d}.png" for i in range(n)]
    mot = [list(map(float, r)) for r in csv.reader((out / "tracks.csv").open())]
    expected_mot = []
    for line, png in zip(lines, pngs, strict=True):
        im = Image.open(png)
        assert im.mode == "P"
        ids = np.asarray(im)
        assert ids.shape == (h, w) and set(np.unique(ids)) <= {0, 3, 7}
        for obj in line["objects"]:
            rle = dict(obj["rle"], counts=obj["rle"]["counts"].encode())
            m = mask_utils.decode(rle).astype(bool)
            assert m.shape == (h, w) and int(m.sum()) == obj["area"]
            assert np.all(m[ids == obj["id"]]), "a PNG pixel with this id lies outside the object's mask"
            others = [o for o in line["objects"] if o["id"] != obj["id"]]
            alone = m.copy()
            for o in others:
                alone &= ~mask_utils.decode(dict(o["rle"], counts=o["rle"]["counts"].encode())).astype(bool)
            assert np.all(ids[alone] == obj["id"])
            if obj["area"]:
                ys, xs = np.nonzero(m)
                box = [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
                assert obj["bbox"] == box
                cls = 1 if obj["id"] == 3 else 2  # tracks_labels.txt: disc, object
                expected_mot.append([line["frame"] + 1, obj["id"], *box, round(obj["score"], 4), cls, 1])
            else:
                assert obj["bbox"] is None
            assert obj["label"] == ("disc" if obj["id"] == 3 else None)
    assert len(mot) == len(expected_mot)
    assert (out / "tracks_labels.txt").read_text() == "disc\nobject\n"
    for row in mot:  # read as motmetrics does: MOTChallenge pixels count from 1
        row[2:4] = [row[2] - 1, row[3] - 1]
    for got, want in zip(mot, expected_mot, strict=True):
        assert got[:6] == want[:6] and abs(got[6] - want[6]) < 1e-3 and got[7:] == want[7:]
    # faststart: the MP4's index (moov) comes before its media data (mdat)
    boxes = mp4_top_level_boxes(out / "annotated.mp4")
    assert boxes.index("moov") < boxes.index("mdat"), boxes


def mp4_top_level_boxes(path: Path) -> list[str]:
    """The types of an MP4's top-level boxes, in file order (ISO BMFF: 32-bit size, type; size 1 = 64-bit)."""
    import struct

    out, data = [], path.read_bytes()
    pos = 0
    while pos + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        if size == 1:
            size = struct.unpack(">Q", data[pos + 8 : pos + 16])[0]
        out.append(kind.decode("latin-1"))
        if size < 8:
            break
        pos += size
    return out


def test_quick_prompt_and_other_decoders_agree(videos, tmp_path):
    path, _ = videos["h264_audio"]
    counts = {}
    for kind in ("pyav", "decord", "opencv"):
        out = tmp_path / kind
        rec = _run(out, f"source={kind}", f"source.path={path}", *PROMPTS.split(), "sink.annotated=false")
        counts[kind] = rec["frames"]
        assert (out / "masks.jsonl").exists() and not (out / "annotated.mp4").exists()
    assert counts == {"pyav": N, "decord": N, "opencv": N}


def test_sources_seek_to_the_same_frames(videos):
    path, _ = videos["h264_audio"]
    ref = [f.rgb for f in open_source("pyav", path).frames()]
    for kind in ("pyav", "decord", "opencv"):
        src = open_source(kind, path)
        got = list(src.frames(7, 10))
        assert [f.index for f in got] == [7, 8, 9]
        for f in got:
            # decoders may convert YUV to RGB slightly differently
            assert np.abs(f.rgb.astype(int) - ref[f.index].astype(int)).mean() < 3, kind


def test_rotation_metadata_is_honoured(tmp_path):
    frames = list(moving_shapes(4, 96, 64))
    path = write_video(tmp_path / "portrait.mp4", frames, rotation=-90, pix_fmt="yuv444p")
    src = open_source("pyav", path)
    assert (src.info.width, src.info.height) == (64, 96)
    got = next(iter(src.frames(0, 1))).rgb
    # -90 in the display matrix = show the picture turned 90 degrees clockwise
    assert got.shape == (96, 64, 3)
    assert np.abs(got.astype(int) - np.rot90(frames[0], k=3).astype(int)).mean() < 3
    out = tmp_path / "out"
    _run(out, f"source.path={path}", "prompts.box=[5,5,40,40]", "sink.png=false", "sink.mot=false")
    with av.open(str(out / "annotated.mp4")) as c:
        assert (c.streams.video[0].width, c.streams.video[0].height) == (64, 96)


def test_vfr_index_keeps_timestamps(videos):
    path, _ = videos["vfr"]
    assert _source_times(path, "pyav") == pytest.approx(
        [t / 1000 for t in [0, 40, 80, 200, 240, 300, 420, 460, 500, 540, 700, 740]]
    )


# ---- bad input: exit code 2, one line on stderr, nothing left that looks complete ----------------------


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    out = tmp_path / "out"
    cmd = [
        sys.executable,
        "-m",
        "tracker.apps.cli",
        f"output_dir={out}",
        "model.image_size=128",
        "model.random_weights=true",
        "progress=false",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def _assert_clean_failure(res: subprocess.CompletedProcess, tmp_path: Path, needle: str) -> None:
    assert res.returncode == 2, res.stderr
    lines = [x for x in res.stderr.splitlines() if x.strip()]
    errors = [x for x in lines if x.startswith("tracker: error:")]
    assert len(errors) == 1 and needle in errors[0], res.stderr
    assert "Traceback" not in res.stderr
    out = tmp_path / "out"
    left = {p.name for p in out.iterdir()} if out.exists() else set()
    assert not left & {"annotated.mp4", "masks", "masks.jsonl", "tracks.csv", "run.json"}, left
    assert not [x for x in left if x.endswith(".partial")], left


def _bad_files(root: Path, good: Path) -> dict[str, Path]:
    files = {}
    files["missing"] = root / "nope.mp4"
    (root / "empty.mp4").write_bytes(b"")
    files["empty"] = root / "empty.mp4"
    (root / "garbage.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    files["garbage"] = root / "garbage.mp4"
    data = good.read_bytes()
    (root / "truncated.mp4").write_bytes(data[: len(data) // 2])
    files["truncated"] = root / "truncated.mp4"
    with av.open(str(root / "audio.m4a"), "w") as c:
        encode_audio(c, c.add_stream("aac", rate=48000), np.zeros(48000, dtype=np.float32))
    files["audio_only"] = root / "audio.m4a"
    return files


@pytest.mark.parametrize(
    "case, needle",
    [
        ("missing", "does not exist"),
        ("empty", "is empty"),
        ("garbage", "cannot be opened"),
        ("truncated", "cannot be opened"),
        ("audio_only", "no video stream"),
    ],
)
def test_bad_video_files(videos, tmp_path, case, needle):
    path = _bad_files(tmp_path, videos["h264_audio"][0])[case]
    _assert_clean_failure(_cli(tmp_path, f"source.path={path}", *PROMPTS.split()), tmp_path, needle)


def test_truncated_mp4_with_index_first_is_refused(tmp_path):
    """An mp4 whose index (moov) comes first but whose data is cut: refused once the frames run out."""
    good = write_video(tmp_path / "fs.mp4", moving_shapes(24, 96, 64))
    fast = faststart_copy(good, tmp_path / "faststart.mp4")
    data = fast.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    _assert_clean_failure(_cli(tmp_path, f"source.path={cut}", *PROMPTS.split()), tmp_path, "truncated")


@pytest.mark.parametrize(
    "yaml_text, needle",
    [
        ("objects:\n  - {id: 1, prompts: [{frame: 99, box: [1, 1, 9, 9]}]}\n", "prompt frame 99 is out of range"),
        ("objects:\n  - {id: 1, prompts: [{frame: 0, box: [1, 1, 300, 9]}]}\n", "outside the 96x64 image"),
        ("objects:\n  - {id: 1, prompts: [{frame: 0, box: [30, 1, 9, 9]}]}\n", "is inverted"),
        ("objects:\n  - {id: 1, prompts: [{frame: 0, mask: {size: [4, 4], counts: [5, 3, 8]}}]}\n", "mask has shape"),
        (
            "objects:\n  - {id: 1, prompts: [{frame: 0, box: [1, 1, 9, 9]}]}\n"
            "  - {id: 1, prompts: [{frame: 0, box: [1, 1, 9, 9]}]}\n",
            "object id 1 appears twice",
        ),
        ("objects:\n  - {id: 1, prompts: [{frame: 0, points: [[5, 5, 3]]}]}\n", "point label 3"),
        ("objects:\n  - {id: 1, prompts: [{frame: 0}]}\n", "empty prompt"),
        ("objects: [\n", "is not valid YAML"),
    ],
)
def test_bad_prompts(videos, tmp_path, yaml_text, needle):
    p = tmp_path / "p.yaml"
    p.write_text(yaml_text)
    res = _cli(tmp_path, f"source.path={videos['h264_audio'][0]}", f"prompts.path={p}")
    _assert_clean_failure(res, tmp_path, needle)


def test_bad_checkpoint(videos, tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    res = _cli(tmp_path, f"source.path={videos['h264_audio'][0]}", *PROMPTS.split(), f"model.checkpoint={bad}")
    _assert_clean_failure(res, tmp_path, "cannot be read")


def test_help_lists_the_config_groups():
    res = subprocess.run(
        [sys.executable, "-m", "tracker.apps.cli", "--help"], capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0
    for group in ("model:", "source:", "prompts:", "sink:", "experiment: demo", "dataset: davis, sav"):
        assert group in res.stdout, res.stdout
    assert "toy" in res.stdout and "_post" not in res.stdout and "model_common" not in res.stdout
    assert len(res.stdout.splitlines()) < 90, res.stdout


def test_multirun_output_dir_gives_each_job_its_folder_and_paths_stay_relative_to_the_start(videos, tmp_path):
    """-m with output_dir=X: X/0, X/1; relative paths are the starting folder's, even with chdir=true."""
    a, b = videos["h264_audio"][0], videos["vp9"][0]
    for v in (a, b):
        (tmp_path / v.name).write_bytes(v.read_bytes())
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "tracker.apps.cli",
            "-m",
            f"source.path={a.name},{b.name}",
            "output_dir=runs/ab",
            "hydra.job.chdir=true",
            "model.image_size=128",
            "model.random_weights=true",
            "progress=false",
            "prompts.box=[10,10,40,40]",
            "sink.annotated=false",
            "sink.png=false",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    records = [json.loads((tmp_path / "runs" / "ab" / str(i) / "run.json").read_text()) for i in (0, 1)]
    assert [r["source"]["path"] for r in records] == [str(tmp_path / a.name), str(tmp_path / b.name)]


def test_multirun_sweeps_two_videos(videos, tmp_path):
    a, b = videos["h264_audio"][0], videos["vp9"][0]
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "tracker.apps.cli",
            "-m",
            f"source.path={a},{b}",
            "model.image_size=128",
            "model.random_weights=true",
            "progress=false",
            "prompts.box=[10,10,40,40]",
            "sink.annotated=false",
            "sink.png=false",
            f"hydra.sweep.dir={tmp_path}",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    runs = sorted(tmp_path.glob("*/run.json"))
    assert len(runs) == 2
    assert {json.loads(r.read_text())["source"]["path"] for r in runs} == {str(a), str(b)}


def test_a_mistyped_key_names_the_setting_meant(tmp_path):
    """Hydra says 'use +prompt.box' (which adds a key nothing reads); the fix is nearly always a typo."""
    from helpers import cli_main

    for typed, meant in [
        ("prompt.box=[1,2,3,4]", "did you mean prompts.box=[1,2,3,4]?"),
        ("sink.cocoo=true", "did you mean sink.coco=true?"),
        ("modle=toy", "did you mean model=toy?"),  # an option of a group names the group
        ("zzqqy=1", "'zzqqy' is not a setting: tracker --help lists them"),
    ]:
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = cli_main("experiment=demo", typed, f"output_dir={tmp_path / 'out'}")
        lines = err.getvalue().strip().splitlines()
        assert code == 2 and len(lines) == 1 and meant in lines[0] and "+" not in lines[0], lines
        assert not (tmp_path / "out").exists()


def test_each_sinks_settings_in_the_yaml_are_its_own_defaults():
    """A sink owns its settings (a record with defaults that checks itself); configs/sink/all.yaml repeats
    them for --help, and must say the same."""
    from dataclasses import fields

    from omegaconf import OmegaConf

    from tracker.io.sinks import SINKS

    sink = OmegaConf.to_container(compose_config([]).sink)
    owned = [k for k in SINKS.values() if k.settings is not None]
    assert owned, "no sink declares settings"
    for kind in owned:
        for f in fields(kind.settings):
            assert sink[f.name] == f.default, (kind.key, f.name)


@given(
    crf=st.one_of(st.integers(-5, 60), st.floats(allow_nan=True), st.booleans(), st.text(max_size=3), st.none()),
    preset=st.one_of(st.sampled_from(["veryfast", "slow", "Fast", ""]), st.integers(), st.none()),
    alpha=st.one_of(
        st.floats(allow_nan=True, allow_infinity=True), st.integers(-2, 2), st.booleans(), st.text(max_size=2)
    ),
)
@settings(max_examples=200, deadline=None)
def test_the_annotated_videos_settings_take_any_value_or_name_it(crf, preset, alpha):
    from tracker.io.sinks.video import X264_PRESETS, VideoSettings

    try:
        s = VideoSettings(crf=crf, preset=preset, alpha=alpha)
    except ValueError as e:
        assert str(e).startswith(("sink.crf=", "sink.preset=", "sink.alpha=")) and "\n" not in str(e)
        return
    assert 0 <= s.crf <= 51 and s.preset in X264_PRESETS and 0.0 <= s.alpha <= 1.0


def test_each_source_kinds_yaml_repeats_its_settings_defaults():
    from dataclasses import fields

    from omegaconf import OmegaConf

    from tracker.io.source import SOURCES

    owned = [k for k in SOURCES.values() if k.settings is not None]
    assert {k.key for k in owned} == {"pyav", "images", "camera"}
    for kind in owned:
        source = OmegaConf.to_container(compose_config([f"source={kind.key}"]).source)
        assert {f.name: f.default for f in fields(kind.settings)} == {
            f.name: source[f.name] for f in fields(kind.settings)
        }, kind.key


ANY = st.one_of(
    st.integers(-3, 20_000),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.text(max_size=4),
    st.none(),
)


@given(
    kind=st.sampled_from(["pyav", "images", "camera"]),
    values=st.dictionaries(
        st.sampled_from(["threads", "timeout", "fps", "device", "width", "height", "format"]), ANY, max_size=4
    ),
)
@settings(max_examples=300, deadline=None)
def test_a_source_kinds_settings_take_any_value_or_name_it(kind, values):
    from dataclasses import fields

    from tracker.io.source import SOURCES, source_settings

    names = {f.name for f in fields(SOURCES[kind].settings)}
    try:
        record = source_settings(kind, values)
    except ValueError as e:
        key = str(e).split("=", 1)[0]
        assert key.startswith("source.") and key[7:] in names and "\n" not in str(e)
        return
    for name in names & set(values):
        assert getattr(record, name) == values[name]
