"""The pixel pipeline's geometry against the sample's ground truth (benchmarks/pixel_fidelity.py measures it):
first-close frames, proposals built from the true gripper masks, and prompts drawn from the true target masks."""

from __future__ import annotations

import pytest

pytest.importorskip("tensorflow_datasets")

from benchmarks.fidelity import first_close_match_rate
from benchmarks.pixel_fidelity import (
    first_close_predictions,
    prompts_inside,
    proposal_containment,
    truth_at_g,
)
from datasets_cards import load_source_card
from pipelines.sample.ground_truth import load_ground_truth

SCHEMAS = ("fractal", "bridge")


def test_first_close_frames_match_the_truth_on_at_least_95_percent_of_episodes():
    matched = total = 0
    for schema in SCHEMAS:
        truth = load_ground_truth(schema)
        actual = {e: truth.episode(e).first_close_frame for e in truth.episode_ids}
        rate = first_close_match_rate(first_close_predictions(schema), actual)
        matched, total = matched + rate * len(actual), total + len(actual)
    assert matched / total >= 0.95


@pytest.mark.parametrize("schema", SCHEMAS)
def test_the_default_proposal_scale_contains_every_true_target_box(schema):
    truth = truth_at_g(schema)
    scale = load_source_card(f"sample-{schema}").params.pixel.proposal_scale
    rates = proposal_containment(truth, [1.0, scale])
    assert len(truth) == 6  # the pick tasks close; push, pull and press do not
    assert rates[scale] == (1.0, 1.0)
    assert rates[1.0][0] < 1.0  # the gripper's own box is not enough: the margin is needed


@pytest.mark.parametrize("schema", SCHEMAS)
def test_prompts_from_true_masks_lie_inside_them(schema):
    assert prompts_inside(truth_at_g(schema)) == {"points": 1.0, "line_pixels": 1.0, "box_prompt": 1.0}
