"""The ``guard`` memory policy (tracker/engine/policies/guard/): each rule on hand-made cases (the camera's
motion measured on real pixels, continuity, near and late recovery, followed look-alikes), its settings, and
the failures of ``gated`` it was made for: an object that turns back after a miss, one seen through a
camera that jumps, one that grows while partly hidden."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from test_policies import S, bound, cands, disc, logits, pair, prompt, remembered, step

from tracker.engine.camera import IDENTITY, CameraMotion, in_mask_pixels, warp_points
from tracker.engine.memory import Geometry, Group
from tracker.engine.policies import memory_policy
from tracker.engine.policies.gated import COMING_BACK, GOING_OUT, GatedMemory
from tracker.engine.policies.guard.contest import Colours, quantise
from tracker.engine.policies.guard.lookalikes import Decoys
from tracker.engine.policies.guard.presence import CROSSED_FRAMES, SMALL, continues, goes_out, stays, touching
from tracker.engine.policies.guard.recovery import near_where_seen, on_its_line
from tracker.engine.types import NO_OBJ_SCORE, Candidates

ROOT = Path(__file__).resolve().parents[1]
EMPTY = np.full((S, S), NO_OBJ_SCORE, dtype=np.float32)


def world(seed: int = 3, size: int = 3 * S) -> np.ndarray:
    """A textured RGB world larger than the view (corners for the optical flow to follow)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(size // 8, size // 8, 3)).astype(np.uint8)
    return cv2.resize(base, (size, size), interpolation=cv2.INTER_CUBIC)


def view(w: np.ndarray, x: float, y: float, zoom: float = 1.0) -> np.ndarray:
    """The S x S view whose top-left corner is world point (x, y), magnified ``zoom`` times."""
    m = np.array([[zoom, 0, -zoom * x], [0, zoom, -zoom * y]], dtype=np.float64)
    return cv2.warpAffine(w, m, (S, S), flags=cv2.INTER_LINEAR)


# ---- the camera ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("dx", "dy", "zoom"), [(4.0, 0.0, 1.0), (-2.5, 3.0, 1.0), (1.0, -1.0, 1.04)])
def test_camera_motion_is_measured_from_the_pixels(dx, dy, zoom):
    w = world()
    cam = CameraMotion()
    assert np.array_equal(cam.step(0, False, view(w, 60, 60)), IDENTITY)  # nothing to compare with yet
    m = cam.step(1, False, view(w, 60 + dx, 60 + dy, zoom))
    # a world point seen at p on frame 0 is seen at zoom * (p - d) on frame 1
    p = np.array([[20.0, 20.0], [40.0, 44.0]])
    assert np.abs(warp_points(m, p) - zoom * (p - [dx, dy])).max() < 0.5


def test_camera_motion_is_identity_across_a_gap_or_a_cut_and_per_direction():
    w = world()
    cam = CameraMotion()
    cam.step(0, False, view(w, 60, 60))
    assert np.array_equal(cam.step(2, False, view(w, 64, 60)), IDENTITY)  # frame 1 was not seen
    assert np.array_equal(cam.step(3, False, world(seed=9)[:S, :S]), IDENTITY)  # another scene: no fit
    cam.step(9, True, view(w, 60, 60))  # the backward pass keeps its own last frame
    assert not np.array_equal(cam.step(8, True, view(w, 57, 60)), IDENTITY)


def test_camera_motion_in_mask_pixels_scales_x_and_y_apart():
    m = np.array([[1.0, 0, 8.0], [0, 1.0, 4.0]])  # 8 px right, 4 down on a 320 x 240 frame
    got = in_mask_pixels(m, (240, 320), (64, 64))
    assert np.allclose(got[:, 2], [8 * 64 / 320, 4 * 64 / 240]) and np.allclose(got[:, :2], np.eye(2))


# ---- the rules -----------------------------------------------------------------------------------------
def test_presence_continues_only_an_overlapping_mask_of_about_the_size_shown_last():
    last = np.array([10.0, 10, 20, 20])
    assert continues(last, 100, np.array([18.0, 10, 28, 20]), 100, 10, 0.25)  # moved on, overlapping
    assert continues(last, 100, np.array([22.0, 10, 32, 20]), 100, 10, 0.25)  # within the grown box
    assert not continues(last, 100, np.array([30.0, 10, 40, 20]), 100, 10, 0.25)  # jumped away
    assert not continues(last, 100, np.array([12.0, 12, 18, 18]), 36, 10, 0.25)  # a third of the size
    assert touching(last, np.array([[19.0, 19, 25, 25]])) and not touching(last, np.array([[21.0, 10, 30, 20]]))


def test_presence_stays_a_pixel_on_the_way_the_object_was_going_never_back():
    last, none = np.array([5.0, 22, 16, 35]), np.zeros((0, 4))  # an 11 x 13 box
    on = last + np.array([-1.0, 1, -1, 1])  # one pixel left and down: box IoU 0.72 with the last
    assert stays(last, 80, last, 80, none, np.zeros(2))
    assert stays(last, 80, on, 80, none, np.array([-0.7, 0.4]))  # the way it was going
    assert not stays(last, 80, on, 80, none, np.array([0.7, -0.4]))  # back against it: a swap's other object
    assert not stays(last, 80, on, 80, none, np.zeros(2))  # standing still: a step is a step
    assert not stays(last, 80, last + np.array([-2.0, 2, -2, 2]), 80, none, np.array([-2.0, 2]))  # two pixels
    assert not stays(last, 80, on, 80, np.array([[4.0, 23, 15, 35]]), np.array([-0.7, 0.4]))  # another is there
    assert not stays(last, 80, on, 30, none, np.array([-0.7, 0.4]))  # a third of the size


def test_presence_stays_grown_or_shrunk_a_pixel_where_it_stood_on_the_screen():
    last, none, still = np.array([5.0, 22, 16, 35]), np.zeros((0, 4)), np.zeros(2)
    screen = last - np.array([1.0, 0, 1, 0])  # where it was shown: the camera has moved the world a pixel right
    grown = screen + np.array([-1.0, 0, 0, 1])  # a pixel more on the left and at the bottom: box IoU 0.72 with last
    assert not stays(last, 80, grown, 80, none, still)
    assert stays(last, 80, grown, 80, none, still, screen)
    assert stays(last, 80, screen + np.array([0.0, 1, 0, 0]), 80, none, still, screen)  # shrunk by a pixel
    assert not stays(last, 80, screen + np.array([-1.0, 1, -1, 1]), 80, none, still, screen)  # a step
    assert not stays(last, 80, screen + np.array([-2.0, 0, 0, 0]), 80, none, still, screen)  # two pixels
    assert not stays(last, 80, grown, 80, np.array([[3.0, 23, 14, 36]]), still, screen)  # another is there


def test_presence_goes_out_only_as_what_is_left_of_the_object():
    last = np.array([62.0, 50, 64, 63])  # a 2 x 13 sliver at the right border, 17 pixels
    assert goes_out(last, 17, np.array([63.0, 51, 64, 62]), 9)  # smaller, inside
    assert goes_out(last, 17, np.array([61.0, 50, 64, 63]), 17)  # a pixel wider, as many pixels
    assert not goes_out(last, 17, np.array([62.0, 48, 64, 63]), 24)  # growing: something coming in
    assert not goes_out(last, 17, np.array([41.0, 50, 64, 59]), 9)  # a thin line across to another object
    assert not goes_out(last, 17, np.array([60.0, 30, 64, 40]), 9)  # off the last box


def test_recovery_near_where_seen_grows_with_the_frames_missed():
    box = np.array([16.0, 10, 26, 20])  # centre 6 px from (15, 15)
    assert not near_where_seen(np.array([15.0, 15]), box, 10, 0, 0.5, 0.1)  # 5 px at first
    assert near_where_seen(np.array([15.0, 15]), box, 10, 2, 0.5, 0.1)  # 7 px two frames later


def test_recovery_on_its_line_either_way_but_not_across_it():
    """On the line of motion through where it was last shown, ahead or back (it turned behind what hid it),
    within ``lane`` sizes across; a part as far off the line as the look-alike families' copies is not."""
    centre, v, size = np.array([30.0, 30.0]), np.array([1.0, 0.0]), 10.0

    def at(x: float, y: float) -> np.ndarray:
        return np.array([x - 5, y - 5, x + 5, y + 5])

    assert on_its_line(centre, v, at(45, 32), size, 5, 0.6)  # ahead
    assert on_its_line(centre, v, at(18, 31), size, 5, 0.6)  # back: it turned
    assert not on_its_line(centre, v, at(18, 50), size, 5, 0.6)  # two sizes off the line
    assert not on_its_line(centre, v, at(30 - 40, 30), size, 5, 0.6)  # further back than it could have gone
    assert on_its_line(centre, np.zeros(2), at(40, 35), size, 5, 0.6)  # a still one: near where it was
    assert not on_its_line(centre, np.zeros(2), at(50, 30), size, 5, 0.6)


def test_lookalikes_are_followed_forgotten_and_bounded():
    d = Decoys(frames=5)
    d.note(0, 10, [np.array([40.0, 40, 50, 50])], 10)
    for t in range(11, 20):  # it moves 2 px a frame: followed
        d.note(0, t, [np.array([40.0 + 2 * (t - 10), 40, 50 + 2 * (t - 10), 50])], 10)
    assert d.covers(0, np.array([58.0, 40, 68, 50]), 10) and not d.covers(0, np.array([5.0, 5, 15, 15]), 10)
    d.warp(np.array([0]), np.array([[1.0, 0, -30], [0, 1, 0]]))  # the camera panned 30 px
    assert d.covers(0, np.array([28.0, 40, 38, 50]), 10)
    d.note(0, 40, [], 10)  # not proposed for 21 frames: forgotten
    assert not d.covers(0, np.array([28.0, 40, 38, 50]), 10)
    d.note(0, 41, [np.array([10.0 * k, 0, 10.0 * k + 5, 5]) for k in range(9)], 10)
    assert len(d.boxes[0]) == 4


def test_guard_settings_are_checked_and_its_yaml_repeats_its_defaults():
    cfg = yaml.safe_load((ROOT / "configs/memory/guard.yaml").read_text())
    name = cfg.pop("name")
    p = memory_policy(name)
    for key, value in cfg.items():
        assert getattr(p.settings, key) == (tuple(value) if isinstance(value, list) else value), key
    # the parts built from the record use it
    assert p.camera is not None and p.decoys.frames == cfg["decoy_frames"]
    assert p.filter.std_vel == cfg["velocity_noise"]
    assert set(cfg) >= {"forget", "near", "continuity", "camera"}
    for bad in ({"forget": 0}, {"near": -1}, {"camera": "yes"}, {"continuity": "a"}, {"gate_iou": 2}):
        with pytest.raises(ValueError, match="memory"):
            memory_policy("guard", **bad)


# ---- whole verdicts on hand-made candidates --------------------------------------------------------------
def _policy(name: str):
    """guard without the camera (the hand-made frames have no background to measure it on), or gated."""
    return memory_policy(name, camera=False) if name == "guard" else GatedMemory()


def _walk_out(x: float):
    """(frame, mask) from frame 20 as an object at ``x`` walks on 2 px a frame, until it is out by the right."""
    for t in range(20, 40):
        x += 2.0
        if not (m := disc(x, 30)).any():
            return
        yield t, m


def _walked(policy, frames: int = 20, v: float = 1.5, y: float = 30.0):
    p, g = bound(policy)
    prompt(p, g, disc(10, y))
    x = 10.0
    for t in range(1, frames):
        x += v
        assert not step(p, g, t, cands([logits(disc(x, y))], [0.95])).absent[0]
    return p, g, x


@pytest.mark.parametrize("name", ["gated", "guard"])
def test_an_object_that_turns_back_after_a_miss_is_taken_back(name):
    """It moved right, SAM 2 missed it for 3 frames while it reversed, then found it behind where it
    was: gated looks for it only ahead on its line (and never takes it back); guard near where it was."""
    p, g, x = _walked(_policy(name))
    for t in range(20, 23):  # missed while it turns: it moves back all the same
        x -= 1.5
        assert step(p, g, t, cands([EMPTY], [0.1], score=-3.0)).absent[0]
    shown = []
    for t in range(23, 33):
        x -= 1.5
        shown.append(not step(p, g, t, cands([logits(disc(x, 30))], [0.95])).absent[0])
    if name == "guard":
        assert all(shown)
    else:
        assert not any(shown)


@pytest.mark.parametrize("name", ["gated", "guard"])
def test_an_object_seen_through_a_camera_that_jumps_stays_shown(name):
    """A still object; the camera jumps 12 px to the left in one frame (a pan, a shake): on screen the
    object jumps 12 px right. gated calls it absent; guard measures the jump and takes it out."""
    w = world()
    p, g = bound(memory_policy(name))
    cam_x = 60.0
    obj = 60.0 + 25  # world x of the disc: screen x = obj - cam_x
    shown = []
    for t in range(0, 30):
        if t == 20:
            cam_x -= 12
        frame = view(w, cam_x, 60)
        mask = disc(obj - cam_x, 30)
        frame[mask] = (250, 30, 30)
        if p.sees_frames:
            p.see(t, False, frame)
        if t == 0:
            prompt(p, g, mask)
            continue
        shown.append(not step(p, g, t, cands([logits(mask)], [0.95])).absent[0])
    assert all(shown[:19])
    assert all(shown[19:]) == (name == "guard")


def _behind_a_bar(x: float, y: float, bar: tuple[int, int]) -> np.ndarray:
    m = disc(x, y)
    m[:, bar[0] : bar[1]] = False
    return m


def test_guard_takes_back_an_object_the_camera_follows_that_turns_behind_an_occluder():
    """The camera pans down with an object moving right (on the screen it keeps its height while the world,
    the bar with it, moves up). The object goes behind the bar, turns there and comes out the side it went
    in. Where the camera's motion is taken out, it went in 12 px higher up than it comes out (two sizes: as
    far as a look-alike's copy), so the line through there misses it; on the screen it comes out on its line.
    A copy coming out of the bar two sizes above, while it hides, is refused."""
    w = world()
    p, g = bound(memory_policy("guard"))
    bar, y, x, cam_y = (36, 46), 32.0, 10.0, 40.0
    shown: dict[int, bool] = {}
    path = [10.0 + t for t in range(30)] + [39.0] * 10 + [39.0 - k for k in range(1, 21)]
    for t, x in enumerate(path):
        cam_y += 0.6
        frame = view(w, 40.0, cam_y)
        frame[:, bar[0] : bar[1]] = 128
        mask = _behind_a_bar(x, y, bar)
        frame[mask] = (250, 30, 30)
        copy = _behind_a_bar(39.0 - (t - 32), y - 12, bar) if 32 <= t < 40 else None
        if copy is not None:
            frame[copy] = (250, 30, 30)
        p.see(t, False, frame)
        if t == 0:
            prompt(p, g, mask)
            continue
        if copy is not None and copy.sum() > 10:  # SAM 2 takes the copy
            assert step(p, g, t, cands([logits(copy)], [0.9])).absent[0], t
        elif mask.sum() < 3:
            step(p, g, t, cands([EMPTY], [0.1], score=-3.0))
        else:
            shown[t] = not step(p, g, t, cands([logits(mask)], [0.9])).absent[0]
    half = [t for t in shown if t > 40 and _behind_a_bar(path[t], y, bar).sum() >= 0.5 * disc(0, 0).sum() * 2]
    assert half, "the object comes out"
    assert all(shown[t] for t in range(half[0] + 2, len(path))), shown


def test_guard_takes_back_an_object_lost_long_anywhere_but_not_on_a_followed_lookalike():
    p, g, x = _walked(memory_policy("guard", camera=False, forget=30))
    # it goes behind something on the right (its mask shrinks), then SAM 2 proposes a look-alike up high
    for t, r in zip(range(20, 23), (4.0, 3.0, 2.0)):
        step(p, g, t, cands([logits(disc(x, 30, r))], [0.9]))
    lookalike = 10.0
    for t in range(23, 60):
        lookalike += 0.5
        v = step(p, g, t, cands([logits(disc(lookalike, 8))], [0.95]))
        assert v.absent[0], t  # never taken: not on its line, and followed as a look-alike after forget
    # the object comes out low on the left, far off its line, 37 frames after it went: taken back
    v = step(p, g, 60, cands([logits(disc(12, 55))], [0.95]))
    assert not v.absent[0]
    assert remembered(p, 60).mem


def test_guard_follows_an_object_that_grows_while_sam2_is_unsure():
    """The object triples in side over 60 frames while SAM 2's predicted IoU is low (0.4: it changes shape as
    it comes closer). gated sizes it from confident frames only, so its size stays at the start and the
    grown object is refused as too big; guard's size follows every whole frame shown."""
    results = {}
    for name in ("gated", "guard"):
        p, g = bound(_policy(name))
        prompt(p, g, disc(20, 32, 4))
        shown = []
        for t in range(1, 61):
            m = disc(20 + 0.2 * t, 32, 4 + 8 * t / 60)
            shown.append(not step(p, g, t, cands([logits(m)], [0.95 if t < 8 else 0.4])).absent[0])
        results[name] = shown
    assert all(results["guard"])
    assert not all(results["gated"])


@pytest.mark.parametrize("name", ["gated", "guard"])
def test_guard_remembers_a_mask_cut_by_the_border_as_sam2_does(name):
    """An object going out through the right border: its last, cut masks are too small to be confident, so
    gated keeps them out of memory (and SAM 2, reading only frames where it was whole at the border, keeps
    finding it there once it is gone); guard remembers them, as SAM 2 does."""
    p, g, x = _walked(_policy(name), frames=20, v=2.0)
    for t in range(1, 20):
        remembered(p, t)
    kept = []
    for t, m in _walk_out(x):
        v = step(p, g, t, cands([logits(m)], [0.95]))
        if m.sum() < 0.5 * disc(30, 30).sum() and not v.absent[0]:  # shown, cut to under half by the border
            kept.append(remembered(p, t).mem)
        else:
            remembered(p, t)
    assert kept and all(kept) == (name == "guard") and any(kept) == (name == "guard")


@pytest.mark.parametrize("name", ["gated", "guard"])
def test_guard_shows_sam2s_mask_of_an_object_too_small_to_gate(name):
    """An object 4 low-res pixels across moves on 4 px in one frame: box IoU with the prediction is 0 (a
    gate on so few pixels refuses the object itself); guard shows SAM 2's mask below SMALL pixels a side."""
    p, g = bound(_policy(name))
    prompt(p, g, disc(10, 30, 2))
    assert np.sqrt(disc(10, 30, 2).sum()) < SMALL
    for t in range(1, 20):
        assert not step(p, g, t, cands([logits(disc(10 + 0.5 * t, 30, 2))], [0.95])).absent[0]
    for t in range(1, 20):
        remembered(p, t)
    v = step(p, g, 20, cands([logits(disc(10 + 0.5 * 19 + 4, 30, 2))], [0.95]))
    assert v.absent[0] == (name == "gated")
    assert remembered(p, 20).mem == (name == "guard")  # and remembered, as SAM 2 remembers it


@pytest.mark.parametrize("there", ["left", "right"])
def test_guard_does_not_show_a_small_object_going_out_where_sam2s_mask_jumps_to_another_border(there):
    """An object too small to gate walks out by the right border; on its last frame SAM 2's mask for it is at
    the left border, where something comes in: it cannot have got there, so motion judges it, and it is not
    shown (standard set 95 clip 18: a look-alike coming back there was refused). At the right border, what is
    left of it is still shown, as SAM 2 shows it."""
    p, g = bound(_policy("guard"))
    prompt(p, g, disc(50, 30, 2))
    for t in range(1, 12):
        assert not step(p, g, t, cands([logits(disc(50 + 1.2 * t, 30, 2))], [0.95])).absent[0]
    m = disc(0, 20, 2) if there == "left" else disc(64, 30, 2)
    assert step(p, g, 12, cands([logits(m)], [0.95])).absent[0] == (there == "left")


@pytest.mark.parametrize("alike", [False, True])
def test_guard_remembers_an_object_cut_by_a_different_looking_tracked_one_in_front(alike):
    """Object 2 passes in front of object 1 and hides up to half of it. SAM 2 shows and remembers object 1's
    cut masks; guard shows them (the two look different: SAM 2 tells them apart) and remembers them too,
    without sizing by them. Two look-alikes: such frames stay out (a swap may hide in them)."""
    p = memory_policy("guard", camera=False)
    p.bind(Geometry(7, 1, 16, 400))
    a, b = Group((1,), (0,)), Group((2,), (0,))
    p.prompted(a, 0, logits(disc(34, 30, 6))[None])
    p.prompted(b, 0, logits(disc(6, 30, 6))[None])
    looks = np.array([[1.0, 0.0], [1.0, 0.0]]) if alike else np.array([[1.0, 0.0], [0.0, 1.0]])
    cut = []
    for t in range(1, 26):
        front = disc(6 + t, 30, 6)
        behind = disc(34, 30, 6) & ~front
        c = pair(cands([logits(behind)], [0.95]), cands([logits(front)], [0.95]), looks)
        v = p.decide([(a, 0), (b, 0)], t, False, c)
        first, _ = remembered(p, t, 1), remembered(p, t, 2)
        if behind.sum() < 0.6 * disc(34, 30, 6).sum() and not v.absent[0]:
            cut.append(first.mem)
    assert cut and all(cut) == (not alike) and any(cut) == (not alike)
    r = p.rows[(1, False)]
    assert p.median_area(np.array([r]))[0] > 0.8 * disc(34, 30, 6).sum()  # not sized by the cut frames


def test_guard_shows_an_object_that_stays_where_it_was_next_to_a_lookalike():
    """Object 1 walks right, then stops against object 2 (not told apart by look: motion decides next to
    it). Its filter, coasting while the two are close, runs on into object 2, so gated's gate refuses the
    object standing still; guard shows SAM 2's confident mask where the object was shown last (box IoU at
    least STAY, none of object 2's near it). A mask that jumps onto object 2 is still motion's to judge."""
    p = memory_policy("guard", camera=False)
    p.bind(Geometry(7, 1, 16, 400))
    a, b = Group((1,), (0,)), Group((2,), (0,))
    p.prompted(a, 0, logits(disc(8, 30, 6))[None])
    p.prompted(b, 0, logits(disc(31, 30, 6))[None])
    shown = []
    for t in range(1, 40):
        first = disc(min(8 + t, 20), 30, 6) & ~disc(31, 30, 6)
        c = pair(cands([logits(first)], [0.95]), cands([logits(disc(31, 30, 6))], [0.95]))
        shown.append(not p.decide([(a, 0), (b, 0)], t, False, c).absent[0])
    assert all(shown)
    r = p.rows[(1, False)]
    assert not p._stays([(0, disc(31, 30, 6))], cands([logits(disc(31, 30, 6))], [0.95]), 0, r, 113.0)


def test_guard_restarts_a_filter_that_coasted_off_a_thin_object_turning_in_place():
    """An object walks right, stops and turns edge-on in place (a bar under half its size, then a third):
    a part too thin to move the filter, so the filter coasts on at the old speed. Once the bar is under
    size_range of the size, only a part inside the prediction is taken, and the prediction is far off:
    gated refuses the object in place. guard restarts the filter on what it shows there and keeps it."""
    results = {}
    for name in ("gated", "guard"):
        p, g = bound(_policy(name))
        prompt(p, g, disc(10, 30, 6))
        yy, xx = np.mgrid[:S, :S]
        for t in range(1, 11):
            assert not step(p, g, t, cands([logits(disc(10 + t, 30, 6))], [0.95])).absent[0]
        shown = []
        for t in range(11, 50):
            left = 19 if t < 40 else 20  # edge-on: a bar 4, then 3 px wide, where it stopped
            bar = (xx >= left) & (xx <= 22) & (np.abs(yy - 30) <= 6)
            shown.append(not step(p, g, t, cands([logits(bar)], [0.95])).absent[0])
        results[name] = shown
    assert all(results["guard"])
    assert not all(results["gated"][29:])


@pytest.mark.parametrize("name, alike", [("gated", False), ("guard", True), ("guard", False)])
def test_guard_does_not_take_back_on_a_different_looking_object_what_a_retry_found(name, alike):
    """Object 1 walks right into where object 2 comes down to and stands, in front of it; object 3, a
    look-alike of object 1, stands next to that place, so motion judges object 1 there. Object 1's cut masks
    run out and the decoder is asked again with its predicted box: it finds object 2, in front. gated takes
    that as object 1 and remembers it as a click (a swap). guard refuses it when object 2 looks different;
    next to a look-alike (two crossing) motion decides, as in gated."""
    p = _policy(name)
    p.bind(Geometry(7, 1, 16, 400))
    groups = [Group((k,), (0,)) for k in (1, 2, 3)]
    for g, m in zip(groups, (disc(10, 30), disc(30, 10), disc(30, 44))):
        p.prompted(g, 0, logits(m)[None])
    rows = [(g, 0) for g in groups]
    looks = np.array([[1.0, 0.0], [1.0, 0.0] if alike else [0.0, 1.0], [1.0, 0.0]], dtype=np.float32)
    none = np.full((S, S), NO_OBJ_SCORE, dtype=np.float32)
    taken = []
    for t in range(1, 30):
        two = disc(30, min(10 + t, 30))
        one = disc(10 + t, 30) & ~two
        three = [cands([logits(one)] if one.any() else [none], [0.95]), cands([logits(two)], [0.95])]
        three.append(cands([logits(disc(30, 44))], [0.95]))
        fields = [np.concatenate([getattr(x, f) for x in three]) for f in ("masks", "ious", "score", "chosen")]
        v = p.decide(rows, t, False, Candidates(*fields, (0,), looks))
        if np.isfinite(v.retry[0]).all():
            found = cands([logits(two)], [0.9])
            again = Candidates(found.masks, found.ious, found.score, found.chosen, (0,), looks[[1]])
            taken.append(not p.decide_retry(rows[:1], t, False, again).absent[0])
        p.pending.clear()
    assert taken and any(taken) == (name == "gated" or alike)


def _two_come_back_at_one_place(r2: float, scores: tuple[float, float], looks: np.ndarray) -> list[list[bool]]:
    """Objects 1 (radius 7) and 2 (radius ``r2``) leave by the right border; from frame 40 one comes in by the
    left, and SAM 2 finds it for both with object ``scores``. Per frame from 40: whether each is shown."""
    p = memory_policy("guard", camera=False)
    p.bind(Geometry(7, 1, 16, 400))
    a, b = Group((1,), (0,)), Group((2,), (0,))
    p.prompted(a, 0, logits(disc(40, 16, 7))[None])
    p.prompted(b, 0, logits(disc(40, 46, r2))[None])
    shown = []
    for t in range(1, 60):
        if t < 40:
            m1, m2, s1, s2 = disc(40 + 1.5 * t, 16, 7), disc(40 + 1.5 * t, 46, r2), 6.0, 6.0
        else:
            m1 = m2 = disc(-7 + (t - 40), 30, 7)
            s1, s2 = scores
        c1 = cands([logits(m1)] if m1.any() else [EMPTY], [0.9], score=s1 if m1.any() else -4.0)
        c2 = cands([logits(m2)] if m2.any() else [EMPTY], [0.9], score=s2 if m2.any() else -4.0)
        v = p.decide([(a, 0), (b, 0)], t, False, pair(c1, c2, looks))
        p.pending.clear()
        if t >= 40:
            shown.append([bool(not v.absent[k] and (v.mask[k] > 0).any()) for k in (0, 1)])
    return shown


def test_guard_gives_a_place_two_lost_objects_are_found_in_to_the_one_sam2_is_surer_of():
    """Objects 1 (large) and 2 (small) look different and leave by the right border. One comes in by the left,
    and SAM 2 finds it for both, surer for object 1 (object score 4 against 1.5). The small one's sliver was
    big enough first, so it was taken as object 2, and then object 1 could not come back there. guard leaves
    a lost object's part to another lost object SAM 2 finds there with a higher score: shown as object 1 only."""
    shown = _two_come_back_at_one_place(4, (4.0, 1.5), np.array([[1.0, 0.0], [0.0, 1.0]]))
    assert not any(second for _, second in shown)
    assert all(first for first, _ in shown[5:])


def _corner(w: int, h: int) -> np.ndarray:
    m = np.zeros((S, S), dtype=bool)
    m[:h, S - w :] = True
    return m


@pytest.mark.parametrize("name", ["gated", "guard"])
def test_guard_takes_a_lost_object_back_in_at_the_border_only_by_a_tenth_of_it(name):
    """An object leaves by the right border halfway down. Something comes in at the top-right corner: SAM 2
    proposes a small solid bit of it, unsure (predicted IoU 0.4), and the decoder, asked again there, finds a
    sliver (4 % of the object's size). gated takes the sliver as the object coming back and remembers it as a
    click (standard set 100, clip 7: another object coming in). guard, as for SAM 2's own unsure mask, waits
    for a tenth of it in view (a confident one it shows at once: the test after the next)."""
    p = _policy(name)
    p.bind(Geometry(7, 1, 16, 400))
    g = Group((1,), (0,))
    p.prompted(g, 0, logits(disc(40, 40, 9))[None])
    none = np.full((S, S), NO_OBJ_SCORE, dtype=np.float32)
    shown, retried = [], []
    for t in range(1, 56):
        m = disc(40 + t, 40, 9) if t < 40 else _corner(4, 5) if t < 50 else _corner(t - 44, 10)
        c = cands([logits(m)] if m.any() else [none], [0.9 if t < 40 else 0.4], score=6.0 if m.any() else -4.0)
        v = p.decide([(g, 0)], t, False, c)
        back = not v.absent[0]
        if np.isfinite(v.retry[0]).all() and t >= 40:
            retried.append(t)
            back = not p.decide_retry([(g, 0)], t, False, cands([logits(_corner(2, 5))], [0.9])).absent[0]
        p.pending.clear()
        if back and t >= 40:
            shown.append(t)
    assert retried and retried[0] == 40
    assert shown[0] == (40 if name == "gated" else 50)


def test_guard_lets_motion_decide_after_two_objects_overlapped():
    """Two look-alikes run at each other and overlap (one passes in front of the other): SAM 2 may come out
    of it on either, so for CROSSED_FRAMES frames neither continuity nor the near rule takes SAM 2's mask:
    motion decides. Two that only touch (bouncing off each other) keep them (the whole-run bounce test)."""
    p = memory_policy("guard", camera=False)
    p.bind(Geometry(7, 1, 16, 400))
    a, b = Group((1,), (0,)), Group((2,), (0,))
    p.prompted(a, 0, logits(disc(16, 30))[None])
    p.prompted(b, 0, logits(disc(48, 30))[None])
    both = [(a, 0), (b, 0)]
    for t in range(1, 12):  # towards each other, 1 px a frame each: apart until frame 11
        c = pair(cands([logits(disc(16 + t, 30))], [0.95]), cands([logits(disc(48 - t, 30))], [0.95]))
        p.decide(both, t, False, c)
    r = p.rows[(1, False)]
    assert not p._crossing(r)
    for t in range(12, 17):  # they overlap, then object 1 is missed
        first = cands([logits(disc(16 + t, 30))], [0.95]) if t < 16 else cands([EMPTY], [0.1], score=-3.0)
        p.decide(both, t, False, pair(first, cands([logits(disc(48 - t, 30))], [0.95])))
    assert p._crossing(r) and p.lost[r] == 1
    size = float(np.sqrt(p.median_area(np.array([r]))[0]))
    near = np.array([p.seen[r, 0] - 10, 25, p.seen[r, 0], 35])  # 5 px behind where it was
    assert not p.where_it_can_be(r, near, size)  # motion decides: not on its line
    p.crossed[r] -= CROSSED_FRAMES + 1  # the overlap long past: a missed object comes back near where it was
    assert p.where_it_can_be(r, near, size)


# ---- whole runs on the families made for it ----------------------------------------------------------------
def _longest_loss(ious: np.ndarray, areas: np.ndarray) -> int:
    """The longest run of frames where the object is in view (at least half its median size) and not
    tracked (IoU < 0.1): how long it took to take it back once visible again."""
    visible = areas >= 0.5 * np.median(areas[areas > 0])
    run = best = 0
    for v, iou in zip(visible, ious):
        run = run + 1 if (v and iou < 0.1) else 0
        best = max(best, run)
    return best


@pytest.fixture(scope="module")
def family_runs(tmp_path_factory):
    """family, seed, clip -> policy -> object id -> (IoU per frame, true area per frame)."""
    from PIL import Image

    from tracker.api import load_model
    from tracker.engine.propagation import Propagator
    from tracker.engine.types import Passes
    from tracker.experiments.datasets import first_frame_prompts, load_sequences
    from tracker.experiments.hard import MIN_FRAMES, write_hard_dataset
    from tracker.io.source import ImageFolderSource

    model = load_model("toy", device="cpu")
    done: dict = {}

    def run(family: str, seed: int, index: int, policies=("gated", "guard")) -> dict:
        key = (family, seed, index)
        if key not in done:
            root = tmp_path_factory.mktemp(f"{family}{seed}")
            write_hard_dataset(root, family, index + 1, seed, max(150, MIN_FRAMES.get(family, 0)))
            seq = load_sequences("davis", root)[index]
            prompts = list(first_frame_prompts(seq, "mask"))
            ids = sorted({p.object_id for p in prompts})
            truth = [np.array(Image.open(seq.annotations[t])) for t in range(len(seq.frame_files))]
            out = {}
            for name in policies:
                prop = Propagator(model, memory_policy(name), passes=Passes(prefetch=0))
                ious: dict[int, list[float]] = {i: [] for i in ids}
                for frame, fm in prop.run(ImageFolderSource(seq.frame_files[0].parent), prompts, ids):
                    for i in ids:
                        gt = truth[frame.index] == i
                        pm = fm.masks[list(fm.object_ids).index(i)] if i in fm.object_ids else np.zeros_like(gt)
                        u = (pm | gt).sum()
                        ious[i].append(1.0 if u == 0 else float((pm & gt).sum() / u))
                areas = {i: np.array([(lab == i).sum() for lab in truth]) for i in ids}
                out[name] = {i: (np.array(ious[i]), areas[i]) for i in ids}
            done[key] = out
        return done[key]

    return run


@pytest.mark.parametrize(
    ("family", "seed", "index", "oid", "gated_loss", "what"),
    [
        ("turns", 1, 1, 2, 25, "two look-alikes bounce back the way they came, the camera shaking"),
        ("camera", 1, 0, 1, 15, "the camera pans and zooms while the target hides and a look-alike comes out"),
    ],
)
def test_whole_run_guard_takes_back_within_10_frames_what_gated_loses(
    family_runs, family, seed, index, oid, gated_loss, what
):
    """Seed 1 clips (looked at while the rules were made, as seed 0 was; the benchmark reports seed 9001)."""
    runs = family_runs(family, seed, index)
    gated, guard = runs["gated"][oid], runs["guard"][oid]
    assert _longest_loss(*gated) >= gated_loss, what  # gated: lost while in view for that many frames
    assert _longest_loss(*guard) <= 10, what  # guard: taken back within 10 frames of being visible
    assert guard[0].mean() > gated[0].mean() + 0.2


def test_whole_run_guard_takes_back_an_object_that_turns_behind_a_bar_as_the_camera_follows(family_runs):
    """Seed 0 clip 4 of ``turns`` (a tuning clip): the camera pans with the bouncing pair; object 1 goes
    behind the bar, turns there and comes out the side it went in, 10 px (on the screen) from where the
    camera-compensated line would have it. Before the screen line (recovery.on_its_line) guard lost it
    there for 40 frames, coming out and whole (J 0.78 against SAM 2's 0.89)."""
    runs = family_runs("turns", 0, 4, policies=("sam2", "guard"))
    sam2, guard = runs["sam2"][1], runs["guard"][1]
    assert _longest_loss(*guard) <= 2
    assert guard[0].mean() >= sam2[0].mean() - 0.06


def test_guard_state_round_trips_through_json_with_where_it_was_on_the_screen():
    """A resumed run reads guard's state back from JSON: the screen line (centre, velocity, last whole frame)
    comes back, and the next verdicts are the same as the run's own."""
    import json

    p, g, x = _walked(memory_policy("guard", camera=False))
    q, _ = bound(memory_policy("guard", camera=False))
    q.load_state(json.loads(json.dumps(p.state())))
    r = p.rows[(1, False)]
    assert np.allclose(q.screen[r], p.screen[r]) and p.screen[r, 2] > 0.5  # moving right on the screen
    assert (q.whole_at == p.whole_at).all() and np.allclose(q.whole, p.whole)
    for t in range(20, 26):  # it goes behind something and comes back
        x += 1.5
        c = cands([logits(disc(x, 30, 5.0 if t != 22 else 2.0))], [0.95])
        assert (step(p, g, t, c).absent == step(q, g, t, c).absent).all()
    # a state saved before the screen line: the line is unknown, not at the frame's corner
    old = {k: v for k, v in p.state().items() if k not in ("screen", "whole", "whole_at")}
    o, _ = bound(memory_policy("guard", camera=False))
    o.load_state(json.loads(json.dumps(old)))
    o.hidden[r], o.lost[r] = True, 5
    assert np.isnan(o.screen[r]).all() and not o.where_it_can_be(r, np.array([0.0, 0.0, 2.0, 2.0]), 10.0)


def test_guard_remembers_both_masks_on_one_place_when_one_is_remembered_anyway():
    """Object 1, too small to gate (shown and remembered as SAM 2 shows and remembers it), passes behind
    object 2, a look-alike standing still: SAM 2's mask of object 1 lies inside object 2's. Two masks on one
    place stay out of memory (a swap may hide in them), but object 1's is remembered anyway: with that place
    in object 1's memory and not in object 2's, SAM 2 took object 2 for object 1 (standard set). guard
    remembers object 2's too, as SAM 2 does."""
    p = memory_policy("guard", camera=False)
    p.bind(Geometry(7, 1, 16, 400))
    a, b = Group((1,), (0,)), Group((2,), (0,))
    p.prompted(a, 0, logits(disc(12, 30, 2))[None])
    p.prompted(b, 0, logits(disc(30, 30, 6))[None])
    looks = np.array([[1.0, 0.0], [1.0, 0.0]])
    inside = []
    for t in range(1, 24):
        small = disc(12 + t, 30, 2)
        c = pair(cands([logits(small)], [0.95]), cands([logits(disc(30, 30, 6))], [0.95]), looks)
        v = p.decide([(a, 0), (b, 0)], t, False, c)
        first, second = remembered(p, t, 1), remembered(p, t, 2)
        if (small & disc(30, 30, 6)).sum() >= 0.5 * small.sum():
            assert not v.absent.any()
            inside.append((first.mem, second.mem))
    assert len(inside) > 5 and all(x and y for x, y in inside)


@pytest.mark.parametrize(("alike", "merged"), [(False, False), (True, False), (False, True)])
def test_guard_remembers_two_different_looking_objects_on_one_place(alike, merged):
    """Object 2, smaller, passes in front of object 1, and SAM 2's masks of the two overlap (each its whole
    disc). Two look-alikes on one place stay out of memory (a swap may hide in them); two that look
    different, SAM 2 tells apart: guard remembers both, as SAM 2 does (standard set: the one behind, kept
    out, was lost to the one in front). One mask given to both (IoU >= MERGED) is a merge: neither."""
    p = memory_policy("guard", camera=False)
    p.bind(Geometry(7, 1, 16, 400))
    a, b = Group((1,), (0,)), Group((2,), (0,))
    p.prompted(a, 0, logits(disc(34, 30, 6))[None])
    p.prompted(b, 0, logits(disc(8, 30, 4))[None])
    looks = np.array([[1.0, 0.0], [1.0, 0.0]]) if alike else np.array([[1.0, 0.0], [0.0, 1.0]])
    both = []
    for t in range(1, 30):
        two = disc(8 + t, 30, 4)
        one = two if merged and t > 20 else disc(34, 30, 6)
        c = pair(cands([logits(one)], [0.95]), cands([logits(two)], [0.95]), looks)
        v = p.decide([(a, 0), (b, 0)], t, False, c)
        first, second = remembered(p, t, 1), remembered(p, t, 2)
        if (one & two).sum() >= 0.5 * two.sum() and not v.absent.any() and (not merged or t > 20):
            both.append(first.mem and second.mem)
    assert both and all(both) == (not alike and not merged) and any(both) == (not alike and not merged)


@pytest.mark.parametrize("onto", [False, True])
def test_guard_shows_an_object_behind_a_different_looking_one_away_from_a_lookalike(onto):
    """Object 2 (different-looking) comes in front of object 1 and hides most of it; object 3, a
    look-alike of object 1, stands just below, close enough that motion judges object 1 next to it.
    SAM 2's mask of object 1 is what is left of it, under size_range of its size: gated's gate refuses it
    and object 1's memory went stale (standard set: it was then lost to object 2). Away from the look-alike
    (SAM 2's mask does not meet its predicted box) no swap can hide in it: guard shows SAM 2's mask. One that
    reaches onto the look-alike is still motion's to judge."""
    p = memory_policy("guard", camera=False)
    p.bind(Geometry(7, 1, 16, 400))
    groups = [Group((k,), (0,)) for k in (1, 2, 3)]
    one, three = disc(30, 30, 6), disc(30, 45, 6)
    for g, m in zip(groups, (one, disc(8, 30, 6), three)):
        p.prompted(g, 0, logits(m)[None])
    rows = [(g, 0) for g in groups]
    looks = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]], dtype=np.float32)
    cut = []
    for t in range(1, 22):
        two = disc(8 + t, 30, 6)
        left = one & ~two
        if onto:
            left = left | (t >= 18) & disc(30, 41, 3)
        trio = [cands([logits(left)], [0.9]), cands([logits(two)], [0.95]), cands([logits(three)], [0.95])]
        fields = [np.concatenate([getattr(x, f) for x in trio]) for f in ("masks", "ious", "score", "chosen")]
        v = p.decide(rows, t, False, Candidates(*fields, (0,), looks))
        p.pending.clear()
        if left.sum() < 0.4 * one.sum():
            cut.append(not v.absent[0])
    assert cut and all(cut) == (not onto)


