"""Per-pipeline params: one module each, run-time overrides that merge and validate."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from datasets_cards.params import PIPELINE_PARAMS, deep_merge, with_overrides
from datasets_cards.params.gaze import GazeParams
from datasets_cards.params.la import LaParams


def test_every_params_module_registers_its_pipeline():
    assert PIPELINE_PARAMS.names() == ["future", "gaze", "la", "pixel"]
    assert PIPELINE_PARAMS.get("la") is LaParams


@pytest.mark.parametrize(
    "base, update, expected",
    [
        ({}, {}, {}),
        ({"a": 1}, {"b": 2}, {"a": 1, "b": 2}),
        ({"a": {"x": 1, "y": 2}}, {"a": {"y": 3}}, {"a": {"x": 1, "y": 3}}),
        ({"a": [1, 2]}, {"a": [3]}, {"a": [3]}),  # lists replace
        ({"a": {"x": 1}}, {"a": 5}, {"a": 5}),
    ],
)
def test_deep_merge(base, update, expected):
    assert deep_merge(base, update) == expected


def test_options_that_name_fields_override_nested_params_and_others_are_ignored():
    params = with_overrides(LaParams(), {"segmenter": "vlm", "keyframes": {"window": 7}, "lav": True})
    assert params.segmenter == "vlm" and params.keyframes.window == 7
    assert params.keyframes.savgol_window == LaParams().keyframes.savgol_window


def test_overrides_are_validated_like_the_card():
    with pytest.raises(ValidationError, match="window"):
        with_overrides(LaParams(), {"keyframes": {"window": 4}})
    with pytest.raises(ValidationError, match="box_threshold"):
        with_overrides(GazeParams(), {"box_threshold": 2.0})


def test_no_override_returns_the_same_params():
    params = GazeParams()
    assert with_overrides(params, {"montage": 0}) is params
