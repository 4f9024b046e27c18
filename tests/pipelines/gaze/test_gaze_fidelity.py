"""Crop geometry and track handling against the sample's ground truth, through benchmarks/fidelity.py.

The ground-truth target boxes are fed in as detections (StubDetector), so the
scores measure our code (best box, temporal consistency, crop windows, rows),
not the random-weight detector.
"""

import numpy as np
import pytest

pytest.importorskip("tensorflow_datasets")

from annotators.detection import Detections, StubDetector
from annotators.gaze import crop_side
from annotators.phrases import extract_phrases
from benchmarks.fidelity import mean_box_iou
from datasets_cards import load_source_card
from pipelines.formats import open_reader
from pipelines.gaze.pipeline import GazePipeline

CAMERA = "image_0"


@pytest.fixture(scope="module")
def truth():
    from pipelines.sample.ground_truth import load_ground_truth

    try:
        return load_ground_truth("bridge")
    except FileNotFoundError as e:
        pytest.skip(f"the sample is not generated ({e})")


def boxes_as_detections(boxes: np.ndarray) -> StubDetector:
    def answer(i: int, phrase: str) -> Detections:
        box = boxes[i]
        return Detections.empty() if np.isnan(box).any() else Detections(box[None], [0.99], [0])

    return StubDetector(answer)


@pytest.fixture(scope="module")
def rows_by_episode(truth):
    card = load_source_card("sample-bridge")
    pipe = GazePipeline(card, {"detector": "stub", "montage": 0}, detector=StubDetector())
    truth_boxes = truth.boxes(CAMERA, "target")
    out = {}
    for episode in open_reader(card).read(0, len(truth.episode_ids)):
        pipe.detector = boxes_as_detections(truth_boxes[episode.episode_id])
        out[episode.episode_id] = pipe.annotate(episode)
    return pipe, out


def test_rule_phrases_name_the_sample_targets(truth):
    for eid in truth.episode_ids:
        e = truth.episode(eid)
        assert extract_phrases(e.instruction).object == e.target, e.instruction


def test_true_boxes_pass_through_unchanged(truth, rows_by_episode):
    _, rows = rows_by_episode
    predicted = {eid: [r["box"] for r in episode_rows] for eid, episode_rows in rows.items()}
    assert set(predicted) == set(truth.episode_ids)
    assert mean_box_iou(predicted, truth.boxes(CAMERA, "target")) == pytest.approx(1.0, abs=1e-6)


def test_crop_windows_hold_the_true_box_inside_the_image_with_the_cards_size(truth, rows_by_episode):
    pipe, rows = rows_by_episode
    truth_boxes = truth.boxes(CAMERA, "target")
    min_crop, margin = pipe.params.min_crop, pipe.params.margin
    checked = 0
    for eid, episode_rows in rows.items():
        for row, box in zip(episode_rows, truth_boxes[eid]):
            if np.isnan(box).any():
                continue
            x0, y0, x1, y1 = row["crop_box"]
            assert 0 <= x0 and 0 <= y0 and x1 <= row["width"] and y1 <= row["height"]
            assert x0 <= box[0] and y0 <= box[1] and x1 >= box[2] and y1 >= box[3]
            want_w = min(row["width"], crop_side(box[2] - box[0], margin, min_crop))
            want_h = min(row["height"], crop_side(box[3] - box[1], margin, min_crop))
            assert (x1 - x0, y1 - y0) == (want_w, want_h)  # exact: box + margins, at least min_crop
            checked += 1
    assert checked > 0
