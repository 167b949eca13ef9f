"""tracker-studio's HTTP API through FastAPI's test client over the real studio (real configs, the toy
model, a real H.264 demo clip), and the real command serving over a socket."""

from __future__ import annotations

import faulthandler
import io
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from fastapi.testclient import TestClient
from helpers import compose_config
from PIL import Image

from tracker.apps import cli
from tracker.apps.studio import build_studio
from tracker.experiments.demo import demo_sequence, write_demo_clip
from tracker.io.prompts import parse_prompts
from tracker.io.source import open_source
from tracker.masks import decode_rle
from tracker.run.transaction import committed_set
from tracker.studio.server import create_app

TOKEN = "test-token-123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
N, W, H = 24, 320, 240


def _gt(t: int) -> np.ndarray:
    return demo_sequence(N, W, H, 0).frame(t)[1]


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def _inside(oid: int, t: int = 0, k: int = 3) -> list[list[float]]:
    """k positive clicks on pixels of object ``oid`` on frame t (around its centre)."""
    ys, xs = np.nonzero(_gt(t) == oid)
    cx, cy = xs.mean(), ys.mean()
    order = np.argsort((xs - cx) ** 2 + (ys - cy) ** 2)
    picks = order[:: max(1, len(order) // (3 * k))][:k]
    return [[float(xs[i]), float(ys[i]), 1] for i in picks]


def _box(oid: int, t: int = 0) -> list[float]:
    ys, xs = np.nonzero(_gt(t) == oid)
    return [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]


def _studio(clip: Path, out: Path, *extra: str):
    cfg = compose_config(
        ["model=toy", f"source.path={clip}", f"output_dir={out}", "progress=false", *extra], name="studio"
    )
    return build_studio(cfg)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return write_demo_clip(tmp_path_factory.mktemp("studio") / "demo.mp4", N, W, H, 0)


@pytest.fixture()
def env(clip, tmp_path):
    studio = _studio(clip, tmp_path / "out")
    client = TestClient(create_app(studio, TOKEN, max_body=16 * 1024))
    yield studio, client, tmp_path / "out"
    studio.close()


def _wait(client: TestClient, job: int, timeout: float = 120) -> dict:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        st = client.get(f"/api/track/{job}", headers=AUTH).json()
        if st["state"] != "running":
            return st
        time.sleep(0.05)
    raise AssertionError(f"Track {job} still running after {timeout}s")


def test_every_endpoint_needs_the_token(env):
    _, client, _ = env
    calls = [
        ("GET", "/"),
        ("GET", "/assets/studio.js"),
        ("GET", "/api/video"),
        ("GET", "/api/frames/0.jpg"),
        ("GET", "/api/objects"),
        ("POST", "/api/frames/0/find"),
        ("PUT", "/api/objects/1"),
        ("DELETE", "/api/objects/1"),
        ("GET", "/api/objects/1/prompts/0"),
        ("PUT", "/api/objects/1/prompts/0"),
        ("DELETE", "/api/objects/1/prompts/0"),
        ("GET", "/api/prompts.yaml"),
        ("POST", "/api/save"),
        ("POST", "/api/track"),
        ("GET", "/api/track/1"),
        ("GET", "/api/track/1/frames/0"),
        ("GET", "/nothing/here"),
    ]
    for method, path in calls:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}):
            r = client.request(method, path, headers=headers)
            assert r.status_code == 401, (method, path, headers, r.status_code)
        assert client.request(method, path + "?token=wrong").status_code == 401
    video = {"width": W, "height": H, "num_frames": N, "fps": 24.0, "warning": None}
    video["video_frames"] = {"start": 0, "stride": 1}  # page frame i is video frame start + i * stride
    assert client.get("/api/video", headers=AUTH).json() == video
    assert client.get(f"/api/video?token={TOKEN}").status_code == 200
    page = client.get(f"/?token={TOKEN}")
    assert page.status_code == 200 and "studio.js?token=" + TOKEN in page.text
    # the page loads nothing from outside this server
    assert not re.search(r"(src|href)=\"(https?:)?//", page.text)
    assert client.get("/assets/studio.js", headers=AUTH).headers["content-type"].startswith("text/javascript")
    assert client.get("/assets/..%2Fserver.py", headers=AUTH).status_code == 404


