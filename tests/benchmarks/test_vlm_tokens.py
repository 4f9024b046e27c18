"""Prompt-token counting with Qwen's tokenizer and image processor (benchmarks/vlm_tokens.py)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("dashscope", reason="the vlm extra ships Qwen's tokenizer vocabulary")
pytest.importorskip("transformers")

from annotators.segments.vlm import VlmConfig, VlmSegmenter  # noqa: E402
from annotators.segments.vlm.frames import image_to_data_url, tiles_to_sheet  # noqa: E402
from benchmarks.vlm_tokens import QWEN3_VL, QWEN25_VL, VISION_MARKERS, QwenTokenCounter, synthetic_items  # noqa: E402


@pytest.fixture(scope="module")
def counter() -> QwenTokenCounter:
    return QwenTokenCounter(QWEN3_VL)


def test_chat_special_tokens_count_as_one_each(counter):
    # <|im_start|>, "user", "\n", "hi", <|im_end|>
    assert counter.text("<|im_start|>user\nhi<|im_end|>") == 5


@pytest.mark.parametrize(
    "settings, height, width, expected",
    [
        # Qwen3-VL: 32-px tokens, but every image is first enlarged to at least 65,536 px
        (QWEN3_VL, 180, 320, 12 * 22 // 4),
        (QWEN3_VL, 1024, 1024, 32 * 32),
        # Qwen2.5-VL: 28-px tokens and a small minimum, so a small frame stays small
        (QWEN25_VL, 56, 56, 2 * 2),
        (QWEN25_VL, 280, 560, 10 * 20),
    ],
)
def test_image_tokens_follow_the_models_resize_rule(settings, height, width, expected):
    counter = QwenTokenCounter(settings)
    assert counter.image(np.zeros((height, width, 3), np.uint8)) == expected + VISION_MARKERS


def test_one_contact_sheet_costs_less_than_its_frames_one_by_one(counter):
    tiles = [np.full((135, 240, 3), 10 * i, np.uint8) for i in range(12)]
    sheet = tiles_to_sheet(tiles, columns=4, gutter=2)
    assert counter.image(sheet) < sum(counter.image(t) for t in tiles)


def test_request_tokens_add_the_template_text_and_every_image(counter):
    image = np.zeros((180, 320, 3), np.uint8)
    request = {"messages": [
        {"role": "system", "content": "Answer with JSON only."},
        {"role": "user", "content": [{"type": "text", "text": "look:"},
                                     {"type": "image_url", "image_url": {"url": image_to_data_url(image, 85)}},
                                     {"type": "text", "text": "and again:"},
                                     {"type": "image_url", "image_url": {"url": image_to_data_url(image, 85)}}]},
    ]}
    tokens = counter.request(request)
    assert tokens.images == 2
    assert tokens.image == 2 * counter.image(image)
    text = ("<|im_start|>system\nAnswer with JSON only.<|im_end|>\n<|im_start|>user\nlook:",
            "and again:", "<|im_end|>\n<|im_start|>assistant\n")
    assert tokens.text == sum(counter.text(t) for t in text)
    assert tokens.total == tokens.text + tokens.image


def test_the_segmenters_requests_are_countable_and_carry_every_sheet(counter):
    item = synthetic_items(1, n=60)[0]
    config = VlmConfig(base_urls=("http://counting.invalid/v1",), api_key="unused")
    requests = VlmSegmenter(config, fallback=None).window_requests(item)  # type: ignore[arg-type]
    sheets = sum(1 for r in requests for part in r["messages"][1]["content"] if part["type"] == "image_url")
    tokens = [counter.request(r) for r in requests]
    assert sum(t.images for t in tokens) == sheets >= len(item.frames)
    assert all(t.text > 500 for t in tokens)  # the prompt's rules, vocabulary and schema


def test_a_droid_length_episode_costs_at_most_half_the_papers_input_at_the_defaults(counter):
    from annotators.segments.kinematic import KinematicSegmenter
    from benchmarks.vlm_tokens import LEVERS, PAPER_INPUT, episode_row

    item = synthetic_items(1)[0]  # 288 frames, 3 cameras: DROID's mean episode
    adopted = VlmSegmenter(VlmConfig(base_urls=("http://counting.invalid/v1",), api_key="unused"), KinematicSegmenter())
    before = VlmSegmenter(VlmConfig(base_urls=("http://counting.invalid/v1",), api_key="unused", **LEVERS[0][1]),
                          KinematicSegmenter())
    now, then = episode_row(item, adopted, [counter]), episode_row(item, before, [counter])
    assert now["ours Qwen3-VL"] <= PAPER_INPUT / 2 < then["ours Qwen3-VL"]
    # the fixed prefix is most of the text, and the same bytes for every episode
    assert now["prefix Qwen3-VL"] > 700 and then["prefix Qwen3-VL"] < 100


def test_the_prefix_is_the_system_message_and_does_not_depend_on_the_episode(counter):
    from benchmarks.vlm_tokens import prefix_tokens

    config = VlmConfig(base_urls=("http://counting.invalid/v1",), api_key="unused")
    a, b = synthetic_items(2, n=60)
    b.task = "open the drawer slowly"
    ra = VlmSegmenter(config, fallback=None).window_requests(a)[0]  # type: ignore[arg-type]
    rb = VlmSegmenter(config, fallback=None).window_requests(b)[0]  # type: ignore[arg-type]
    assert ra["messages"][0] == rb["messages"][0] and ra["messages"][1] != rb["messages"][1]
    system = ra["messages"][0]["content"]
    assert prefix_tokens(ra, counter) == counter.text(f"<|im_start|>system\n{system}<|im_end|>\n")
    assert prefix_tokens({"messages": [{"role": "user", "content": "hi"}]}, counter) == 0


def test_boundary_coverage_measures_the_distance_to_the_nearest_frame_sent():
    from annotators.segments.base import SegmentationInput
    from benchmarks.vlm_tokens import boundary_coverage

    item = SegmentationInput("e", "", 15.0, np.zeros((150, 6)), np.zeros(150))
    config = VlmConfig(base_urls=("http://counting.invalid/v1",), api_key="unused", uniform_fps=0.5,
                       keyframe_offset_s=0.0, kinematic_cue=False, skip_static=False)
    segmenter = VlmSegmenter(config, fallback=None)  # type: ignore[arg-type]
    # frames sent: 0, 30, 60, 90, 120, 149 (a 2 s grid and the last frame)
    share, farthest = boundary_coverage([item], {"boundaries": {"e": [30, 45, 53]}}, segmenter)
    assert share == pytest.approx(2 / 3) and farthest == pytest.approx(15 / 15.0)
