"""Endpoint settings of the VLM segmenter: environment variables and validation."""

from __future__ import annotations

import pytest

from annotators.segments.base import Segment, SegmentationInput
from annotators.segments.vlm import VlmConfig, VlmConfigError, VlmSegmenter


class NoFallback:
    name = "none"

    def segment(self, item: SegmentationInput) -> list[Segment]:
        return []


@pytest.mark.parametrize(("environ", "missing"), [
    ({}, ["OPENAI_BASE_URL", "OPENAI_API_KEY"]),
    ({"OPENAI_API_KEY": "k"}, ["OPENAI_BASE_URL"]),
    ({"OPENAI_BASE_URL": "http://x/v1"}, ["OPENAI_API_KEY"]),
])
def test_from_env_without_endpoint_names_the_missing_variables(environ: dict, missing: list[str]) -> None:
    with pytest.raises(VlmConfigError) as err:
        VlmSegmenter.from_env(NoFallback(), environ=environ)
    assert all(name in str(err.value) for name in missing)


def test_from_env_reads_urls_key_and_model() -> None:
    environ = {"OPENAI_BASE_URL": "http://a/v1, http://b/v1", "OPENAI_API_KEY": "k", "LA_VLM_MODEL": "qwen3-vl"}
    segmenter = VlmSegmenter.from_env(NoFallback(), environ=environ, vlm_fps=4.0)
    assert segmenter.config.base_urls == ("http://a/v1", "http://b/v1")
    assert (segmenter.config.model, segmenter.config.vlm_fps) == ("qwen3-vl", 4.0)
    assert "api_key" not in segmenter.config.as_dict()


@pytest.mark.parametrize(("field", "value"), [
    ("base_urls", ()),
    ("vlm_fps", 0.0),
    ("window_overlap_s", 30.0),
    ("max_output_retries", -1),
    ("jpeg_quality", 0),
    ("sheet_columns", 0),
])
def test_config_rejects_bad_values_naming_the_field(field: str, value: object) -> None:
    settings = {"base_urls": ("http://x/v1",), "api_key": "k", field: value}
    with pytest.raises(VlmConfigError, match=field):
        VlmConfig(**settings)