def test_frames_are_the_videos_frames(env, clip):
    _, client, _ = env
    source = open_source("pyav", clip)
    order = [0, 1, 2, 3, 17, 5, 23, 22, 0]  # stepping, jumping forward and back
    frames = {f.index: f.rgb for f in source.frames()}
    for i in order:
        r = client.get(f"/api/frames/{i}.jpg", headers=AUTH)
        assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
        img = np.asarray(Image.open(io.BytesIO(r.content)).convert("RGB")).astype(int)
        assert img.shape == (H, W, 3)
        assert np.abs(img - frames[i]).mean() < 8, i  # JPEG (q90) of a noisy texture
        other = frames[(i + 12) % N]
        assert np.abs(img - frames[i]).mean() < np.abs(img - other).mean()
    for bad in ("24", "-1", "999999999999"):
        assert client.get(f"/api/frames/{bad}.jpg", headers=AUTH).status_code == 404
    assert client.get("/api/frames/x.jpg", headers=AUTH).status_code == 422


def test_preview_of_clicks_and_box(env):
    studio, client, _ = env
    r = client.put("/api/objects/1/prompts/0", headers=AUTH, json={"points": _inside(1), "box": None, "label": "a"})
    assert r.status_code == 200, r.text
    body = r.json()
    mask = decode_rle(body["mask"])
    assert mask.shape == (H, W) and 0.0 <= body["score"] <= 1.0
    assert _iou(mask, _gt(0) == 1) > 0.8
    r = client.put("/api/objects/2/prompts/0", headers=AUTH, json={"points": [], "box": _box(2)})
    assert _iou(decode_rle(r.json()["mask"]), _gt(0) == 2) > 0.8
    # a negative click is kept and changes the mask
    pts = _inside(1) + [[_box(2)[0] + 2, _box(2)[1] + 2, 0]]
    r2 = client.put("/api/objects/1/prompts/0", headers=AUTH, json={"points": pts})
    assert r2.status_code == 200
    got = client.get("/api/objects/1/prompts/0", headers=AUTH).json()
    assert got["points"] == [[round(x, 2), round(y, 2), lab] for x, y, lab in pts] and got["mask"] == r2.json()["mask"]
    listed = client.get("/api/objects", headers=AUTH).json()["objects"]
    assert [(o["id"], o["label"], [p["frame"] for p in o["prompts"]]) for o in listed] == [
        (1, "a", [0]),
        (2, None, [0]),
    ]


@pytest.mark.parametrize(
    "path, body, needle",
    [
        ("/api/objects/1/prompts/0", {"points": [[400, 10, 1]]}, "outside the 320x240 image"),
        ("/api/objects/1/prompts/0", {"points": [[10, 10, 2]]}, "label 2 is unknown"),
        ("/api/objects/1/prompts/0", {"points": [[10, 10]]}, "points.0"),
        ("/api/objects/1/prompts/0", {"box": [50, 50, 10, 10]}, "inverted"),
        ("/api/objects/1/prompts/0", {"box": [0, 0, 10]}, "box"),
        ("/api/objects/1/prompts/0", {"points": [], "box": None}, "empty prompt"),
        ("/api/objects/1/prompts/0", {"points": [[10, 10, 1]], "mask": "x.png"}, "mask: Extra inputs"),
        ("/api/objects/1/prompts/0", {"points": "10,10"}, "points"),
        ("/api/objects/1/prompts/0", {"points": [["nan", 10, 1]]}, "not a finite number"),
        ("/api/objects/1/prompts/24", {"points": [[10, 10, 1]]}, "frame 24 is out of range"),
        ("/api/objects/1/prompts/-3", {"points": [[10, 10, 1]]}, "frame -3 is out of range"),
        ("/api/objects/0/prompts/0", {"points": [[10, 10, 1]]}, "object id 0 must be"),
        ("/api/objects/256/prompts/0", {"points": [[10, 10, 1]]}, "sink.png=false"),
        ("/api/objects/1", {"label": "x" * 101}, "at most 100"),
        ("/api/objects/1", {"name": "x"}, "name: Extra inputs"),
    ],
)
def test_invalid_input_is_422_with_one_line(env, path, body, needle):
    _, client, _ = env
    r = client.put(path, headers=AUTH, json=body)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert isinstance(detail, str) and "\n" not in detail and needle in detail, detail


