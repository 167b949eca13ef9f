"""annotate(frame, masks) -> frame: pure, stable colours per id, tint inside masks only."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tracker.io.annotation import annotate, color_of
from tracker.records import FrameMasks


def _masks() -> FrameMasks:
    m = np.zeros((2, 60, 80), dtype=bool)
    m[0, 10:30, 10:40] = True
    m[1, 35:55, 50:75] = True
    return FrameMasks(0, (4, 9), m, np.array([0.9, 0.8], dtype=np.float32))


def test_annotate_is_pure_and_tints_inside_masks_only():
    frame = np.full((60, 80, 3), 100, dtype=np.uint8)
    before = frame.copy()
    fm = _masks()
    out = annotate(frame, fm, {4: "car"}, alpha=0.5, contour=0, text=False)
    assert np.array_equal(frame, before), "the input frame was modified"
    inside = out[15, 20].astype(int)
    assert np.abs(inside - (np.array(color_of(4)) * 0.5 + 50)).max() <= 1
    outside = ~(fm.masks[0] | fm.masks[1])
    assert np.array_equal(out[outside], frame[outside])


def test_colours_are_stable_and_distinct():
    assert color_of(4) == color_of(4)
    assert len({color_of(i) for i in range(1, 20)}) == 19


def test_contour_and_text_are_drawn():
    frame = np.full((60, 80, 3), 100, dtype=np.uint8)
    plain = annotate(frame, _masks(), contour=0, text=False)
    full = annotate(frame, _masks(), {4: "car"}, contour=2, text=True)
    assert (full != plain).any(axis=2).sum() > 50


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 6), st.integers(0, 2**31 - 1))
def test_exclusive_gives_each_pixel_to_the_higher_score_and_the_later_object_on_ties(n, seed):
    rng = np.random.default_rng(seed)
    masks = rng.random((n, 7, 9)) < 0.5
    scores = rng.choice(np.array([0.1, 0.5, 0.9], dtype=np.float32), size=n)  # ties on purpose
    ex = FrameMasks(3, tuple(range(10, 10 + n)), masks, scores).exclusive()
    for y in range(7):
        for x in range(9):
            covering = [i for i in range(n) if masks[i, y, x]]
            want = np.zeros(n, dtype=bool)
            if covering:
                want[max(covering, key=lambda i: (scores[i], i))] = True
            assert np.array_equal(ex.masks[:, y, x], want)


def test_overlapping_masks_show_the_later_objects_colour():
    m = np.zeros((2, 20, 20), dtype=bool)
    m[0, 2:12, 2:12] = True
    m[1, 8:18, 8:18] = True
    out = annotate(
        np.zeros((20, 20, 3), np.uint8),
        FrameMasks(0, (1, 2), m, np.ones(2, np.float32)),
        alpha=1.0,
        contour=0,
        text=False,
    )
    assert tuple(out[10, 10]) == color_of(2) and tuple(out[4, 4]) == color_of(1) and not out[0, 0].any()


def test_the_label_sits_on_the_largest_part_not_a_far_speck():
    """A mask with a speck at the top left and its body at the bottom right: the label is drawn above the
    body; before, it went to the top-left corner of the box around both."""
    frame = np.zeros((120, 160, 3), dtype=np.uint8)
    m = np.zeros((1, 120, 160), dtype=bool)
    m[0, 2:4, 2:4] = True  # the speck
    m[0, 80:110, 100:150] = True  # the body
    fm = FrameMasks(0, (7,), m, np.array([0.9], dtype=np.float32))
    plain = annotate(frame, fm, contour=0, text=False)
    drawn = (annotate(frame, fm, {7: "dog"}, contour=0, text=True) != plain).any(axis=2)
    ys, xs = np.nonzero(drawn)
    assert ys.size > 20 and ys.min() >= 60 and xs.min() >= 95, (ys.min(), xs.min())
