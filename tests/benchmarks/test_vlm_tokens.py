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