def test_limits_and_missing_things(env):
    _, client, _ = env
    big = {"points": [[1.0, 1.0, 1]] * 2000}
    assert client.put("/api/objects/1/prompts/0", headers=AUTH, json=big).status_code == 413
    r = client.put("/api/objects/1/prompts/0", headers={**AUTH, "Content-Type": "application/json"}, content=b"{nope")
    assert r.status_code == 422 and isinstance(r.json()["detail"], str)
    assert client.get("/api/objects/1/prompts/0", headers=AUTH).status_code == 404
    assert client.delete("/api/objects/1/prompts/0", headers=AUTH).status_code == 404
    assert client.delete("/api/objects/5", headers=AUTH).status_code == 404
    assert client.get("/api/track/1", headers=AUTH).status_code == 404
    r = client.post("/api/track", headers=AUTH)
    assert r.status_code == 422 and "click on it" in r.json()["detail"]
    client.put("/api/objects/3/prompts/4", headers=AUTH, json={"box": _box(1, 4)})
    assert client.delete("/api/objects/3/prompts/4", headers=AUTH).status_code == 200
    assert client.get("/api/objects/3/prompts/4", headers=AUTH).status_code == 404
    assert client.delete("/api/objects/3", headers=AUTH).status_code == 200
    assert client.get("/api/objects", headers=AUTH).json() == {"objects": []}


def test_prompts_yaml_round_trip(env, clip, tmp_path):
    studio, client, out = env
    client.put("/api/objects/4", headers=AUTH, json={"label": "triangle"})
    client.put("/api/objects/4/prompts/0", headers=AUTH, json={"points": _inside(1)})
    client.put("/api/objects/4/prompts/6", headers=AUTH, json={"points": _inside(1, 6)[:1], "box": _box(1, 6)})
    client.put("/api/objects/9/prompts/3", headers=AUTH, json={"box": _box(2, 3)})
    client.put("/api/objects/12", headers=AUTH, json={"label": "no prompt yet"})
    text = client.get("/api/prompts.yaml", headers=AUTH).text
    spec = parse_prompts(yaml.safe_load(text))
    assert spec.labels == {4: "triangle", 9: None}  # an object without a prompt cannot be tracked: left out
    assert {(p.object_id, p.frame_index) for p in spec.prompts} == {(4, 0), (4, 6), (9, 3)}
    saved = client.post("/api/save", headers=AUTH).json()
    assert saved["path"] == str(out / "prompts.yaml") and (out / "prompts.yaml").read_text() == text
    assert (
        saved["command"].startswith("tracker source.path=")
        and f"prompts.path={out / 'prompts.yaml'}" in saved["command"]
    )
    # a studio started from that file has the same objects and prompts, and writes the same file
    copy = tmp_path / "start.yaml"
    copy.write_text(text)
    again = _studio(clip, tmp_path / "out2", f"prompts.path={copy}")
    try:
        c2 = TestClient(create_app(again, TOKEN))
        assert yaml.safe_load(c2.get("/api/prompts.yaml", headers=AUTH).text) == yaml.safe_load(text)
        first = client.get("/api/objects/4/prompts/6", headers=AUTH).json()
        assert c2.get("/api/objects/4/prompts/6", headers=AUTH).json() == first
    finally:
        again.close()


