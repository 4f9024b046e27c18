from contextlib import nullcontext as does_not_raise

import numpy as np
import pytest

from annotators.detection import Detections


def dets(n: int) -> Detections:
    xyxy = np.array([[i, i, i + 10, i + 5] for i in range(n)], np.float32).reshape(-1, 4)
    return Detections(xyxy, np.linspace(0.1, 0.9, n), np.zeros(n), {"phrase": np.array(["x"] * n)})


@pytest.mark.parametrize(
    "xyxy, confidence, class_id, expectation",
    [
        (np.zeros((0, 4)), [], [], does_not_raise()),
        ([[0, 0, 1, 1]], [0.5], [0], does_not_raise()),
        ([[0, 0, 1, 1]], [0.5, 0.4], [0], pytest.raises(ValueError, match="2 confidences")),
        ([[0, 0, 1, 1]], [0.5], [0, 1], pytest.raises(ValueError, match="2 class ids")),
        ([[2, 0, 1, 1]], [0.5], [0], pytest.raises(ValueError, match="x1 ≥ x0")),
    ],
)
def test_detections_validate_row_counts_and_box_order(xyxy, confidence, class_id, expectation):
    with expectation:
        Detections(np.asarray(xyxy), confidence, class_id)


def test_data_rows_must_match_boxes():
    with pytest.raises(ValueError, match="phrase"):
        Detections(np.zeros((1, 4)), [0.5], [0], {"phrase": np.array(["a", "b"])})


@pytest.mark.parametrize("index, expected", [(0, [0]), (slice(1, 3), [1, 2]), (np.array([True, False, True, False]), [0, 2])])
def test_indexing_returns_a_new_object_with_copied_rows(index, expected):
    d = dets(4)
    picked = d[index]
    assert picked.xyxy[:, 0].tolist() == expected and picked.data["phrase"].tolist() == ["x"] * len(expected)
    picked.xyxy[:] = -1
    assert d.xyxy.min() >= 0


@pytest.mark.parametrize("n, best_x0", [(0, None), (1, 0.0), (4, 3.0)])
def test_best_is_the_highest_confidence_row(n, best_x0):
    best = dets(n).best()
    assert len(best) == min(n, 1)
    if n:
        assert best.xyxy[0, 0] == best_x0


def test_empty_has_no_rows():
    assert len(Detections.empty()) == 0
