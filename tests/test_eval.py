"""DAVIS J, F and J&F against hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from curator.eval import (
    MaskScorer,
    boundary_measure,
    boundary_pixels,
    region_similarity,
    score_frame,
    score_sequence,
    seg2bmap,
)


def test_region_similarity_hand_case() -> None:
    gt = np.zeros((4, 4), bool)
    gt[0:2, :] = True  # 8 pixels
    pred = np.zeros((4, 4), bool)
    pred[:, 0:2] = True  # 8 pixels, 4 shared
    assert region_similarity(pred, gt) == pytest.approx(4 / 12)
    assert region_similarity(gt, gt) == 1.0


def test_empty_masks() -> None:
    empty = np.zeros((5, 5), bool)
    full = np.ones((5, 5), bool)
    assert region_similarity(empty, empty) == 1.0
    assert boundary_measure(empty, empty) == 1.0
    assert region_similarity(empty, full) == 0.0
    square = np.zeros((5, 5), bool)
    square[1:4, 1:4] = True
    assert boundary_measure(empty, square) == 0.0
    assert boundary_measure(square, empty) == 0.0


def test_seg2bmap_hand_case() -> None:
    seg = np.zeros((6, 6), bool)
    seg[1:4, 1:4] = True
    expected = {
        (0, 0),
        (0, 1),
        (0, 2),
        (0, 3),
        (1, 0),
        (2, 0),
        (3, 0),
        (1, 3),
        (2, 3),
        (3, 3),
        (3, 1),
        (3, 2),
    }
    got = {(int(r), int(c)) for r, c in zip(*np.nonzero(seg2bmap(seg)), strict=True)}
    assert got == expected


def test_boundary_tolerance_is_davis_definition() -> None:
    # 480p DAVIS frame: ceil(0.008 * hypot(480, 854)) = ceil(7.84) = 8 pixels.
    assert boundary_pixels((480, 854)) == 8
    assert boundary_pixels((100, 100)) == 2
    assert boundary_pixels((100, 100), tolerance=5) == 5


def test_boundary_measure_shift_within_and_beyond_tolerance() -> None:
    gt = np.zeros((10, 100), bool)
    gt[:, :50] = True  # boundary: column 49
    pred = np.zeros((10, 100), bool)
    pred[:, :55] = True  # boundary: column 54, 5 pixels away
    assert boundary_measure(pred, gt, tolerance=2) == 0.0
    assert boundary_measure(pred, gt, tolerance=5) == 1.0


def test_boundary_measure_partial_hand_case() -> None:
    gt = np.zeros((10, 100), bool)
    gt[:, :50] = True  # boundary: (0..9, 49), 10 pixels
    pred = np.zeros((10, 100), bool)
    pred[:5, :50] = True
    pred[5:, :60] = True
    # pred boundary: (0..4, 49), (4, 50..59), (5..9, 59) = 20 pixels; within 2 px of gt: 5 + 2 = 7
    # gt boundary within 2 px of pred boundary: rows 0..6 = 7 of 10
    precision, recall = 7 / 20, 7 / 10
    expected = 2 * precision * recall / (precision + recall)
    assert boundary_measure(pred, gt, tolerance=2) == pytest.approx(expected)


def test_shape_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match="same shape"):
        region_similarity(np.zeros((3, 3)), np.zeros((3, 4)))
    with pytest.raises(ValueError, match="2-D"):
        boundary_measure(np.zeros((3, 3, 3)), np.zeros((3, 3, 3)))


def test_sequence_means_per_object_then_over_objects() -> None:
    gt_a = np.zeros((8, 8), bool)
    gt_a[2:6, 2:6] = True
    gt_b = np.zeros((8, 8), bool)
    gt_b[0:2, 0:2] = True
    gt = {1: gt_a, 2: gt_b}
    perfect = {1: gt_a, 2: gt_b}
    miss_b = {1: gt_a}  # object 2 missing from the prediction counts as empty
    score = score_sequence([(perfect, gt), (miss_b, gt)])
    assert score.per_object[1] == (1.0, 1.0)
    assert score.per_object[2] == (0.5, 0.5)
    means = (score.J, score.F, score.JF)
    assert means == pytest.approx((0.75, 0.75, 0.75))
    assert len(score.frames) == 4
    frame = score_frame(miss_b, gt, frame=3)
    assert [(s.frame, s.obj, s.JF) for s in frame] == [(3, 1, 1.0), (3, 2, 0.0)]
    with pytest.raises(ValueError, match="empty sequence"):
        score_sequence([])


def test_mask_scorer_matches_the_functions() -> None:
    rng = np.random.default_rng(3)
    gt = np.zeros((60, 80), bool)
    gt[15:45, 20:60] = True
    scorer = MaskScorer(gt)
    for _ in range(5):
        pred = np.zeros_like(gt)
        y, x = rng.integers(0, 30), rng.integers(0, 40)
        pred[y : y + 30, x : x + 40] = True
        assert scorer.region(pred) == region_similarity(pred, gt)
        assert scorer.boundary(pred) == boundary_measure(pred, gt)
        assert scorer.jf(pred) == pytest.approx(
            (region_similarity(pred, gt) + boundary_measure(pred, gt)) / 2
        )
    assert MaskScorer(np.zeros_like(gt)).jf(np.zeros_like(gt)) == 1.0
    with pytest.raises(ValueError, match="same shape"):
        scorer.jf(np.zeros((10, 10), bool))
