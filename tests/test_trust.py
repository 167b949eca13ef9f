"""Trust boundaries: files found in OUT are data (never unpickled, never a link to write through), resume
survives a touched source and refuses a damaged one with one line, one bad object never aborts a run,
inputs are bounded, a failed live run leaves the earlier set, the studio and the Python API refuse bad
input with one line. Each test checks what is left on disk, that no planted payload ran (a marker file),
and that nothing outside OUT changed."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from fastapi.testclient import TestClient
from helpers import cli_main, compose_config
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import tracker
from tracker.apps.studio import _command, build_studio
from tracker.engine.spool import MAGIC, MaskSpool, SpoolError
from tracker.experiments.demo import demo_sequence, write_demo_clip
from tracker.files import write_atomic
from tracker.io.detections import read_detections
from tracker.io.prompts import PromptError
from tracker.run.errors import one_line
from tracker.run.transaction import OutputError, OutputTransaction
from tracker.studio.server import create_app

W, H, N = 160, 120, 40
TOKEN = "trust-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def tree_hashes(root: Path) -> dict[str, str]:
    """Every entry under ``root`` (links as their target text, not followed) -> a content hash."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in (*dirnames, *filenames):
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            if p.is_symlink():
                out[rel] = "link:" + os.readlink(p)
            elif p.is_file():
                out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
            else:
                out[rel] = "dir"
    return out


class Payload:
    """Unpickling this runs ``touch MARKER``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _cli(*args: str) -> subprocess.CompletedProcess:
    """``tracker ARGS`` through its real entry point, in this process (no interpreter start per case)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = cli_main("model=toy", "progress=false", "threads=1", *args)
    return subprocess.CompletedProcess(list(args), code, "", err.getvalue())


def one_error(res: subprocess.CompletedProcess, *needles: str) -> str:
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2 and len(lines) == 1 and lines[0].startswith("tracker: error: "), res.stderr
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


# ---- resume: the spool, links, a touched source, damaged files ----------------------------------------


