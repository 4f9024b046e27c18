import math

import numpy as np
import pytest

from trainer.metrics import (
    direction_consistency_score,
    directional_alignment_rate,
    separability_ratio,
    silhouette_score,
)

UP, DOWN = [0, 0, 1], [0, 0, -1]


@pytest.mark.parametrize(
    ("pred", "dirs", "expected"),
    [
        (np.zeros((0, 3)), np.zeros((0, 3)), math.nan),
        ([[0, 0, 2], [0, 0, -1]], [UP, UP], 0.5),
        ([[1, 0, 0.1], [0, 0, -3]], [UP, DOWN], 1.0),
        ([[1, 0, 0]], [UP], 0.0),  # orthogonal is not in the open half-space
    ],
)
def test_dar_counts_trials_in_instruction_half_space(pred, dirs, expected):
    got = directional_alignment_rate(np.asarray(pred, float).reshape(-1, 3), np.asarray(dirs, float).reshape(-1, 3))
    assert (math.isnan(got) and math.isnan(expected)) or got == pytest.approx(expected)


@pytest.mark.parametrize(
    ("pred", "truth", "expected"),
    [
        (np.zeros((0, 3)), np.zeros((0, 3)), math.nan),
        ([[0, 0, 2]], [[0, 0, 5]], 1.0),
        ([[1, 0, 0], [1, 1, 0]], [[-1, 0, 0], [1, 0, 0]], (-1 + 1 / math.sqrt(2)) / 2),
        ([[0, 0, 0], [0, 1, 0]], [[1, 0, 0], [0, 1, 0]], 0.5),  # near-zero norm counts as cosine 0
    ],
)
def test_dcs_is_mean_cosine_with_zero_norm_as_zero(pred, truth, expected):
    got = direction_consistency_score(np.asarray(pred, float).reshape(-1, 3), np.asarray(truth, float).reshape(-1, 3))
    assert (math.isnan(got) and math.isnan(expected)) or got == pytest.approx(expected)


def test_sr_between_over_within_by_hand():
    # label a at x=0 and x=2 (within 2), label b at x=10 and x=14 (within 4): D_within = 3.
    # between distances: 10, 14, 8, 12 → 11. SR = 11 / 3.
    pred = np.array([[0, 0, 0], [2, 0, 0], [10, 0, 0], [14, 0, 0]], float)
    assert separability_ratio(pred, ["a", "a", "b", "b"]) == pytest.approx(11 / 3)


def test_sr_and_ss_need_two_labels():
    assert math.isnan(separability_ratio(np.zeros((2, 3)), ["a", "a"]))
    assert math.isnan(silhouette_score(np.zeros((2, 3)), ["a", "a"]))


def test_ss_by_hand():
    # points 0, 2 (a) and 10, 14 (b) on a line
    # s(0) = (12-2)/12, s(2) = (10-2)/10, s(10) = (9-4)/9, s(14) = (13-4)/13
    pred = np.array([[0, 0, 0], [2, 0, 0], [10, 0, 0], [14, 0, 0]], float)
    expected = np.mean([10 / 12, 8 / 10, 5 / 9, 9 / 13])
    assert silhouette_score(pred, ["a", "a", "b", "b"]) == pytest.approx(expected)


def test_ss_singleton_cluster_scores_zero():
    pred = np.array([[0, 0, 0], [1, 0, 0], [5, 0, 0]], float)
    # s(0) = (5-1)/5, s(1) = (4-1)/4, s(5) = 0 (alone)
    assert silhouette_score(pred, ["a", "a", "b"]) == pytest.approx((0.8 + 0.75 + 0) / 3)


def test_sr_undefined_when_every_label_has_one_trial():
    assert math.isnan(separability_ratio(np.eye(3), ["a", "b", "c"]))
