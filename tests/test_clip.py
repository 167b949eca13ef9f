"""A quick trial: ``source.start/stop/stride/max_frames`` read part of a video; prompts and every output keep
the video's frame numbers, and the masks are those of the same frames given as a video of their own."""

from __future__ import annotations

import json

import av
import numpy as np
import pytest
import yaml
from helpers import cli_main
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

import tracker
from tracker.experiments.demo import demo_sequence, write_demo_clip
from tracker.io.clip import ClipSource
from tracker.io.source import open_source
from tracker.records import FrameRange

W, H, N = 160, 120, 40
START, STOP, STRIDE = 6, 34, 2  # the run's frames: 6, 8, ..., 32 (14 of them)
PICKED = list(range(START, STOP, STRIDE))


@given(
    start=st.integers(0, 60),
    span=st.one_of(st.none(), st.integers(1, 60)),
    stride=st.integers(1, 9),
    cap=st.one_of(st.none(), st.integers(1, 30)),
    n=st.one_of(st.none(), st.integers(0, 90)),
)
@settings(max_examples=300, deadline=None)
def test_a_frame_range_numbers_exactly_the_frames_it_reads(start, span, stride, cap, n):
    r = FrameRange(start, None if span is None else start + span, stride, cap)
    count = r.count(n)
    if n is None and r.stop is None:
        assert count == cap
        return
    end = r.stop if n is None else min(r.stop or n, n)
    read = list(range(start, end, stride))[:cap]
    assert count == len(read) and [r.video_frame(i) for i in range(count)] == read
    for f in range(0, (n or end) + stride + 1):
        i = r.run_frame(f, n)
        assert (i is not None) == (f in read) and (i is None or read[i] == f)
    assert r.next_after(count) == (read[-1] + 1 if read else 0)


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        ({"start": -1}, "source.start=-1"),
        ({"stride": 0}, "source.stride=0"),
        ({"start": True}, "source.start=True"),
        ({"start": 5, "stop": 5}, "source.stop=5 is not after source.start=5"),
        ({"max_frames": 0}, "source.max_frames=0"),
        ({"stop": 2.5}, "source.stop=2.5"),
    ],
)
def test_a_frame_range_refuses_what_reads_nothing(kwargs, needle):
    with pytest.raises(ValueError, match=needle.replace(".", r"\.")):
        FrameRange(**kwargs)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    d = tmp_path_factory.mktemp("clip")
    path = write_demo_clip(d / "clip.mp4", N, W, H, seed=3)
    # The same frames, decoded once, as PNGs: the reference video of just the frames the run reads.
    folder = d / "picked"
    folder.mkdir()
    frames = {f.index: f for f in open_source("pyav", path).frames()}
    for i, f in enumerate(PICKED):
        Image.fromarray(frames[f].rgb).save(folder / f"{i:05d}.png")
    return path, folder, frames


@pytest.mark.parametrize("kind", ["pyav", "images"])
def test_a_clip_source_gives_the_frames_it_picks_with_their_times(clip, kind, tmp_path):
    path, folder, frames = clip
    if kind == "images":  # a folder of the whole video's frames: stride > 1 opens only the frames read
        path = tmp_path / "all"
        path.mkdir()
        for f in frames.values():
            Image.fromarray(f.rgb).save(path / f"{f.index:05d}.png")
    video = open_source(kind, path)
    src = ClipSource(video, FrameRange(START, STOP, STRIDE))
    assert src.info.num_frames == len(PICKED) and src.info.fps == pytest.approx(video.info.fps / STRIDE)
    got = list(src.frames())
    assert [f.index for f in got] == list(range(len(PICKED)))
    for f, want in zip(got, PICKED):
        assert np.array_equal(f.rgb, frames[want].rgb) and f.time == pytest.approx(
            video.frames(want, want + 1).__next__().time
        )
    middle = list(src.frames(3, 5))  # the engine's seeks, in the run's numbers
    assert [f.index for f in middle] == [3, 4] and np.array_equal(middle[0].rgb, frames[PICKED[3]].rgb)