def test_track_correct_and_match_the_cli(env, tmp_path):
    studio, client, out = env
    client.put("/api/objects/1/prompts/0", headers=AUTH, json={"points": _inside(1), "label": "tri"})
    client.put("/api/objects/2/prompts/0", headers=AUTH, json={"box": _box(2)})
    job = client.post("/api/track", headers=AUTH).json()["job"]
    second = client.post("/api/track", headers=AUTH)
    assert second.status_code == 409 and "still running" in second.json()["detail"]
    st = _wait(client, job)
    assert st == {"job": job, "state": "done", "frames_done": N, "num_frames": N, "output_dir": str(out), "error": None}
    lines = [yaml.safe_load(x) for x in (out / "masks.jsonl").read_text().splitlines()]
    assert len(lines) == N
    for i in (0, 11, N - 1):
        got = client.get(f"/api/track/{job}/frames/{i}", headers=AUTH).json()
        assert got["frame"] == i
        assert [(o["id"], o["mask"]) for o in got["objects"]] == [(o["id"], o["rle"]) for o in lines[i]["objects"]]
    assert client.get(f"/api/track/{job}/frames/{N}", headers=AUTH).status_code == 422
    tracked = decode_rle(lines[12]["objects"][0]["rle"])
    assert tracked.any()

    # Correct object 1 on frame 12: the clicks refine the tracked mask, kept as the prompt's mask.
    ys, xs = np.nonzero(tracked)
    neg = [[float(xs.min()), float(ys.min()), 0]]
    inside = [float(xs[len(xs) // 2]), float(ys[len(ys) // 2]), 1]
    r = client.put("/api/objects/1/prompts/12", headers=AUTH, json={"points": [inside] + neg})
    assert r.status_code == 200
    corrected = decode_rle(r.json()["mask"])
    assert _iou(corrected, tracked) > 0.5  # it starts from the tracked mask, not from nothing
    p12 = client.get("/api/objects/1/prompts/12", headers=AUTH).json()
    assert p12["mask_prompt"] is True and p12["mask"] == r.json()["mask"]
    doc = yaml.safe_load(client.get("/api/prompts.yaml", headers=AUTH).text)
    entry = [p for o in doc["objects"] if o["id"] == 1 for p in o["prompts"] if p["frame"] == 12][0]
    assert np.array_equal(decode_rle(entry["mask"]), tracked) and len(entry["points"]) == 2

    job2 = client.post("/api/track", headers=AUTH).json()["job"]
    assert _wait(client, job2)["state"] == "done"
    studio_lines = (out / "masks.jsonl").read_bytes()
    on12 = decode_rle(yaml.safe_load(studio_lines.decode().splitlines()[12])["objects"][0]["rle"])
    assert np.array_equal(on12, corrected)  # the correction's preview is what the Track gives there

    # The CLI fed the studio's prompts.yaml writes the same masks.jsonl, on as many threads as the studio's
    # Track used: threads=auto counts idle cores, and two thread counts can round a score differently.
    cfg = compose_config(
        [
            "model=toy",
            f"source.path={studio.frames.source.path}",
            f"prompts.path={out / 'prompts.yaml'}",
            f"output_dir={tmp_path / 'cli'}",
            "progress=false",
            f"threads={torch.get_num_threads()}",
        ]
    )
    cli.run(cfg)
    assert (tmp_path / "cli" / "masks.jsonl").read_bytes() == studio_lines
    # the studio's outputs went through the run transaction: the manifest names them
    committed = committed_set(out)
    assert "masks.jsonl" in committed and "prompts.yaml" not in committed
    _check_exports(client, out, job, job2, tmp_path)


def _check_exports(client: TestClient, out: Path, old: int, job: int, tmp_path: Path) -> None:
    """Downloads: the latest Track's outputs, byte for byte from OUT, never through a link."""
    import zipfile

    assert client.get(f"/api/track/{old}/files", headers=AUTH).status_code == 410  # replaced by the newer one
    names = client.get(f"/api/track/{job}/files", headers=AUTH).json()["files"]
    assert names == ["annotated.mp4", "masks.zip", "masks.jsonl", "tracks.csv", "prompts.yaml"]
    for name in ("annotated.mp4", "masks.jsonl", "tracks.csv", "prompts.yaml"):
        r = client.get(f"/api/track/{job}/files/{name}", headers=AUTH)
        assert r.status_code == 200 and r.content == (out / name).read_bytes(), name
    z = zipfile.ZipFile(io.BytesIO(client.get(f"/api/track/{job}/files/masks.zip", headers=AUTH).content))
    pngs = sorted((out / "masks").iterdir())
    assert z.namelist() == [f"masks/{p.name}" for p in pngs] and len(pngs) == N
    assert all(z.read(f"masks/{p.name}") == p.read_bytes() for p in pngs)
    for bad in ("run.json", "instances.json", "..%2Frun.json", "masks"):
        assert client.get(f"/api/track/{job}/files/{bad}", headers=AUTH).status_code == 404, bad
    # Where each object is shown: runs of frames, as masks.jsonl has them
    lanes = client.get(f"/api/track/{job}/presence", headers=AUTH).json()["objects"]
    rows = [yaml.safe_load(x) for x in (out / "masks.jsonl").read_text().splitlines()]
    for oid, runs in lanes.items():
        shown = {t for a, b in runs for t in range(a, b + 1)}
        assert shown == {r["frame"] for r in rows for o in r["objects"] if o["id"] == int(oid) and o["area"]}
    # A link planted in OUT is not followed
    secret = tmp_path / "secret.txt"
    secret.write_text("not for the page")
    (out / "tracks.csv").unlink()
    (out / "tracks.csv").symlink_to(secret)
    assert client.get(f"/api/track/{job}/files/tracks.csv", headers=AUTH).status_code == 404
    assert "tracks.csv" not in client.get(f"/api/track/{job}/files", headers=AUTH).json()["files"]


def _studio_process(tmp_path: Path, *args: str) -> subprocess.Popen:
    exe = Path(sys.executable).with_name("tracker-studio")
    return subprocess.Popen([str(exe), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)


def test_command_serves_on_localhost_and_stops_on_sigterm(clip, tmp_path):
    import httpx

    proc = _studio_process(tmp_path, "model=toy", f"source.path={clip}", f"output_dir={tmp_path / 'o'}")
    try:
        line = proc.stdout.readline()
        m = re.fullmatch(r"studio: http://127\.0\.0\.1:(\d+)/\?token=([A-Za-z0-9_-]{20,})\n", line)
        assert m, line
        base, token = f"http://127.0.0.1:{m[1]}", m[2]
        assert httpx.get(f"{base}/api/video").status_code == 401
        r = httpx.get(f"{base}/api/video", headers={"Authorization": f"Bearer {token}"})
        assert r.json()["num_frames"] == N
        r = httpx.put(
            f"{base}/api/objects/1/prompts/0", headers={"Authorization": f"Bearer {token}"}, json={"box": _box(1)}
        )
        assert _iou(decode_rle(r.json()["mask"]), _gt(0) == 1) > 0.8
        # a Track still running at SIGTERM is abandoned: its outputs are not committed
        assert httpx.post(f"{base}/api/track", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM and "Traceback" not in err
    left = sorted(os.listdir(tmp_path / "o"))
    assert left == ["prompts.yaml"] or "masks.jsonl" in left and "run.json" in left, left  # all or nothing
    # a second start gets another token
    proc2 = _studio_process(tmp_path, "model=toy", f"source.path={clip}", f"output_dir={tmp_path / 'o'}")
    try:
        assert proc2.stdout.readline().split("token=")[1] != token
    finally:
        proc2.send_signal(signal.SIGINT)
        proc2.communicate(timeout=60)
    assert proc2.returncode == 130


class _Finaliser:
    def __del__(self) -> None:
        cli._stopping(signal.SIGINT, None)  # a signal landing in a finaliser: Python prints its exception


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_stop_whose_interrupt_was_swallowed_still_stops_the_studio(clip, tmp_path, capsys):
    # Once in a fresh clone, a SIGINT right after the URL was printed left the studio serving: its
    # KeyboardInterrupt was printed, not raised, and _stopping had set the signals to SIG_IGN.
    from tracker.apps.studio import serve

    cfg = compose_config(["model=toy", f"source.path={clip}", f"output_dir={tmp_path / 'o'}"], name="studio")
    handlers = {s: signal.getsignal(s) for s in cli._SIGNALS}
    # a studio that keeps serving fails the run instead of hanging it
    faulthandler.dump_traceback_later(120, exit=True, file=sys.__stderr__)
    try:
        _Finaliser()
        assert cli.stop_asked() == signal.SIGINT  # and here we are: the exception did not come out
        with pytest.raises(cli.Interrupted) as e:
            serve(cfg)
        assert e.value.signum == signal.SIGINT and "studio: http://127.0.0.1:" in capsys.readouterr().out
    finally:
        faulthandler.cancel_dump_traceback_later()
        cli._asked = None
        for s, h in handlers.items():
            signal.signal(s, h)


@pytest.mark.parametrize(
    "args, needle",
    [
        (["studio.port=70000"], "studio.port=70000"),
        (["studio.host=256.1.1.1"], "studio.host=256.1.1.1"),
        (["source.path=nothing.mp4"], "nothing.mp4"),
        (["prompts.path=nothing.yaml"], "nothing.yaml"),
        (["dataset=davis"], "one video"),
        (["prompts.path=o/prompts.yaml"], "lies in the outputs"),
    ],
)
def test_bad_start_is_one_line(clip, tmp_path, args, needle):
    # the prompts file Save would overwrite is an input: refused
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "prompts.yaml").write_text("objects: [{id: 1, prompts: [{frame: 0, box: [1, 1, 9, 9]}]}]\n")
    base = ["model=toy", f"output_dir={tmp_path / 'o'}"]
    if not any(a.startswith("source.path=") for a in args):
        base.append(f"source.path={clip}")
    proc = _studio_process(tmp_path, *base, *args)
    out, err = proc.communicate(timeout=120)
    lines = err.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("tracker-studio: error:"), err
    assert needle in lines[0] and "studio: http" not in out
    assert os.listdir(tmp_path / "o") == ["prompts.yaml"]


def test_closing_abandons_a_running_track(tmp_path):
    long_clip = write_demo_clip(tmp_path / "long.mp4", 120, W, H, 0)
    out = tmp_path / "out"
    studio = _studio(long_clip, out)
    client = TestClient(create_app(studio, TOKEN))
    client.put("/api/objects/1/prompts/0", headers=AUTH, json={"box": _box(1)})
    job = client.post("/api/track", headers=AUTH).json()["job"]
    time.sleep(0.5)
    studio.close()
    st = studio.job(job).status()
    assert st["state"] == "failed" and "cancelled" in st["error"] and st["frames_done"] < 120
    assert sorted(os.listdir(out)) == ["prompts.yaml"]  # nothing committed, no staging left


GEN = ["generator.points_per_side=16", "generator.pred_iou_thresh=0.88", "generator.stability_score_thresh=0.9"]


def test_find_objects_and_the_objects_a_track_found(clip, tmp_path):
    """Find objects on a frame: a new object for what no object shows there, nothing twice; a Track with
    discover.every lists the objects its run found under the run's ids (each with its first mask)."""
    studio = _studio(clip, tmp_path / "out", *GEN, "generator.nms_iou=0.3", "discover.every=4", "discover.confirm=4")
    client = TestClient(create_app(studio, TOKEN))
    try:
        assert client.post("/api/frames/0/find").status_code == 401
        client.put("/api/objects/1/prompts/0", headers=AUTH, json={"points": _inside(1)})
        r = client.post("/api/frames/0/find", headers=AUTH)
        assert r.status_code == 200 and r.json()["frame"] == 0
        new = r.json()["objects"]
        assert new and min(new) == 2
        masks = {
            oid: decode_rle(client.get(f"/api/objects/{oid}/prompts/0", headers=AUTH).json()["mask"]) for oid in new
        }
        assert max(_iou(m, _gt(0) == 2) for m in masks.values()) > 0.7
        assert all(_iou(m, _gt(0) == 1) < 0.1 for m in masks.values())  # object 1 is not found again
        assert client.post("/api/frames/0/find", headers=AUTH).json()["objects"] == []
        assert client.post(f"/api/frames/{N}/find", headers=AUTH).status_code == 422
        listed = {o["id"]: o for o in client.get("/api/objects", headers=AUTH).json()["objects"]}
        assert listed[new[0]]["prompts"] == [{"frame": 0, "points": [], "box": None, "mask": True}]

        # Only object 1 given: the Track's run finds object 2 on frame 0 and the studio lists it as 2.
        for oid in new:
            client.delete(f"/api/objects/{oid}", headers=AUTH)
        job = client.post("/api/track", headers=AUTH).json()["job"]
        assert _wait(client, job)["state"] == "done"
        run = yaml.safe_load((tmp_path / "out" / "run.json").read_text())
        kept = [j for j in run["discovery"]["joined"] if j["kept"]]
        assert kept and kept[0]["id"] == 2
        listed = {o["id"]: o for o in client.get("/api/objects", headers=AUTH).json()["objects"]}
        assert set(listed) == {1, *(j["id"] for j in kept)}
        assert listed[2]["prompts"][0]["frame"] == kept[0]["frame"]
    finally:
        studio.close()


def test_prompts_auto_finds_the_objects_before_the_page_opens(clip, tmp_path):
    studio = _studio(clip, tmp_path / "out", "prompts=auto", *GEN, "generator.nms_iou=0.3")
    try:
        objects = studio.list_objects()
        assert len(objects) >= 2 and all(o["prompts"][0]["frame"] == 0 and o["prompts"][0]["mask"] for o in objects)
        doc = studio.prompts_document()  # what Track and Save write: mask prompts on frame 0
        assert {o["id"] for o in doc["objects"]} == {o["id"] for o in objects}
    finally:
        studio.close()


def test_the_page_is_told_when_the_toy_model_meets_another_video(tmp_path):
    from fastapi.testclient import TestClient
    from helpers import moving_shapes, write_video

    other = write_video(tmp_path / "other.mp4", moving_shapes(4, 96, 64))
    s = _studio(other, tmp_path / "out")
    try:
        client = TestClient(create_app(s, TOKEN))
        warning = client.get("/api/video", headers=AUTH).json()["warning"]
        assert warning.startswith("model=toy on 'other.mp4': the toy model has only seen")
    finally:
        s.close()


def test_a_studio_over_part_of_the_video_shows_its_frames_and_saves_the_videos_numbers(clip, tmp_path):
    """source.start=4 source.stride=2: the page's frame i is the video's frame 4 + 2i; prompts.yaml and the
    Track's files speak the video's numbers, the Track's masks come back under the page's."""
    out = tmp_path / "out"
    studio = _studio(clip, out, "source.start=4", "source.stride=2")
    try:
        client = TestClient(create_app(studio, TOKEN))
        video = client.get("/api/video", headers=AUTH).json()
        assert video["num_frames"] == 10 and video["video_frames"] == {"start": 4, "stride": 2}
        page3 = client.get("/api/frames/3.jpg", headers=AUTH)
        shown = np.asarray(Image.open(io.BytesIO(page3.content)).convert("RGB"), dtype=np.float32)
        video_frames = {f.index: f.rgb.astype(np.float32) for f in open_source("pyav", clip).frames()}
        dist = {t: float(np.abs(shown - rgb).mean()) for t, rgb in video_frames.items()}
        assert min(dist, key=dist.get) == 10  # the video's frame 10 (as JPEG), not its frame 3
        client.put("/api/objects/1/prompts/0", headers=AUTH, json={"box": _box(1, 4)})
        client.put("/api/objects/2/prompts/3", headers=AUTH, json={"box": _box(2, 10)})
        spec = parse_prompts(yaml.safe_load(client.get("/api/prompts.yaml", headers=AUTH).text))
        assert {(p.object_id, p.frame_index) for p in spec.prompts} == {(1, 4), (2, 10)}
        job = client.post("/api/track", headers=AUTH).json()["job"]
        assert _wait(client, job)["state"] == "done"
        lines = [yaml.safe_load(x) for x in (out / "masks.jsonl").read_text().splitlines()]
        assert [x["frame"] for x in lines] == list(range(4, N, 2))
        got = client.get(f"/api/track/{job}/frames/3", headers=AUTH).json()
        assert got["frame"] == 3 and [o["mask"] for o in got["objects"]] == [o["rle"] for o in lines[3]["objects"]]
        assert _iou(decode_rle(lines[3]["objects"][1]["rle"]), _gt(10) == 2) > 0.5
    finally:
        studio.close()