@pytest.fixture(scope="module")
def killed(tmp_path_factory):
    """A run killed (SIGKILL) in its forward pass after a checkpoint, and the same run uninterrupted."""
    d = tmp_path_factory.mktemp("killed")
    clip = write_demo_clip(d / "clip.mp4", N, W, H, 0)
    seq = demo_sequence(N, W, H, 0)
    ys, xs = np.nonzero(seq.frame(8)[1] == 1)
    prompts = d / "p.yaml"
    box = [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]
    prompts.write_text(yaml.safe_dump({"objects": [{"id": 1, "prompts": [{"frame": 8, "box": box}]}]}))
    args = [f"source.path={clip}", f"prompts.path={prompts}", "resume_every=6", "propagation.reverse_chunk=4"]
    ref = d / "ref"
    assert _cli(*args, f"output_dir={ref}").returncode == 0
    out = d / "out"
    cmd = [sys.executable, "-m", "tracker.apps.cli", "model=toy", "progress=false", "threads=1", *args]
    proc = subprocess.Popen([*cmd, f"output_dir={out}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import torch

    deadline = time.monotonic() + 240
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                ck = torch.load(out / ".resume" / "checkpoint.pt", weights_only=True)
            except Exception:
                ck = None
            if ck is not None and ck["stage"] == "forward" and ck["emitted"] >= 12:
                break
            time.sleep(0.02)
    finally:
        proc.kill()
        proc.wait()
    assert (out / ".resume" / "checkpoint.pt").is_file() and not (out / "masks.jsonl").exists()
    return clip, args, ref, out


def _copy(killed, tmp_path) -> tuple[Path, list[str], Path, Path]:
    clip, args, ref, out = killed
    mine = tmp_path / "out"
    shutil.copytree(out, mine, symlinks=True)
    return clip, args, ref, mine


def test_a_pickle_planted_as_the_spool_never_runs(killed, tmp_path):
    clip, args, ref, out = _copy(killed, tmp_path)
    marker = tmp_path / "PWNED"
    spool = out / ".resume" / "spool.bin"
    spool.write_bytes(pickle.dumps(Payload(marker)) * 50)
    before = tree_hashes(out)
    res = _cli(*args, f"output_dir={out}", "resume=true")
    one_error(res, "spool")
    assert not marker.exists()
    assert tree_hashes(out) == before  # the checkpoint and the staged outputs are kept as they were


def test_a_spool_record_that_lies_about_its_size_is_refused(tmp_path):
    """Lengths and offsets are checked against the file before anything is allocated."""
    path = tmp_path / "spool.bin"
    spool = MaskSpool(str(path), size=(H, W))
    spool.put(3, [1], np.zeros((1, H, W), bool), np.array([0.9]))
    state = spool.state()
    spool.close()
    raw = bytearray(path.read_bytes())
    raw[len(MAGIC) + 12 : len(MAGIC) + 20] = (2**31 - 1).to_bytes(4, "little") * 2  # height, width
    path.write_bytes(bytes(raw))
    with pytest.raises(SpoolError, match="frame 3 is damaged"):
        MaskSpool(str(path), state, size=(H, W)).pop(3)
    with pytest.raises(SpoolError, match="not the one the checkpoint wrote"):
        MaskSpool(str(path), {**state, "length": state["length"] + 10}, size=(H, W))
    path.write_bytes(b"nonsense")
    with pytest.raises(SpoolError):
        MaskSpool(str(path), state, size=(H, W))


def test_links_planted_in_resume_state_are_refused(killed, tmp_path):
    clip, args, ref, out = _copy(killed, tmp_path)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    staged = out / ".resume" / "staging" / "masks.jsonl.partial"
    staged.unlink()
    staged.symlink_to(victim)
    before = tree_hashes(out)
    res = _cli(*args, f"output_dir={out}", "resume=true")
    one_error(res, "is a link")
    assert victim.read_text() == "precious\n" and tree_hashes(out) == before


def test_a_touched_source_resumes_and_a_changed_one_is_refused(killed, tmp_path):
    """touch (or a copy that changes the time) keeps the bytes: the run goes on; other bytes of the same
    size are refused with one line, and the checkpoint stays."""
    clip, args, ref, out = _copy(killed, tmp_path)
    st = clip.stat()
    original = clip.read_bytes()
    try:
        os.utime(clip, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
        res = _cli(*args, f"output_dir={out}", "resume=true")
        assert res.returncode == 0, res.stderr
        assert (out / "masks.jsonl").read_bytes() == (ref / "masks.jsonl").read_bytes()
        again = _copy(killed, tmp_path / "again")[3]
        data = bytearray(original)
        at = data.find(b"Lavf")  # the muxer's name in the metadata: other bytes, the same video
        assert at > 0
        data[at + 3] = ord("g")
        clip.write_bytes(bytes(data))
        before = tree_hashes(again)
        res = _cli(*args, f"output_dir={again}", "resume=true")
        one_error(res, "the source differs (its content")
        assert tree_hashes(again) == before
    finally:
        clip.write_bytes(original)
        os.utime(clip, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_a_damaged_checkpoint_is_one_line_and_the_folder_stays(killed, tmp_path):
    clip, args, ref, out = _copy(killed, tmp_path)
    ck = out / ".resume" / "checkpoint.pt"
    ck.write_bytes(ck.read_bytes()[:200])
    before = tree_hashes(out)
    res = _cli(*args, f"output_dir={out}", "resume=true")
    one_error(res, "cannot be read")
    assert tree_hashes(out) == before


def _set(ck: dict, where: str, value) -> None:
    keys = where.split(".")
    node = ck
    for k in keys[:-1]:
        node = node[int(k)] if isinstance(node, list) else node[k]
    node[keys[-1]] = value


@pytest.mark.parametrize(
    "where, value, needle",
    [
        ("threads", 2000, "threads=2000"),
        ("threads", 0, "threads=0"),
        ("threads", True, "threads=True"),
        ("stage", "nope", "stage='nope'"),
        ("emitted", -1, "emitted=-1"),
        ("emitted", 10**9, "emitted=1000000000"),
        ("sinks", "x", "sinks"),
        ("engine.position", 10**9, "engine position"),
        ("engine.groups", [], "are not the run's"),
        ("engine.groups.0.object_ids", ["x"], "object ids"),
        ("engine.groups.0.object_ids", [1, 1], "are not the run's"),
        ("engine.groups.0.prompt_frames", [10**6], "prompt frames"),
        ("engine.groups.0.warm_end", "soon", "warm_end"),
        ("engine.groups.0.fwd", {10**6: {}}, "fwd frames"),
    ],
)
def test_every_checkpoint_field_out_of_range_is_one_line_and_resume_is_kept(killed, tmp_path, where, value, needle):
    """What .resume/ holds is user input: each field out of range is refused before any frame, in one line
    naming it; .resume is neither removed nor rewritten."""
    import torch

    clip, args, ref, out = _copy(killed, tmp_path)
    path = out / ".resume" / "checkpoint.pt"
    ck = torch.load(path, weights_only=True)
    _set(ck, where, value)
    torch.save(ck, path)
    before = tree_hashes(out)
    one_error(_cli(*args, f"output_dir={out}", "resume=true"), "is damaged", needle)
    assert tree_hashes(out) == before


def _sink_field(key: str, value):
    def mutate(ck: dict, out: Path) -> None:
        next(p for p in ck["sinks"] if key in p)[key] = value

    return mutate


def _first_entry(name: str, value):
    def mutate(ck: dict, out: Path) -> None:
        group = ck["engine"]["groups"][0]
        entry = next(iter(group["fwd"].values()))
        entry[name] = value(entry[name])

    return mutate


def _every_entry(name: str, value):
    def mutate(ck: dict, out: Path) -> None:
        for group in ck["engine"]["groups"]:
            for k in ("cond", "fwd", "bwd"):
                for entry in group[k].values():
                    entry[name] = value(entry[name])

    return mutate


def _spool_record(score: float, copies: int = 1, frame: int = N - 1):
    """Append a record to the spool (as the engine writes them) and index it ``copies`` times."""

    def mutate(ck: dict, out: Path) -> None:
        spool = MaskSpool(str(out / ".resume" / "spool.bin"), ck["engine"]["spool"], (H, W))
        spool.put(frame, [1], np.zeros((1, H, W), bool), np.array([score]))
        state = spool.state()
        spool.close()
        state["index"][frame] = state["index"][frame] * copies
        ck["engine"]["spool"] = state

    return mutate


@pytest.mark.parametrize(
    "mutate, needle",
    [
        (_sink_field("bytes", 10**9), "bytes=1000000000"),
        (_sink_field("frames", 3), "frames=3"),
        (_sink_field("next", -1), "next=-1"),
        (_sink_field("segments", 10**6), "segments=1000000"),
        (_sink_field("last_pts", "x"), "last_pts='x'"),
        (_first_entry("obj_ptr", lambda t: t[:, :3]), "obj_ptr of frame"),
        (_first_entry("score", lambda t: t * float("nan")), "not finite"),
        (_every_entry("obj_ptr", lambda t: t[:, :3]), "obj_ptr of frame"),  # consistent, not the model's
        (_first_entry("maskmem", lambda t: "x"), "not a tensor"),
        (lambda ck, out: ck["engine"].update(maskmem_pos=ck["engine"]["maskmem_pos"][..., :2]), "maskmem_pos"),
        (_spool_record(float("nan")), "score nan"),
        (_spool_record(float("inf")), "score inf"),
        (_spool_record(0.5, copies=200_000), "overlap"),
        (_spool_record(0.5, frame=10**6), "frame 1000000"),
    ],
    ids=lambda x: x if isinstance(x, str) else "",
)
def test_every_resume_value_out_of_range_is_one_line_and_resume_is_kept(killed, tmp_path, mutate, needle):
    """Sink positions, the engine's tensors and the spool's records and index, as damaged as a hand can make
    them: refused before any frame, in one line; .resume is neither removed nor rewritten."""
    import torch

    clip, args, ref, out = _copy(killed, tmp_path)
    path = out / ".resume" / "checkpoint.pt"
    ck = torch.load(path, weights_only=True)
    mutate(ck, out)
    torch.save(ck, path)
    before = tree_hashes(out)
    one_error(_cli(*args, f"output_dir={out}", "resume=true"), needle)
    assert tree_hashes(out) == before


def test_sigterm_after_a_checkpoint_says_what_it_kept(killed, tmp_path):
    clip, args, ref, _ = killed
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "tracker.apps.cli", "model=toy", "progress=false", "threads=1", *args]
    proc = subprocess.Popen([*cmd, f"output_dir={out}"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while proc.poll() is None and not (out / ".resume" / "checkpoint.pt").is_file() and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    if proc.returncode == 0:
        pytest.skip("the run finished before the signal")
    assert ".resume is kept: resume=true continues this run" in err and "removed" not in err, err


# ---- links in OUT -----------------------------------------------------------------------------------


def test_write_atomic_replaces_a_link_and_never_writes_through_it(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    out = tmp_path / "out"
    out.mkdir()
    (out / "run.json").symlink_to(victim)
    write_atomic(out / "run.json", "{}\n")
    assert victim.read_text() == "precious\n" and not (out / "run.json").is_symlink()
    assert [p.name for p in out.iterdir()] == ["run.json"]  # no temp file left


def test_a_link_in_the_staged_set_is_never_committed(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    out = tmp_path / "out"
    with pytest.raises(OutputError, match="a run never commits links"), OutputTransaction(out) as tx:
        tx.path("masks.jsonl").write_text("{}\n")
        tx.path("tracks.csv").symlink_to(victim)
        tx.commit()
    assert victim.read_text() == "precious\n" and tree_hashes(out) == {}


def _earlier_set(out: Path) -> None:
    with OutputTransaction(out) as tx:
        tx.path("tracks.csv").write_text("earlier\n")
        tx.commit()


@pytest.mark.parametrize("staging", [".staging-4242", ".resume/staging"])
@pytest.mark.parametrize(
    "plan",
    [
        {"new": ["s/important.txt", "../../escaped.txt"], "old": []},
        {"new": [], "old": ["s/data.txt"]},
        {"new": [], "old": ["s"]},  # a plain name, but not one of the committed outputs
        {"new": ["."], "old": [".."]},
        "not json {",
    ],
)
def test_a_planted_commit_journal_never_writes_or_deletes_outside_the_outputs(tmp_path, staging, plan, caplog):
    """A journal found in OUT is replayed only if commit() could have written it: plain names of staged or
    committed entries, moved relative to folders opened without following links. Anything else is set
    aside with one warning and the run goes on; the next run is not blocked."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "important.txt").write_text("keep\n")
    (elsewhere / "data.txt").write_text("keep\n")
    out = tmp_path / "a" / "b" / "out"
    _earlier_set(out)
    (out / "s").symlink_to(elsewhere)
    dead = out / staging
    (dead / "s").mkdir(parents=True)
    (dead / "s" / "important.txt").write_text("planted\n")
    (dead / "escaped.txt").write_text("planted\n")
    (dead / ".commit").write_text(plan if isinstance(plan, str) else json.dumps(plan))
    before = tree_hashes(elsewhere)
    for _ in range(2):
        with OutputTransaction(out) as tx:
            tx.path("tracks.csv").write_text("new\n")
            tx.commit()
    assert tree_hashes(elsewhere) == before and (out / "s").is_symlink()
    assert not (tmp_path / "a" / "escaped.txt").exists() and not (tmp_path / "escaped.txt").exists()
    assert (out / "tracks.csv").read_text() == "new\n"
    aside = [p.name for p in out.iterdir() if p.name.startswith(".set-aside-")]
    assert len(aside) == 1 and not dead.exists()
    assert sum("set aside" in r.getMessage() for r in caplog.records) == 1


def test_a_planted_staging_link_is_removed_not_followed(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / ".commit").write_text(json.dumps({"new": ["x"], "old": []}))
    (elsewhere / "x").write_text("planted\n")
    out = tmp_path / "out"
    _earlier_set(out)
    (out / ".staging-77").symlink_to(elsewhere)
    (out / ".resume").symlink_to(elsewhere)
    with OutputTransaction(out) as tx:
        tx.path("tracks.csv").write_text("new\n")
        tx.commit()
    assert (elsewhere / "x").read_text() == "planted\n" and (elsewhere / ".commit").exists()
    assert not (out / "x").exists() and not (out / ".staging-77").exists()


# ---- discovery and detections: one object never aborts a run; bounded inputs --------------------------


def test_a_found_mask_that_vanishes_at_video_size_makes_no_object():
    from tracker.discovery import Discovery, DiscoverySettings
    from tracker.discovery.generator import Candidate

    class Speck:
        """One grid cell barely positive: non-empty on the 64 x 64 grid, empty once upsampled to 6 x 6."""

        def generate(self, feats, skip=None):
            low = np.full((64, 64), -8.0, np.float32)
            low[10, 10] = 0.01
            return [Candidate(low=low, box=(10, 10, 11, 11), pred_iou=0.99, stability=0.99)]

    d = Discovery(DiscoverySettings(every=1, confirm=0), (6, 6), next_id=1, generator=Speck(), seed_frame=0)
    assert d.admit(0, None, np.zeros((0, 64, 64), bool)) == []
    assert d.summary()["vanished"] == 1 and d.joined == []


def test_detections_are_bounded(tmp_path):
    rows = "".join(f"1,-1,{i % 100},{i // 100},5,5,1,-1,-1,-1\n" for i in range(300))
    mot = tmp_path / "det.txt"
    mot.write_text(rows)
    with pytest.raises(PromptError, match="300 boxes on frame 0, over limits.max_boxes_per_frame=256"):
        read_detections(mot, "mot")
    with pytest.raises(PromptError, match="over limits.max_detections_mb=0.001"):
        read_detections(mot, "mot", max_mb=0.001)
    deep = tmp_path / "deep.json"
    deep.write_text('{"images": [], "annotations": [], "x": ' + "[" * 60 + "]" * 60 + "}")
    with pytest.raises(PromptError, match="nested more than 32 levels"):
        read_detections(deep, "coco")
    deeper = tmp_path / "deeper.json"
    deeper.write_text("[" * 100000 + "]" * 100000)
    with pytest.raises(PromptError, match="nested too deeply|nested more than"):
        read_detections(deeper, "coco")


def test_too_many_objects_are_refused_before_decoding(tmp_path):
    clip = write_demo_clip(tmp_path / "c.mp4", 4, W, H, 0)
    prompts = tmp_path / "p.yaml"
    objects = [{"id": i, "prompts": [{"frame": 0, "box": [0, 0, 5, 5]}]} for i in range(1, 12)]
    prompts.write_text(yaml.safe_dump({"objects": objects}))
    out = tmp_path / "out"
    res = _cli(f"source.path={clip}", f"prompts.path={prompts}", f"output_dir={out}", "limits.max_objects=10")
    one_error(res, "11 objects, over limits.max_objects=10")
    assert not out.exists()


CELLS = st.one_of(st.integers(-5, 99), st.floats(allow_nan=True), st.text(max_size=3))
COCO_KEYS = st.sampled_from(["images", "annotations", "id", "image_id", "bbox", "track_id", "frame_index", "score"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    fmt=st.sampled_from(["mot", "coco", "yolo"]),
    text=st.one_of(
        st.text(max_size=400),
        st.lists(
            st.lists(st.one_of(st.integers(-5, 99), st.floats(allow_nan=True), st.text(max_size=3)), max_size=12),
            max_size=20,
        ).map(lambda rows: "\n".join(",".join(map(str, r)) for r in rows)),
        st.recursive(
            st.one_of(st.none(), st.integers(), st.floats(allow_nan=False), st.text(max_size=5)),
            lambda c: st.one_of(
                st.lists(c, max_size=4),
                st.dictionaries(
                    st.sampled_from(
                        ["images", "annotations", "id", "image_id", "bbox", "track_id", "frame_index", "score"]
                    ),
                    c,
                    max_size=5,
                ),
            ),
            max_leaves=30,
        ).map(json.dumps),
    ),
)
def test_any_detections_file_reads_or_is_one_line(tmp_path_factory, fmt, text):
    """Property: whatever a detections file holds, reading it returns boxes or raises PromptError (one
    line), never another exception."""
    d = tmp_path_factory.mktemp("det")
    if fmt == "yolo":
        (d / "00000.txt").write_text(text.replace(",", " "))
        path = d
    else:
        path = d / ("det.json" if fmt == "coco" else "det.txt")
        path.write_text(text)
    try:
        read_detections(path, fmt)
    except PromptError as e:
        assert "\n" not in str(e)


# ---- live runs --------------------------------------------------------------------------------------


def test_an_online_run_never_replaces_an_earlier_set(tmp_path):
    clip = write_demo_clip(tmp_path / "c.mp4", 6, W, H, 0)
    out = tmp_path / "out"
    assert _cli(f"source.path={clip}", "prompts.box=[10,10,60,60]", f"output_dir={out}").returncode == 0
    before = tree_hashes(out)
    res = _cli(f"source.path={clip}", "prompts.box=[10,10,60,60]", f"output_dir={out}", "mode=online")
    one_error(res, "holds the outputs of an earlier run")
    assert tree_hashes(out) == before


def test_a_failed_online_run_says_so_in_run_json(tmp_path):
    """A frame of another size mid-stream: the run fails; run.json says failed, why, and how it ended."""
    frames = tmp_path / "frames"
    frames.mkdir()
    seq = demo_sequence(8, W, H, 0)
    for t in range(8):
        rgb = seq.frame(t)[0]
        if t == 5:
            rgb = np.ascontiguousarray(rgb[:, : W // 2])
        Image.fromarray(rgb).save(frames / f"{t:05d}.png")
    out = tmp_path / "out"
    res = _cli(
        "source=images", f"source.path={frames}", "prompts.box=[10,10,60,60]", f"output_dir={out}", "mode=online"
    )
    one_error(res, "frame")
    run = json.loads((out / "run.json").read_text())
    assert run["state"] == "failed" and run["ended"] == "error" and "frame" in run["error"]
    assert run["frames_tracked"] == len((out / "masks.jsonl").read_text().splitlines()) == 5


# ---- the studio ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    d = tmp_path_factory.mktemp("studio")
    clip = write_demo_clip(d / "demo.mp4", 8, W, H, 0)
    cfg = compose_config(
        ["model=toy", f"source.path={clip}", f"output_dir={d / 'out'}", "progress=false"], name="studio"
    )
    s = build_studio(cfg)
    yield s, TestClient(create_app(s, TOKEN, max_body=16 * 1024)), d
    s.close()


@pytest.mark.parametrize("label", ["\ud800", "a\x00b", "tab\there", "x" * 101, "line\u2028sep"])
def test_studio_refuses_labels_no_output_can_carry(studio, label):
    _, client, _ = studio
    headers = {**AUTH, "Content-Type": "application/json"}
    r = client.put("/api/objects/3", headers=headers, content=json.dumps({"label": label}).encode())
    assert r.status_code == 422 and "label" in r.json()["detail"], r.text
    assert client.get("/api/objects", headers=AUTH).status_code == 200
    assert client.get("/api/prompts.yaml", headers=AUTH).status_code == 200


def test_studio_refuses_a_chunked_body_over_the_limit(studio):
    _, client, _ = studio

    def chunks():
        for _ in range(25):
            yield b"x" * 16384

    r = client.put("/api/objects/3", headers={**AUTH, "Content-Type": "application/json"}, content=chunks())
    assert r.status_code == 413


def test_studio_save_never_writes_through_a_link(studio, tmp_path):
    s, client, d = studio
    victim = tmp_path / "victim.yaml"
    victim.write_text("precious\n")
    client.put("/api/objects/1/prompts/0", headers=AUTH, json={"box": [10, 10, 60, 60]})
    target = d / "out" / "prompts.yaml"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)
    target.symlink_to(victim)
    assert client.post("/api/save", headers=AUTH).status_code == 200
    assert victim.read_text() == "precious\n" and not target.is_symlink()


BODY_KEYS = st.sampled_from(["label", "points", "box", "x"])
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(st.characters(codec=None), max_size=8)),
    lambda c: st.one_of(
        st.lists(c, max_size=4), st.dictionaries(st.sampled_from(["label", "points", "box", "x"]), c, max_size=3)
    ),
    max_leaves=12,
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    method=st.sampled_from(["PUT", "DELETE", "GET"]),
    path=st.sampled_from(
        ["/api/objects/{i}", "/api/objects/{i}/prompts/{f}", "/api/frames/{f}.jpg", "/api/track/{i}"]
        + ["/api/track/{i}/presence", "/api/track/{i}/files", "/api/track/{i}/files/{f}"]
    ),
    i=st.one_of(st.integers(-3, 300), st.text(max_size=4)),
    f=st.one_of(st.integers(-3, 40), st.text(max_size=4)),
    body=json_values,
)
def test_studio_api_never_answers_500_to_bad_input(studio, method, path, i, f, body):
    """Property: any id, frame and JSON body gets an answer below 500."""
    _, client, _ = studio
    from urllib.parse import quote

    url = path.format(i=quote(str(i), safe=""), f=quote(str(f), safe=""))
    data = json.dumps(body, allow_nan=True).encode("utf-8", "surrogatepass") if method == "PUT" else None
    r = client.request(method, url, headers={**AUTH, "Content-Type": "application/json"}, content=data)
    assert r.status_code < 500, (url, body, r.status_code, r.text)


def test_saves_command_carries_every_override_the_studio_started_with(tmp_path):
    overrides = ["model=toy", "model.image_size=128", "source.path=/v.mp4", "prompts.path=/p.yaml", "studio.port=0"]
    cmd = _command(None, "/v.mp4", tmp_path, tmp_path / "prompts.yaml", overrides)  # type: ignore[arg-type]
    assert cmd.startswith("tracker model=toy model.image_size=128 source.path=/v.mp4 prompts.path=")
    assert "studio.port" not in cmd and "/p.yaml" not in cmd


# ---- the Python API ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, error, needle",
    [
        ({"video": None}, TypeError, "video must be a path"),
        ({"prompts": 123}, TypeError, "prompts must be"),
        ({"model": 123}, TypeError, "model must be a name"),
        ({"model": "nope"}, ValueError, "model='nope' is unknown"),
        ({"discover_every": -1}, ValueError, "discover_every=-1 must be an integer >= 0"),
        ({"discover_every": 0.5}, TypeError, "discover_every must be an integer >= 0"),
        ({"confirm": True}, TypeError, "confirm must be an integer"),
        ({"backward": "no"}, TypeError, "backward must be True or False"),
        ({"source": "nope"}, ValueError, "source='nope' is unknown"),
        ({"reverse_chunks": 3}, TypeError, "unknown option 'reverse_chunks'"),
    ],
)
def test_track_checks_its_arguments(tmp_path, kwargs, error, needle):
    args = {"video": tmp_path / "v.mp4", "prompts": None, "model": "toy", **kwargs}
    with pytest.raises(error, match=needle):
        tracker.track(args.pop("video"), args.pop("prompts"), **args)


def test_load_model_and_run_check_their_arguments(tmp_path):
    with pytest.raises(ValueError, match="is a folder: give the checkpoint file"):
        tracker.load_model("toy", checkpoint=tmp_path)
    with pytest.raises(TypeError, match="name must be a model name"):
        tracker.load_model(3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="output_dir must be a folder"):
        tracker.run("v.mp4", None, 5, model="toy")  # type: ignore[arg-type]


def test_a_missing_extra_names_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "supervision", None)
    fm = tracker.FrameMasks(0, (1,), np.ones((1, 4, 4), bool), np.ones(1, np.float32))
    with pytest.raises(ModuleNotFoundError) as e:
        fm.to_supervision()
    assert one_line(e.value) == "supervision is not installed: pip install 'sam2-tracker[supervision]'"
    assert "sam2-tracker[studio]" in one_line(ModuleNotFoundError("No module named 'uvicorn'", name="uvicorn"))


def test_the_cli_names_the_fix_for_a_folder_as_checkpoint(tmp_path):
    clip = write_demo_clip(tmp_path / "c.mp4", 4, W, H, 0)
    res = _cli(
        f"source.path={clip}", "prompts.box=[1,1,9,9]", f"model.checkpoint={tmp_path}", f"output_dir={tmp_path / 'o'}"
    )
    one_error(res, "is a folder")


@pytest.mark.parametrize("value", ["", " ", "."])
def test_python_run_refuses_an_output_folder_that_is_not_its_own(tmp_path, monkeypatch, value):
    """tracker.run(video, prompts, "") used to run in the current folder and replace the user's files
    there; " " made a folder named by a space. One rule for every door, before any frame is decoded."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tracks.csv").write_text("mine\n")
    (tmp_path / "masks").mkdir()
    (tmp_path / "masks" / "keep.png").write_bytes(b"mine")
    before = tree_hashes(tmp_path)
    with pytest.raises(ValueError, match="output_dir '.*' is (not a folder path|the current folder)"):
        tracker.run(tmp_path / "missing.mp4", None, value, model="toy")
    assert tree_hashes(tmp_path) == before


def test_the_cli_refuses_the_current_folder_holding_the_users_files(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tracks.csv").write_text("mine\n")
    before = tree_hashes(tmp_path)
    assert cli_main("model=toy", "source.path=missing.mp4", "output_dir=.", "prompts.box=[1,1,5,5]") == 2
    err = capsys.readouterr().err
    assert "is the current folder" in err and err.count("tracker: error:") == 1, err
    assert tree_hashes(tmp_path) == before


def test_studio_exports_are_the_files_the_track_wrote_even_while_they_are_swapped(tmp_path):
    """A download is opened once without following links and checked on the open descriptor: flipping
    OUT/masks.jsonl between the file and a link to a secret never serves the secret, and a file put in its
    place (another Track's commit) is 410, not 200 with other content. Bounded: a fixed number of rounds."""
    import threading

    clip = write_demo_clip(tmp_path / "demo.mp4", 6, W, H, 0)
    out = tmp_path / "out"
    cfg = compose_config(["model=toy", f"source.path={clip}", f"output_dir={out}", "progress=false"], name="studio")
    s = build_studio(cfg)
    try:
        client = TestClient(create_app(s, TOKEN))
        client.put("/api/objects/1/prompts/0", headers=AUTH, json={"box": [10, 10, 60, 60]})
        job = client.post("/api/track", headers=AUTH).json()["job"]
        for _ in range(1200):
            if client.get(f"/api/track/{job}", headers=AUTH).json()["state"] != "running":
                break
            time.sleep(0.05)
        url = f"/api/track/{job}/files/masks.jsonl"
        real = (out / "masks.jsonl").read_bytes()
        assert client.get(url, headers=AUTH).content == real
        secret = tmp_path / "secret.txt"
        secret.write_text("not for the page\n")
        stop = threading.Event()

        def flip() -> None:
            target, kept = out / "masks.jsonl", out / "kept.jsonl"
            os.link(target, kept)  # the same inode, put back each round
            while not stop.is_set():
                link = out / "flip.tmp"
                link.unlink(missing_ok=True)
                link.symlink_to(secret)
                os.replace(link, target)
                os.link(kept, out / "back.tmp")
                os.replace(out / "back.tmp", target)

        flipper = threading.Thread(target=flip)
        flipper.start()
        try:
            codes = []
            for _ in range(300):
                r = client.get(url, headers=AUTH)
                codes.append(r.status_code)
                assert b"not for the page" not in r.content
                assert r.status_code != 200 or r.content == real
        finally:
            stop.set()
            flipper.join(10)
        assert set(codes) <= {200, 404, 410} and 200 in codes
        write_atomic(out / "masks.jsonl", b"another Track's masks\n")
        r = client.get(url, headers=AUTH)
        assert r.status_code == 410 and "replaced" in r.json()["detail"]
    finally:
        s.close()
    assert not s._work.exists()  # the studio's temp folder is gone after a clean stop


def test_a_full_temp_folder_slows_the_feature_cache_and_dead_runs_caches_are_removed(tmp_path, caplog):
    """Writes to /dev/full fail with ENOSPC as a full disk does: the cache stops keeping frames (they are
    encoded again) and says which folder is full. A folder left by a SIGKILLed run (its PID gone) is removed
    at the next start; a live process's is kept."""
    import torch

    from tracker.engine.features import FeatureCache, remove_dead_caches

    cache = FeatureCache()
    frame = {"backbone_fpn": [torch.ones(2, 3)], "vision_pos_enc": [torch.zeros(2, 3)]}
    cache.put(0, frame)
    (cache._dir / "1.bin").symlink_to("/dev/full")
    cache.put(1, frame)
    cache.put(2, frame)
    assert 0 in cache and 1 not in cache and 2 not in cache
    assert any(str(cache._dir.parent) in r.getMessage() and "TMPDIR" in r.getMessage() for r in caplog.records)
    assert cache.pop(0)["backbone_fpn"][0].equal(torch.ones(2, 3))
    cache.close()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / f"tracker-features-{dead.pid}-abc").mkdir()
    (tmp_path / f"tracker-features-{dead.pid}-abc" / "3.bin").write_bytes(b"x" * 100)
    (tmp_path / f"tracker-features-{os.getpid()}-def").mkdir()
    (tmp_path / "tracker-features-notapid-x").mkdir()
    assert remove_dead_caches(tmp_path) == [tmp_path / f"tracker-features-{dead.pid}-abc"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        f"tracker-features-{os.getpid()}-def",
        "tracker-features-notapid-x",
    ]
    temp = tempfile.gettempdir()
    assert one_line(
        OSError(28, "No space left on device", os.path.join(temp, "tracker-features-1-x", "3.bin"))
    ).startswith("no space left in the temp folder")
    # An output_dir that happens to be under the temp folder is the output's disk: pick another output_dir.
    staged = os.path.join(temp, "runs", "out", ".resume", "staging", "annotated.mp4.partial")
    assert one_line(OSError(28, "No space left on device", staged)).startswith("no space left on the device")