def _prompts(seq, frames: dict[int, int]) -> dict:
    """Boxes of objects 1 and 2 from the truth: object -> the video frame it is prompted on."""
    objects = []
    for oid, t in frames.items():
        ys, xs = np.nonzero(seq.frame(t)[1] == oid)
        box = [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]
        objects.append({"id": oid, "prompts": [{"frame": t, "box": box}]})
    return {"objects": objects}


def _run(*args: str) -> int:
    """The command, in this process: its exit code (its error line goes to stderr)."""
    return cli_main("model=toy", "progress=false", "threads=1", *args)


def test_a_run_over_part_of_a_video_is_the_run_over_those_frames_in_the_videos_numbers(clip, tmp_path):
    path, folder, _ = clip
    seq = demo_sequence(N, W, H, 3)
    on = {1: 6, 2: 20}  # video frames 6 and 20 are the run's frames 0 and 7
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(_prompts(seq, on)))
    shifted = _prompts(seq, on)  # the same boxes on the reference's frame numbers
    for o in shifted["objects"]:
        o["prompts"][0]["frame"] = PICKED.index(o["prompts"][0]["frame"])
    (tmp_path / "q.yaml").write_text(yaml.safe_dump(shifted))
    sinks = "sink={png:true,mot:true,coco:true,annotated:true}"
    part, ref = tmp_path / "part", tmp_path / "ref"
    r = _run(
        f"source.path={path}",
        f"prompts.path={tmp_path / 'p.yaml'}",
        f"output_dir={part}",
        sinks,
        f"source.start={START}",
        f"source.stop={STOP}",
        f"source.stride={STRIDE}",
    )
    assert r == 0
    r = _run(
        "source=images", f"source.path={folder}", f"prompts.path={tmp_path / 'q.yaml'}", f"output_dir={ref}", sinks
    )
    assert r == 0

    lines = [json.loads(x) for x in (part / "masks.jsonl").read_text().splitlines()]
    refs = [json.loads(x) for x in (ref / "masks.jsonl").read_text().splitlines()]
    assert [x["frame"] for x in lines] == PICKED
    assert [x["objects"] for x in lines] == [x["objects"] for x in refs]  # the same masks and scores
    assert sorted(p.name for p in (part / "masks").iterdir()) == [f"{f:05d}.png" for f in PICKED]
    for i, f in enumerate(PICKED):
        a = np.asarray(Image.open(part / "masks" / f"{f:05d}.png"))
        assert np.array_equal(a, np.asarray(Image.open(ref / "masks" / f"{i:05d}.png")))
    mot = [int(row.split(",")[0]) for row in (part / "tracks.csv").read_text().splitlines()]
    assert sorted(set(mot)) == [f + 1 for f in PICKED if f + 1 in set(mot)] and set(mot) <= {f + 1 for f in PICKED}
    coco = json.loads((part / "instances.json").read_text())
    assert [im["frame_index"] for im in coco["images"]] == PICKED
    with av.open(str(part / "annotated.mp4")) as c:
        times = [round(float(f.time), 4) for f in c.decode(video=0)]
    assert times == [round(f / 24, 4) for f in PICKED]  # the video's own times
    run = json.loads((part / "run.json").read_text())
    assert run["frames"] == len(PICKED) and run["source"]["video_frames"] == N
    assert run["source"]["frames"] == {"start": START, "stop": STOP, "stride": STRIDE, "max_frames": None}


