"""The studio's page in a real headless Chromium (Debian's package, driven by Playwright): click an
object and see its preview, box a second one, Track, scrub to the last frame and see both masks."""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tracker.experiments.demo import demo_sequence, write_demo_clip

N, W, H = 24, 320, 240
DOCS = Path(__file__).resolve().parents[1] / "docs"


def _chromium() -> str:
    path = os.environ.get("TRACKER_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed: .ci/run installs Debian's chromium package")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return path


def _gt(t: int, seed: int = 0) -> np.ndarray:
    return demo_sequence(N, W, H, seed).frame(t)[1]


def _painted(page, oid: int) -> np.ndarray:
    """The mask the page draws for object ``oid`` now (the page exposes it: its colours adapt to the frame)."""
    drawn = page.evaluate("(id) => window.studio.drawn(id)", oid)
    return np.array(drawn, dtype=bool).reshape(H, W) if drawn else np.zeros((H, W), dtype=bool)


def _open(browser, url: str, errors: list[str]):
    """A page of the studio at ``url``, ready (its objects and first frame shown); page errors go to ``errors``."""
    page = browser.new_page(viewport={"width": 1280, "height": 760})
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)
    page.wait_for_selector("body[data-ready='1']", timeout=30_000)
    return page


def _contrast(a, b) -> float:
    """WCAG 2 contrast ratio of two sRGB colours."""

    def lum(c) -> float:
        v = np.asarray(c, dtype=float) / 255
        v = np.where(v <= 0.03928, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)
        return float(v @ [0.2126, 0.7152, 0.0722])

    hi, lo = sorted((lum(a), lum(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


@contextlib.contextmanager
def _serve(tmp_path: Path, *args: str, seed: int = 0):
    """The real ``tracker-studio`` command on a demo clip: yields (its URL, its output folder)."""
    clip = write_demo_clip(tmp_path / "demo.mp4", N, W, H, seed)
    exe = Path(sys.executable).with_name("tracker-studio")
    proc = subprocess.Popen(
        [str(exe), "model=toy", f"source.path={clip}", f"output_dir={tmp_path / 'out'}", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline()
    try:
        m = re.match(r"studio: (http://127\.0\.0\.1:\d+/\?token=\S+)", line)
        assert m, line + proc.stderr.read() if proc.poll() is not None else line
        yield m[1], tmp_path / "out"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)


@pytest.fixture()
def studio_url(tmp_path):
    with _serve(tmp_path) as served:
        yield served


def test_click_box_track_scrub_in_chromium(studio_url, tmp_path):
    from playwright.sync_api import sync_playwright

    url, out = studio_url
    errors: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=_chromium(), args=["--no-sandbox"])
        try:
            page = _open(browser, url, errors)
            stage = page.locator("#marks").bounding_box()
            sx, sy = stage["width"] / W, stage["height"] / H

            def at(x: float, y: float) -> tuple[float, float]:
                return stage["x"] + x * sx, stage["y"] + y * sy

            # Object 1: clicks inside it; the first one already paints a preview.
            gt1 = _gt(0) == 1
            ys, xs = np.nonzero(gt1)
            cx, cy = xs.mean(), ys.mean()
            order = np.argsort((xs - cx) ** 2 + (ys - cy) ** 2)
            clicks = [(xs[i], ys[i]) for i in order[:: len(order) // 9][:3]]
            page.mouse.click(*at(*clicks[0]))
            page.wait_for_function("document.getElementById('status').textContent.includes('preview')")
            assert _painted(page, 1).sum() > 0
            page.wait_for_timeout(200)
            first = page.evaluate("window.studio.colors()")["1"]
            for x, y in clicks[1:]:
                page.mouse.click(*at(x, y))
                page.wait_for_timeout(300)
            page.wait_for_function("document.querySelector('#objects li .frames').textContent === 'f 0'")
            assert _iou(_painted(page, 1), gt1) > 0.8
            assert page.evaluate("window.studio.colors()")["1"] == first  # chosen once, kept across clicks

            # Object 2: Add object, then a box drag around it.
            page.click("#add")
            page.wait_for_selector("#objects li[data-id='2'].selected")
            gt2 = _gt(0) == 2
            ys, xs = np.nonzero(gt2)
            page.mouse.move(*at(xs.min() - 1, ys.min() - 1))
            page.mouse.down()
            page.mouse.move(*at((xs.min() + xs.max()) / 2, (ys.min() + ys.max()) / 2), steps=4)
            page.mouse.move(*at(xs.max() + 1, ys.max() + 1), steps=4)
            page.mouse.up()
            page.wait_for_function("document.getElementById('status').textContent.includes('object 2')")
            assert _iou(_painted(page, 2), gt2) > 0.8
            assert _iou(_painted(page, 1), gt1) > 0.8  # the first object's preview stays
            # colours that tell the objects apart, and each apart from what lies under its mask
            colors = {int(k): np.array(v) for k, v in page.evaluate("window.studio.colors()").items()}
            assert np.abs(colors[1] - colors[2]).sum() > 150, colors
            for oid, c in colors.items():  # legible on the page and in the timeline's lanes (WCAG 3:1)
                for page_colour in ((0x1D, 0x1F, 0x21), (0x26, 0x29, 0x2C)):
                    assert _contrast(c, page_colour) >= 3, (oid, c)
            frame0 = demo_sequence(N, W, H, 0).frame(0)[0].astype(int)
            for oid, gt in ((1, gt1), (2, gt2)):
                under = frame0[gt].mean(axis=0)
                assert np.abs(colors[oid] - under).sum() > 150, (oid, colors[oid], under)

            # Track, then scrub to the last frame: both tracked masks overlay it.
            page.click("#track")
            page.wait_for_selector("body[data-track-state]", timeout=120_000)
            assert page.get_attribute("body", "data-track-state") == "done", page.text_content("#track-state")
            page.focus("#scrubber")
            page.keyboard.press("End")
            page.wait_for_selector(f"body[data-shown='{N - 1}']", timeout=30_000)
            assert page.input_value("[data-testid=frame-input]") == str(N - 1)
            assert page.text_content("#frame-count") == f"of {N} (0–{N - 1})"
            last = _gt(N - 1)
            assert _iou(_painted(page, 1), last == 1) > 0.6
            assert _iou(_painted(page, 2), last == 2) > 0.6
            # A frame typed in the box: Enter shows it and hands the keys back; Space and Home work even
            # while the box has focus.
            page.fill("[data-testid=frame-input]", "5")
            page.keyboard.press("Enter")
            page.wait_for_selector("body[data-shown='5']", timeout=30_000)
            page.keyboard.press("ArrowRight")
            page.wait_for_selector("body[data-shown='6']", timeout=30_000)
            page.focus("[data-testid=frame-input]")
            page.keyboard.press("Home")
            page.wait_for_selector("body[data-shown='0']", timeout=30_000)
            page.keyboard.press(" ")
            assert page.evaluate("window.studio.state().playing") is True
            page.keyboard.press(" ")
            assert page.evaluate("window.studio.state().playing") is False
            page.keyboard.press("End")
            page.wait_for_selector(f"body[data-shown='{N - 1}']", timeout=30_000)
            shot = tmp_path / "studio.png"
            page.screenshot(path=str(shot))
            if os.environ.get("TRACKER_UPDATE_DOCS"):
                DOCS.mkdir(exist_ok=True)
                shutil.copy(shot, DOCS / "studio.png")
        finally:
            browser.close()
    assert not errors, errors
    assert (out / "masks.jsonl").read_text().count("\n") == N and (out / "prompts.yaml").is_file()


def test_find_objects_in_chromium(tmp_path):
    """ "Find objects" on a page with no objects: the generator's masks become objects, listed and painted."""
    from playwright.sync_api import sync_playwright

    gen = ["generator.points_per_side=16", "generator.pred_iou_thresh=0.88", "generator.stability_score_thresh=0.9"]
    errors: list[str] = []
    with _serve(tmp_path, *gen) as (url, _), sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=_chromium(), args=["--no-sandbox"])
        try:
            page = _open(browser, url, errors)
            assert page.locator("#objects li").count() == 0
            page.click("#find")
            page.wait_for_function("document.getElementById('status').textContent.includes('found in')")
            ids = [int(i) for i in page.eval_on_selector_all("#objects li", "els => els.map((e) => e.dataset.id)")]
            assert len(ids) >= 2, page.text_content("#status")
            for k in (1, 2):
                assert max(_iou(_painted(page, oid), _gt(0) == k) for oid in ids) > 0.7, k
            # every object it made is one a person can see: a mask of one piece, not a few pixels
            for oid in ids:
                assert _painted(page, oid).sum() >= 16, oid
        finally:
            browser.close()
    assert not errors, errors


def test_part_of_a_video_says_each_frames_number_in_the_video(tmp_path):
    """source.start=4 source.stride=2: the page shows the 10 frames a Track reads, and which video frame each is."""
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    with _serve(tmp_path, "source.start=4", "source.stride=2") as (url, _), sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=_chromium(), args=["--no-sandbox"])
        try:
            page = _open(browser, url, errors)
            assert page.text_content("#frame-count") == "of 10 (0–9)"
            assert page.text_content("[data-testid=video-frame]") == "video frame 4"
            page.keyboard.press("End")
            page.wait_for_function("document.body.dataset.shown === '9'")
            assert page.text_content("[data-testid=video-frame]") == "video frame 22"
        finally:
            browser.close()
    assert not errors, errors


ABSENT_SEED = 26  # a demo world whose object 1 leaves the frame on frames 11-20 and comes back


def _shot(page, tmp_path: Path, name: str) -> None:
    """A screenshot of a state; TRACKER_UPDATE_DOCS=1 keeps it in docs/ (the README shows them)."""
    shot = tmp_path / name
    page.screenshot(path=str(shot))
    if os.environ.get("TRACKER_UPDATE_DOCS"):
        shutil.copy(shot, DOCS / name)


def test_undo_timeline_export_play_in_chromium(tmp_path):
    """Three clicks and Ctrl+Z; the slider's arrow keys; a Track whose timeline shows the prompt frame and
    the gap where object 1 is out of the frame; the export links; play and pause; hide; the shortcuts."""
    import zipfile

    from playwright.sync_api import sync_playwright

    gt = [_gt(t, ABSENT_SEED) for t in range(N)]
    assert not (gt[15] == 1).any() and (gt[0] == 1).any()
    errors: list[str] = []
    with _serve(tmp_path, "sink.coco=true", seed=ABSENT_SEED) as (url, out), sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=_chromium(), args=["--no-sandbox"])
        try:
            page = _open(browser, url, errors)
            assert page.is_visible("[data-testid=first-hint]")  # what to do first, on an empty list
            _shot(page, tmp_path, "studio_first_use.png")
            box = page.locator("[data-testid=stage]").bounding_box()

            def at(x: float, y: float) -> tuple[float, float]:
                return box["x"] + x * box["width"] / W, box["y"] + y * box["height"] / H

            def points() -> int:
                r = page.request.get(f"{url.split('?')[0]}api/objects/1/prompts/0?{url.split('?')[1]}")
                return len(r.json()["points"])

            ys, xs = np.nonzero(gt[0] == 1)
            order = np.argsort((xs - xs.mean()) ** 2 + (ys - ys.mean()) ** 2)
            previews = []
            for k, i in enumerate(order[:: len(order) // 9][:3]):
                page.mouse.click(*at(xs[i], ys[i]))
                page.wait_for_function(f"window.studio.state().undo === {k + 1}")
                previews.append(_painted(page, 1))
            assert points() == 3 and not page.is_visible("[data-testid=first-hint]")
            page.keyboard.press("Control+z")
            page.wait_for_function("window.studio.state().undo === 2 && window.studio.state().redo === 1")
            assert points() == 2 and np.array_equal(_painted(page, 1), previews[1])  # the preview is back
            page.click("[data-testid=redo]")
            page.wait_for_function("window.studio.state().redo === 0")
            assert points() == 3 and np.array_equal(_painted(page, 1), previews[2])
            page.keyboard.press("Control+z")
            page.wait_for_function("window.studio.state().undo === 2")

            # The slider focused: one arrow press, one frame.
            page.focus("[data-testid=scrubber]")
            page.keyboard.press("ArrowRight")
            page.wait_for_selector("body[data-shown='1']")
            page.wait_for_timeout(300)
            assert page.evaluate("window.studio.state().frame") == 1
            assert page.input_value("[data-testid=frame-input]") == "1"
            page.fill("[data-testid=frame-input]", "0")
            page.press("[data-testid=frame-input]", "Enter")
            page.wait_for_selector("body[data-shown='0']")

            # Track: a lane per object, its prompt frame marked, a gap where it is out of the frame.
            page.click("[data-testid=track]")
            page.wait_for_selector("body[data-track-state]", timeout=120_000)
            assert page.get_attribute("body", "data-track-state") == "done", page.text_content("#track-state")
            lane = page.locator("[data-testid=lane-1]")
            assert lane.locator(".prompt-mark").get_attribute("data-frame") == "0"
            runs = [
                (int(e.get_attribute("data-first")), int(e.get_attribute("data-last")))
                for e in lane.locator(".present").all()
            ]
            assert runs and runs[0][0] == 0 and not any(a <= 15 <= b for a, b in runs), runs
            _shot(page, tmp_path, "studio_timeline.png")
            lane_box = lane.bounding_box()
            page.mouse.click(lane_box["x"] + lane_box["width"] * (8.5 / N), lane_box["y"] + 4)  # a click on the lane
            page.wait_for_selector("body[data-shown='8']")

            # Export links: the files as OUT has them.
            for testid, name in (("export-video", "annotated.mp4"), ("export-coco", "instances.json")):
                href = page.get_attribute(f"[data-testid={testid}]", "href")
                assert page.request.get(url.split("/?")[0] + href).body() == (out / name).read_bytes(), name
            href = page.get_attribute("[data-testid=export-masks]", "href")
            with zipfile.ZipFile(io.BytesIO(page.request.get(url.split("/?")[0] + href).body())) as z:
                assert all(z.read(f"masks/{p.name}") == p.read_bytes() for p in (out / "masks").iterdir())
                assert len(z.namelist()) == N

            # Play: frames advance at about the source's rate (never faster), Space pauses.
            page.focus("body")
            page.keyboard.press("Space")
            page.wait_for_selector("body[data-playing='1']")
            t0 = page.evaluate("performance.now()")
            page.wait_for_function("window.studio.state().played >= 6", timeout=30_000)
            played, t1 = page.evaluate("[window.studio.state().played, performance.now()]")
            assert played <= (t1 - t0) / 1000 * 24 + 2  # 24 fps: frames are dropped, never shown early
            _shot(page, tmp_path, "studio_playing.png")
            page.keyboard.press("Space")
            page.wait_for_selector("body[data-playing='0']")
            page.wait_for_timeout(200)
            still = page.evaluate("window.studio.state().frame")
            page.wait_for_timeout(400)
            assert page.evaluate("window.studio.state().frame") == still

            # Hide an object, then only the selected one; the opacity slider; the shortcut list.
            page.click("[data-testid=frame-input]")
            page.fill("[data-testid=frame-input]", "0")
            page.press("[data-testid=frame-input]", "Enter")
            page.wait_for_selector("body[data-shown='0']")
            assert _painted(page, 1).any()
            page.click("[data-testid=eye-1]")
            assert not _painted(page, 1).any()
            page.click("[data-testid=eye-1]")
            assert _painted(page, 1).any()
            page.focus("body")
            page.keyboard.press("?")
            assert page.is_visible("[data-testid=help-panel]")
            _shot(page, tmp_path, "studio_help.png")
            page.keyboard.press("Escape")
            assert not page.is_visible("[data-testid=help-panel]")
        finally:
            browser.close()
    assert not errors, errors