@pytest.mark.parametrize("name", ["gated", "guard"])
def test_guard_shows_an_object_going_out_to_its_last_sliver(name):
    """An object leaves by the right border at 2 px a frame: SAM 2 shows it to its last one-pixel sliver.
    gated refuses the slivers under GOING_OUT of its size; guard shows what is left of it at the border,
    no larger than what it showed last, as SAM 2 shows it (one-frame losses on the standard sets)."""
    p, g, x = _walked(_policy(name), frames=20, v=2.0)
    missed = []
    for t, m in _walk_out(x):
        if step(p, g, t, cands([logits(m)], [0.95])).absent[0]:
            missed.append(int(m.sum()))
        p.pending.clear()
    assert bool(missed) == (name == "gated")


@pytest.mark.parametrize("name", ["gated", "guard"])
def test_guard_takes_an_object_that_left_back_in_by_sam2s_confident_sliver(name):
    """An object leaves by the right border and, 8 frames later, comes back in by the left one. SAM 2 is
    sure of it from its first sliver (5 % of its size). gated waits for a tenth of it in view; guard shows it
    on the frame it comes back, as SAM 2 does (5 of the 18 objects the standard tuning sets lost most)."""
    p, g, x = _walked(_policy(name), frames=20, v=2.0)
    first = None
    for t in range(20, 80):
        x = x + 2.0 if t < 50 else -5.0 + (t - 50)  # out by frame 38, back in from frame 50
        m = disc(x, 30)
        c = cands([logits(m)] if m.any() else [EMPTY], [0.9], score=6.0 if m.any() else -4.0)
        v = step(p, g, t, c)
        p.pending.clear()
        if t >= 50 and first is None and not v.absent[0]:
            first = t, int(m.sum())
    came = next(t for t in range(50, 80) if disc(-5.0 + (t - 50), 30).sum() >= GOING_OUT * disc(30, 30).sum())
    assert disc(-5.0 + (came - 50), 30).sum() < COMING_BACK * disc(30, 30).sum()
    assert first is not None and (first[0] == came) == (name == "guard"), (first, came)