def test_max_frames_stops_early_and_python_speaks_the_videos_numbers(clip, tmp_path):
    path, _, _ = clip
    seq = demo_sequence(N, W, H, 3)
    model = tracker.load_model("toy")
    got = list(tracker.track(path, _prompts(seq, {1: 10, 2: 13}), model=model, start=10, max_frames=5))
    assert [f.index for f, _ in got] == [m.frame_index for _, m in got] == [10, 11, 12, 13, 14]
    whole = {f.index: m for f, m in tracker.track(path, _prompts(seq, {1: 10, 2: 10}), model=model, start=10)}
    assert sorted(whole) == list(range(10, N))
    with pytest.raises(ValueError, match=r"stride=0 is not usable"):
        tracker.track(path, _prompts(seq, {1: 10, 2: 10}), model=model, stride=0)
    with pytest.raises(ValueError, match=r"object 2's prompt frame is frame 13, which the run does not read"):
        tracker.track(path, _prompts(seq, {1: 10, 2: 13}), model=model, start=10, stride=2)
    record = tracker.run(
        path,
        _prompts(seq, {1: 4, 2: 4}),
        tmp_path / "out",
        model="toy",
        progress=False,
        source={"start": 4, "max_frames": 3},
    )
    assert record["frames"] == 3
    frames = [json.loads(x)["frame"] for x in (tmp_path / "out" / "masks.jsonl").read_text().splitlines()]
    assert frames == [4, 5, 6]


@pytest.mark.parametrize(
    "extra, needle",
    [
        (["source.start=-2"], "source.start=-2 is not usable"),
        (["source.stride=0"], "source.stride=0 is not usable"),
        (["source.start=9", "source.stop=3"], "source.stop=3 is not after source.start=9"),
        (["source.start=500"], "source.start=500 is past the video's last frame (39)"),
        (["source.start=1", "source.stride=4"], "object 1's prompt frame is frame 6, which the run does not read"),
        (["source.max_frames=0"], "source.max_frames=0 is not usable"),
        (["mode=online", "source.start=3"], "an online run reads the stream as it comes"),
        (["prompts=auto", "prompts.frames=[8]", "source.start=7", "source.stride=3"], "prompts.frames is frame 8"),
    ],
)
def test_bad_frame_ranges_are_one_line_before_anything_is_written(clip, tmp_path, capfd, extra, needle):
    path, _, _ = clip
    seq = demo_sequence(N, W, H, 3)
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(_prompts(seq, {1: 6, 2: 6})))
    out = tmp_path / "out"
    capfd.readouterr()
    code = cli_main(
        "model=toy",
        f"source.path={path}",
        f"prompts.path={tmp_path / 'p.yaml'}",
        f"output_dir={out}",
        "progress=false",
        *extra,
    )
    lines = capfd.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and needle in lines[0], lines
    assert not out.exists() or not any(out.iterdir())


def test_detections_and_found_objects_follow_the_run(clip, tmp_path):
    """Boxes of a detections file on frames the run skips are left out: the objects start on the run's
    first frame with a box."""
    path, _, _ = clip
    seq = demo_sequence(N, W, H, 3)
    rows = []
    for t in range(N):
        ys, xs = np.nonzero(seq.frame(t)[1] == 1)
        rows.append(f"{t + 1},1,{xs.min()},{ys.min()},{xs.max() + 1 - xs.min()},{ys.max() + 1 - ys.min()},1,-1,-1,-1")
    det = tmp_path / "det.txt"
    det.write_text("\n".join(rows) + "\n")
    out = tmp_path / "det"
    r = _run(
        f"source.path={path}",
        "prompts=detections",
        f"prompts.path={det}",
        "prompts.format=mot",
        f"output_dir={out}",
        "source.start=7",
        "source.stride=3",
    )
    assert r == 0
    frames = [json.loads(x)["frame"] for x in (out / "masks.jsonl").read_text().splitlines()]
    assert frames == list(range(7, N, 3))
    ids = {o["id"] for x in (out / "masks.jsonl").read_text().splitlines() for o in json.loads(x)["objects"]}
    assert ids == {1}


@pytest.mark.parametrize("kind", ["pyav", "decord", "opencv", "images"])
def test_each_file_sources_yaml_repeats_the_ranges_defaults(kind):
    from helpers import compose_config
    from omegaconf import OmegaConf

    from tracker.run.checks import RANGE_KEYS

    source = OmegaConf.to_container(compose_config([f"source={kind}"]).source)
    assert FrameRange(**{k: source[k] for k in RANGE_KEYS}) == FrameRange()
