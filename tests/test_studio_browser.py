"""The studio's page in a real headless Chromium (Debian's package, driven by Playwright): click an
object and see its preview, box a second one, Track, scrub to the last frame and see both masks."""

from __future__ import annotations

import contextlib
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
from tracker.io.annotation import color_of

N, W, H = 24, 320, 240
DOCS = Path(__file__).resolve().parents[1] / "docs"


def _chromium() -> str:
    path = os.environ.get("TRACKER_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed: .ci/run installs Debian's chromium package")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return path


def _gt(t: int) -> np.ndarray:
    return demo_sequence(N, W, H, 0).frame(t)[1]


# Pixels of the overlay canvas painted in an object's colour (the page paints masks at alpha 128; the
# canvas stores premultiplied colour, so what reads back is within a few levels of it).
_PAINTED = """([r, g, b]) => {
  const c = document.getElementById("overlay");
  const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
  const out = new Array(c.width * c.height);
  const near = (u, v) => Math.abs(u - v) <= 3;
  for (let i = 0; i < out.length; i++)
    out[i] = d[4 * i + 3] > 0 && near(d[4 * i], r) && near(d[4 * i + 1], g) && near(d[4 * i + 2], b) ? 1 : 0;
  return out;
}"""


def _painted(page, oid: int) -> np.ndarray:
    return np.array(page.evaluate(_PAINTED, list(color_of(oid))), dtype=bool).reshape(H, W)


def _open(browser, url: str, errors: list[str]):
    """A page of the studio at ``url``, ready (its objects and first frame shown); page errors go to ``errors``."""
    page = browser.new_page(viewport={"width": 1280, "height": 760})
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)
    page.wait_for_selector("body[data-ready='1']", timeout=30_000)
    return page


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


@contextlib.contextmanager
def _serve(tmp_path: Path, *args: str):
    """The real ``tracker-studio`` command on the demo clip: yields (its URL, its output folder)."""
    clip = write_demo_clip(tmp_path / "demo.mp4", N, W, H, 0)
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
            for x, y in clicks[1:]:
                page.mouse.click(*at(x, y))
                page.wait_for_timeout(300)
            page.wait_for_function("document.querySelector('#objects li .frames').textContent === 'f 0'")
            assert _iou(_painted(page, 1), gt1) > 0.8

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

            # Track, then scrub to the last frame: both tracked masks overlay it.
            page.click("#track")
            page.wait_for_selector("body[data-track-state]", timeout=120_000)
            assert page.get_attribute("body", "data-track-state") == "done", page.text_content("#track-state")
            page.focus("#scrubber")
            page.keyboard.press("End")
            page.wait_for_selector(f"body[data-shown='{N - 1}']", timeout=30_000)
            assert page.text_content("#frame-no") == f"frame {N - 1} / {N - 1}"
            last = _gt(N - 1)
            assert _iou(_painted(page, 1), last == 1) > 0.6
            assert _iou(_painted(page, 2), last == 2) > 0.6
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
        finally:
            browser.close()
    assert not errors, errors
