"""The fidelity harness: a perfect prediction scores 1.0, a shifted or wrong one scores lower."""

from __future__ import annotations

import math

import numpy as np
import pytest

from benchmarks.fidelity import (
    box_iou,
    boundary_errors,
    error_summary,
    first_close_match_rate,
    keyframe_scores,
    label_accuracy,
    mean_box_iou,
    mean_mask_iou,
    score,
    segments_to_labels,
    shifted,
    truth_predictions,
)


@pytest.mark.parametrize(
    "predicted, actual, f1",
    [
        ({}, {}, 1.0),
        ({"a": []}, {"a": []}, 1.0),
        ({"a": [5, 20]}, {"a": [5, 20]}, 1.0),
        ({"a": [7, 22]}, {"a": [5, 20]}, 1.0),  # within ±2
        ({"a": [8, 23]}, {"a": [5, 20]}, 0.0),  # 3 frames late
        ({"a": [5]}, {"a": [5, 20]}, 2 * 1 * 0.5 / 1.5),
        ({}, {"a": [5]}, 0.0),
        ({"a": [(5, "static")]}, {"a": [(5, "gripper_close")]}, 0.0),  # kinds must agree
    ],
)
def test_keyframe_f1(predicted, actual, f1):
    assert keyframe_scores(predicted, actual, tolerance=2).f1 == pytest.approx(f1)


def test_keyframes_match_one_to_one():
    prf = keyframe_scores({"a": [5, 5, 6]}, {"a": [5]}, tolerance=2)
    assert (prf.true_positives, prf.precision, prf.recall) == (1, pytest.approx(1 / 3), 1.0)


@pytest.mark.parametrize(
    "predicted, actual, expected",
    [
        ({}, {}, (0.0, 0.0)),
        ({"a": [10, 30]}, {"a": [10, 30]}, (0.0, 0.0)),
        ({"a": [13, 33]}, {"a": [10, 30]}, (3.0, 3.0)),
        ({}, {"a": [10]}, (50.0, 50.0)),  # no prediction: the episode length
    ],
)
def test_boundary_error_median_and_p90(predicted, actual, expected):
    assert error_summary(boundary_errors(predicted, actual, {"a": 50})) == expected


@pytest.mark.parametrize(
    "predicted, actual, accuracy",
    [
        ({}, {}, 1.0),
        ({"a": ["move", "grasp"]}, {"a": ["move", "grasp"]}, 1.0),
        ({"a": ["move", "move"]}, {"a": ["move", "grasp"]}, 0.5),
        ({}, {"a": ["move", "grasp"]}, 0.0),
    ],
)
def test_label_accuracy_is_frame_wise(predicted, actual, accuracy):
    assert label_accuracy(predicted, actual) == accuracy


def test_segments_to_labels_fills_inclusive_ranges():
    assert segments_to_labels([("move", 0, 1), ("grasp", 2, 3)], 5, fill="?") == ["move", "move", "grasp", "grasp", "?"]


@pytest.mark.parametrize(
    "predicted, actual, rate",
    [
        ({}, {}, 1.0),
        ({"a": 4, "b": None}, {"a": 4, "b": None}, 1.0),
        ({"a": 5, "b": None}, {"a": 4, "b": None}, 0.5),
        ({}, {"a": 4}, 0.0),
    ],
)
def test_first_close_exact_match(predicted, actual, rate):
    assert first_close_match_rate(predicted, actual) == rate


@pytest.mark.parametrize(
    "a, b, iou",
    [([0, 0, 10, 10], [0, 0, 10, 10], 1.0), ([0, 0, 10, 10], [5, 0, 15, 10], 1 / 3), ([0, 0, 1, 1], [2, 2, 3, 3], 0.0)],
)
def test_box_iou(a, b, iou):
    assert box_iou(a, b) == pytest.approx(iou)


def test_mean_box_iou_skips_frames_without_truth_and_zeroes_missing_predictions():
    truth = {"a": [[0, 0, 10, 10], None, [0, 0, 10, 10]]}
    assert math.isnan(mean_box_iou({}, {}))
    assert mean_box_iou({"a": [[0, 0, 10, 10], None, [0, 0, 10, 10]]}, truth) == 1.0
    assert mean_box_iou({"a": [[0, 0, 10, 10], None, None]}, truth) == 0.5


def test_mean_mask_iou_of_arrays():
    mask = np.zeros((8, 8), bool)
    mask[:4, :4] = True
    half = np.zeros((8, 8), bool)
    half[:4, :2] = True
    assert math.isnan(mean_mask_iou({}, {}))
    assert mean_mask_iou({"a": [mask]}, {"a": [mask]}) == pytest.approx(1.0)
    assert mean_mask_iou({"a": [half]}, {"a": [mask]}) == pytest.approx(0.5)


def test_sample_truth_scores_one_and_shifted_truth_scores_lower():
    from pipelines.sample.ground_truth import DEFAULT_DATA_DIR, load_ground_truth

    if not (DEFAULT_DATA_DIR / "bridge" / "ground_truth" / "episodes.parquet").exists():
        pytest.skip("no generated sample: run `make sample-data`")
    truth = truth_predictions(load_ground_truth("bridge"))
    perfect, late = score(truth, truth), score(shifted(truth, 3), truth)
    for metric in ("keyframe_f1", "primitive_accuracy", "first_close_exact", "box_iou/image_0/target", "mask_iou/image_0/gripper"):
        assert perfect[metric] == pytest.approx(1.0)
        assert late[metric] < perfect[metric]
    assert perfect["boundary_error_median"] == 0.0 < late["boundary_error_median"]
