"""The VLM response cache and the LLM reply cache on s3://: a reply written there is replayed, no request made."""

from __future__ import annotations

import json
from collections.abc import Iterator

import fsspec
import numpy as np
import pytest

from annotators.segments.base import Segment, SegmentationInput
from annotators.segments.vlm import VlmConfig, VlmSegmenter
from pipelines.phrases import ReplyCache
from tests.annotators.segments.fake_openai import FakeOpenAI, Reply

pytestmark = pytest.mark.server
VALID = json.dumps([
    {"subaction": "move", "instruction": "move the gripper forward", "start": 0.0, "end": 2.0},
    {"subaction": "lift", "instruction": "lift the object upward", "start": 2.0, "end": 4.0},
])


class OneSegment:
    """Stands in for the kinematic fallback."""

    name = "kinematic"

    def segment(self, item: SegmentationInput) -> list[Segment]:
        return [Segment(0, item.num_frames, "move", "move something")]


def make_item(num_frames: int = 60) -> SegmentationInput:
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (36, 64, 3), dtype=np.uint8) for _ in range(num_frames)]
    return SegmentationInput(
        episode_id="ep0", task="put the cup on the plate", fps=15.0, arm_state=rng.normal(size=(num_frames, 6)),
        gripper=np.zeros(num_frames), keyframe_hints=(), keyframes=(30,),
        frames={"exterior_1_left": ("exterior", frames)},
    )


def make_segmenter(server: FakeOpenAI, model: str) -> VlmSegmenter:
    config = VlmConfig(base_urls=(server.base_url,), api_key="test", model=model, backoff_base_s=0.001,
                       backoff_max_s=0.005, timeout_s=10.0, cross_check=False)
    return VlmSegmenter(config, OneSegment())


@pytest.fixture(scope="module")
def openai() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI().start()
    yield fake
    fake.stop()


def test_vlm_cache_on_s3_is_replayed_by_a_new_segmenter(openai, s3_prefix):
    url = f"{s3_prefix}/la/droid/vlm_cache"
    openai.script("s3cache", [Reply(VALID)])
    first = make_segmenter(openai, "s3cache")
    first.cache = fsspec.get_mapper(url, create=True)  # as the la pipeline opens the vlm_cache option
    expected = first.segment(make_item())
    fs, path = fsspec.core.url_to_fs(url)
    fs.invalidate_cache()
    assert [p.rsplit(".", 1)[-1] for p in fs.ls(path)] == ["json"]
    again = make_segmenter(openai, "s3cache")
    again.cache = fsspec.get_mapper(url)
    assert again.segment(make_item()) == expected
    assert openai.counts["s3cache"] == 1
    assert again.ledger.episode("ep0").cache_hits == 1


def test_llm_reply_cache_on_s3_round_trips(s3_prefix):
    cache = ReplyCache(f"{s3_prefix}/pixel/phrases")
    cache["pick the red cup\nplease"] = "red cup"
    assert ReplyCache(f"{s3_prefix}/pixel/phrases")["pick the red cup\nplease"] == "red cup"