def test_guard_gives_a_place_lost_objects_come_back_on_to_the_one_sam2_is_surest_of():
    """Objects 1 and 2 look alike and leave by the right border; one comes in by the left, and SAM 2 finds it
    for both, surer for object 2 (object score 4 against 3.5: less than SURER, so not
    outscored). The first in the list held the place, and object 1 was shown; guard decides lost objects
    surest first, as SAM 2's label map gives the place to the surest: object 2 is shown."""
    shown = _two_come_back_at_one_place(7, (3.5, 4.0), np.array([[1.0, 0.0], [1.0, 0.0]]))
    assert not any(first for first, _ in shown)
    assert sum(second for _, second in shown) >= 15


@pytest.mark.parametrize("name", ["gated", "guard"])
def test_guard_takes_an_object_back_in_where_a_different_looking_one_goes_out(name):
    """Object 1 leaves by the right border; object 2, which looks different, walks out by the left one as object
    1 comes back in there. SAM 2's mask for object 2 takes in both; for object 1 it is its own, unsure
    (predicted IoU 0.46). gated holds the place for object 2 until it is gone; guard does not let one going
    out at the border hold it against one coming in (standard set 106 clip 13: refused on the frames SAM 2 saw
    it come in, object 1 was never found again)."""
    p = _policy(name)
    p.bind(Geometry(7, 1, 16, 400))
    a, b = Group((1,), (0,)), Group((2,), (0,))
    p.prompted(a, 0, logits(disc(40, 16, 7))[None])
    p.prompted(b, 0, logits(disc(40, 30, 7))[None])
    looks = np.array([[1.0, 0.0], [0.0, 1.0]])
    first = None
    for t in range(1, 60):
        m1 = disc(40 + 1.5 * t, 16, 7) if t < 40 else disc(-7 + (t - 40), 30, 7)
        m2 = disc(40 - t, 30, 7)
        c1 = cands([logits(m1)] if m1.any() else [EMPTY], [0.9 if t < 40 else 0.46], score=6.0 if m1.any() else -4.0)
        c2 = cands(
            [logits(m2 | (m1 if t >= 40 else False))] if m2.any() else [EMPTY], [0.9], score=6.0 if m2.any() else -4.0
        )
        v = p.decide([(a, 0), (b, 0)], t, False, pair(c1, c2, looks))
        p.pending.clear()
        if t >= 40 and first is None and not v.absent[0]:
            first = t
    gone = next(t for t in range(40, 60) if not disc(40 - t, 30, 7).any())
    assert first is not None and (first < gone) == (name == "guard"), (first, gone)


# ---- look-alikes in view (contest) ---------------------------------------------------------------------
RED, GREEN, GREY = (230, 40, 40), (40, 200, 60), (110, 110, 110)


def _painted(*parts: tuple[np.ndarray, tuple[int, int, int]]) -> np.ndarray:
    """An S x S grey frame with each (mask, colour) of ``parts`` painted on it."""
    frame = np.full((S, S, 3), GREY, dtype=np.uint8)
    for m, colour in parts:
        frame[m] = colour
    return frame


def test_contest_finds_the_objects_colours_elsewhere_and_only_there():
    colours = Colours()
    me, other = disc(15, 15), disc(45, 45)
    assert not colours.lookalikes([0], quantise(_painted((me, RED))), [me], np.array([me.sum()])).any()  # not learnt
    colours.learn(0, quantise(_painted((me, RED))), me)

    def judged(frame: np.ndarray, masks: list[np.ndarray]) -> bool:
        areas = np.full(len(masks), float(me.sum()))
        return bool(colours.lookalikes(list(range(len(masks))), quantise(frame), masks, areas)[0])

    assert not judged(_painted((me, RED)), [me])
    assert not judged(_painted((me, RED), (other, GREEN)), [me])  # something else, of other colours
    assert judged(_painted((me, RED), (other, RED)), [me])  # a look-alike in view
    assert not judged(_painted((me, RED), (disc(45, 45, 1.5), RED)), [me])  # a speck: under PATCH of its size
    assert judged(_painted((me, RED), (other, RED)), [me, other])  # a tracked look-alike
    assert not judged(_painted((me, RED), (other, GREEN)), [me, other])  # a tracked different-looking one
    assert judged(_painted((me, RED), (other, GREEN)), [other])  # SAM 2's mask is on something else


@pytest.mark.parametrize("copy", [False, True])
def test_guard_shows_sam2s_jump_when_nothing_else_in_view_looks_like_the_object(copy):
    """An object walks right; on frame 20 SAM 2's mask jumps 20 px off its line onto a red disc. With nothing
    else of its colours seen in view, that is the object (it moved fast, the camera cut): SAM 2's mask is shown
    (gated's gate refused it). With a red look-alike in view since frame 10, the jump is judged, and refused."""
    import json

    p, g = bound(_policy("guard"))
    x, there = 10.0, disc(50, 50)
    for t in range(20):
        me = disc(x, 30)
        p.see(t, False, _painted((me, RED), *([(there, RED)] if copy and t >= 10 else [])))
        if t == 0:
            prompt(p, g, me)
        else:
            assert not step(p, g, t, cands([logits(me)], [0.95])).absent[0]
        x += 1.5
    q, _ = bound(_policy("guard"))  # resumed from its state: the colours and what showed them come back
    q.load_state(json.loads(json.dumps(p.state())))
    for policy in (p, q):
        policy.see(20, False, _painted((there, RED)))
        assert step(policy, g, 20, cands([logits(there)], [0.95])).absent[0] == copy
