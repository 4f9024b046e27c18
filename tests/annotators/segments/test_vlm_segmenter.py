"""VlmSegmenter against a fake OpenAI-compatible server on 127.0.0.1 (scenarios chosen by model name)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np
import pytest
from fake_openai import FakeOpenAI, Reply, halves_answer

from annotators.segments.base import Segment, SegmentationInput
from annotators.segments.vlm import VlmConfig, VlmSegmenter
from annotators.segments.vlm.ledger import TokenLedger

pytestmark = pytest.mark.server

FPS = 15.0
VALID = json.dumps([
    {"subaction": "move", "instruction": "move the gripper forward and down", "start": 0.0, "end": 1.4},
    {"subaction": "grasp", "instruction": "align with and grasp the object", "start": 1.4, "end": 2.0},
    {"subaction": "lift", "instruction": "lift the object upward while holding it", "start": 2.0, "end": 4.0},
])
VALID_SPANS = [(0, 21, "move"), (21, 30, "grasp"), (30, 60, "lift")]


class StubFallback:
    """Stands in for the kinematic segmenter: one segment per third of the episode."""

    name = "kinematic"

    def __init__(self, labels: tuple[str, ...] = ("move", "grasp", "lift")) -> None:
        self.labels = labels

    def segment(self, item: SegmentationInput) -> list[Segment]:
        n, k = item.num_frames, len(self.labels)
        edges = [round(i * n / k) for i in range(k + 1)]
        return [Segment(a, b, lab, f"{lab} something") for a, b, lab in zip(edges, edges[1:], self.labels)]


def make_item(num_frames: int = 60, episode_id: str = "ep0", seed: int = 0) -> SegmentationInput:
    rng = np.random.default_rng(seed)
    frames = [rng.integers(0, 256, (36, 64, 3), dtype=np.uint8) for _ in range(num_frames)]
    wrist = [rng.integers(0, 256, (36, 64, 3), dtype=np.uint8) for _ in range(num_frames)]
    return SegmentationInput(
        episode_id=episode_id, task="put the cup on the plate", fps=FPS,
        arm_state=rng.normal(size=(num_frames, 6)), gripper=np.zeros(num_frames),
        keyframe_hints=("1.33s: gripper_close", "2.67s: static"), keyframes=(20, 40),
        frames={"exterior_1_left": ("exterior", frames), "wrist_left": ("wrist", wrist)},
    )


@pytest.fixture(scope="session")
def server() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI().start()
    yield fake
    fake.stop()


def make_segmenter(server: FakeOpenAI, model: str, **settings: object) -> VlmSegmenter:
    settings = {"backoff_base_s": 0.001, "backoff_max_s": 0.005, "timeout_s": 10.0, "cross_check": False,
                **settings}
    config = VlmConfig(base_urls=(server.base_url,), api_key="test", model=model, **settings)
    return VlmSegmenter(config, StubFallback())


def spans(segments: list[Segment]) -> list[tuple[int, int, str]]:
    return [(s.start, s.end, s.subaction) for s in segments]


def test_empty_episode_makes_no_request(server: FakeOpenAI) -> None:
    server.script("empty", [Reply(VALID)])
    assert make_segmenter(server, "empty").segment(make_item(num_frames=0)) == []
    assert server.counts["empty"] == 0


def test_valid_answer_becomes_contiguous_vlm_segments(server: FakeOpenAI) -> None:
    server.script("valid", [Reply(VALID)])
    segments = make_segmenter(server, "valid").segment(make_item())
    assert spans(segments) == VALID_SPANS
    assert {s.segmenter for s in segments} == {"vlm"}
    assert server.counts["valid"] == 1


def test_request_carries_every_view_as_jpeg_and_the_keyframe_cues(server: FakeOpenAI) -> None:
    server.script("inspect", [Reply(VALID)])
    make_segmenter(server, "inspect").segment(make_item())
    parts = server.requests["inspect"][0]["messages"][1]["content"]
    urls = [p["image_url"]["url"] for p in parts if p["type"] == "image_url"]
    text = " ".join(p["text"] for p in parts if p["type"] == "text")
    assert urls and all(u.startswith("data:image/jpeg;base64,") for u in urls)
    assert "View 'exterior'" in text and "View 'wrist'" in text
    assert "1.33s: gripper_close" in text and "put the cup on the plate" in text
    system = server.requests["inspect"][0]["messages"][0]["content"]
    assert "wrist_rotate" in system  # the vocabulary and its definitions: the fixed prefix


def test_the_fixed_prefix_comes_first_and_is_the_same_for_every_episode(server: FakeOpenAI) -> None:
    server.script("prefix-first", [Reply(halves_answer())])
    segmenter = make_segmenter(server, "prefix-first")
    segmenter.segment(make_item(episode_id="a", seed=1))
    other = make_item(num_frames=90, episode_id="b", seed=2)
    other.task = "open the drawer"
    segmenter.segment(other)
    first, second = (r["messages"] for r in server.requests["prefix-first"])
    assert first[0]["role"] == "system" and first[0] == second[0]  # byte-identical: a server caches it
    for word in ("Primitive definitions", "Category rules", "Decomposition examples", '"subaction"'):
        assert word in first[0]["content"]
    user = json.dumps(second[1]["content"])
    assert "open the drawer" in user and "Primitive definitions" not in user and "6.00s" not in first[0]["content"]
    assert "Time range to cover: start 0.00, end 6.00." in second[1]["content"][-1]["text"]


def test_the_old_layout_keeps_the_rules_after_the_images(server: FakeOpenAI) -> None:
    server.script("old-layout", [Reply(VALID)])
    make_segmenter(server, "old-layout", prefix_first=False).segment(make_item())
    system, user = server.requests["old-layout"][0]["messages"]
    assert "Primitive definitions" not in system["content"]
    assert "Primitive definitions" in user["content"][-1]["text"]


def test_the_kinematic_proposal_is_the_cue_and_frames_centre_on_its_boundaries(server: FakeOpenAI) -> None:
    server.script("cue", [Reply(VALID)])
    segmenter = make_segmenter(server, "cue", uniform_fps=0.25, keyframe_offset_s=0.0, skip_static=False)
    item = make_item()  # StubFallback: move 0-20, grasp 20-40, lift 40-60 (1.33 s, 2.67 s)
    segmenter.segment(item)
    text = server.requests["cue"][0]["messages"][1]["content"][-1]["text"]
    assert "Kinematic proposal:\n0.00-1.33 move\n1.33-2.67 grasp\n2.67-4.00 lift" in text
    assert "1.33s: gripper_close" in text and "2.67s: static" not in text  # static events are the proposal's
    assert segmenter.frame_indices(item) == [0, 20, 40, 59]  # window ends, the two boundaries (grid 4 s)
    off = make_segmenter(server, "cue", uniform_fps=0.25, keyframe_offset_s=0.0, kinematic_cue=False)
    assert off.frame_indices(item) == [0, 20, 40, 59]  # here the keyframes (20, 40) are the same frames
    assert "Kinematic proposal" not in json.dumps(off.window_requests(item))


def test_no_uniform_frames_inside_the_proposals_resting_stretches(server: FakeOpenAI) -> None:
    item = make_item(num_frames=150)
    item.keyframes, item.keyframe_hints = (), ()
    resting = make_segmenter(server, "unused", uniform_fps=1.0, keyframe_offset_s=0.0, kinematic_cue=False)
    resting.fallback = StubFallback(("move", "wait", "lift"))  # wait covers frames 50-100
    shown = resting.frame_indices(item)
    assert not [i for i in shown if 50 < i < 99] and {0, 15, 30, 45, 105, 120, 135, 149} <= set(shown)
    resting.config = VlmConfig(**{**resting.config.as_dict(), "api_key": "t", "skip_static": False})
    assert {60, 75, 90} <= set(resting.frame_indices(item))


def test_sheets_are_whole_patches_and_balanced(server: FakeOpenAI) -> None:
    import base64

    import cv2

    server.script("patches", [Reply(VALID)])
    segmenter = make_segmenter(server, "patches", uniform_fps=2.0, frame_size=(320, 180), tile_scale=0.5)
    segmenter.segment(make_item(num_frames=60))  # 8 frames a camera at 2 fps over 4 s
    parts = server.requests["patches"][0]["messages"][1]["content"]
    images = [cv2.imdecode(np.frombuffer(base64.b64decode(p["image_url"]["url"].split(",", 1)[1]), np.uint8),
                           cv2.IMREAD_COLOR) for p in parts if p["type"] == "image_url"]
    assert len(images) == 2  # one sheet per camera
    for image in images:
        h, w = image.shape[:2]
        assert h % 32 == 0 and w % 32 == 0 and (w // 160, h // 96) == (4, 2)  # 160×96 cells, 4 + 4


def test_malformed_answer_is_retried_with_the_error_then_accepted(server: FakeOpenAI) -> None:
    server.script("malformed-once", [Reply("[{'subaction': 'move'"), Reply(VALID)])
    segments = make_segmenter(server, "malformed-once").segment(make_item())
    assert spans(segments) == VALID_SPANS
    assert server.counts["malformed-once"] == 2
    retry = server.requests["malformed-once"][1]["messages"]
    assert retry[-2]["role"] == "assistant" and "invalid" in retry[-1]["content"]


OUT_OF_RANGE = json.dumps([{"subaction": "move", "instruction": "move", "start": 0.0, "end": 9.0}])
UNKNOWN_LABEL = json.dumps([{"subaction": "dance", "instruction": "dance", "start": 0.0, "end": 4.0}])
GAP = json.dumps([{"subaction": "move", "instruction": "move", "start": 0.0, "end": 1.0},
                  {"subaction": "lift", "instruction": "lift", "start": 3.0, "end": 4.0}])


@pytest.mark.parametrize(("reply", "flag"), [
    (Reply(""), "vlm_invalid_json"),
    (Reply("not json at all"), "vlm_invalid_json"),
    (Reply(VALID[:40], finish_reason="length"), "vlm_truncated"),
    (Reply("[]"), "vlm_invalid_schema"),
    (Reply(UNKNOWN_LABEL), "vlm_invalid_schema"),
    (Reply(OUT_OF_RANGE), "vlm_out_of_range"),
    (Reply(GAP), "vlm_gap"),
])
def test_persistently_invalid_answer_falls_back_flagged_after_bounded_retries(
        server: FakeOpenAI, reply: Reply, flag: str) -> None:
    model = f"invalid-{flag}-{len(server.counts)}"
    server.script(model, [reply])
    item = make_item()
    segments = make_segmenter(server, model, max_output_retries=2).segment(item)
    assert spans(segments) == spans(StubFallback().segment(item))
    assert all(s.segmenter == "vlm_fallback" and s.flags == (flag,) for s in segments)
    assert server.counts[model] == 3


def test_fallback_to_the_kinematic_segmenter_gives_a_flagged_contiguous_cover(server: FakeOpenAI) -> None:
    from annotators.segments.kinematic import KinematicSegmenter

    server.script("kinematic-fallback", [Reply("nope")])
    config = VlmConfig(base_urls=(server.base_url,), api_key="t", model="kinematic-fallback", max_output_retries=0)
    item = make_item()
    segments = VlmSegmenter(config, KinematicSegmenter()).segment(item)
    assert segments[0].start == 0 and segments[-1].end == item.num_frames
    assert all(a.end == b.start for a, b in zip(segments, segments[1:]))
    assert all(s.segmenter == "vlm_fallback" and "vlm_invalid_json" in s.flags for s in segments)


def test_rate_limit_and_server_error_are_retried_with_backoff(server: FakeOpenAI) -> None:
    server.script("busy", [Reply(status=429), Reply(status=500), Reply(VALID)])
    segmenter = make_segmenter(server, "busy")
    segments = segmenter.segment(make_item())
    assert spans(segments) == VALID_SPANS
    assert server.counts["busy"] == 3
    assert segmenter.ledger.total().requests == 1  # only the answered request is billed


def test_endpoint_down_after_bounded_retries_falls_back_with_api_error(server: FakeOpenAI) -> None:
    server.script("down", [Reply(status=503)])
    segments = make_segmenter(server, "down", max_api_retries=2).segment(make_item())
    assert {s.segmenter for s in segments} == {"vlm_fallback"}
    assert all(s.flags == ("vlm_api_error",) for s in segments)
    assert server.counts["down"] == 3


def test_rerun_with_the_same_cache_makes_zero_requests(server: FakeOpenAI) -> None:
    server.script("cached", [Reply(VALID, prompt_tokens=700, completion_tokens=70)])
    first = make_segmenter(server, "cached")
    expected = first.segment(make_item())
    again = make_segmenter(server, "cached")
    again.cache = first.cache
    assert again.segment(make_item()) == expected
    assert server.counts["cached"] == 1
    tokens = again.ledger.episode("ep0")
    assert (tokens.requests, tokens.input_tokens, tokens.cache_hits, tokens.cached_input_tokens) == (0, 0, 1, 700)


def test_directory_cache_survives_a_new_process_and_ignores_a_cut_file(server: FakeOpenAI, tmp_path) -> None:
    fsspec = pytest.importorskip("fsspec")
    server.script("disk", [Reply(VALID)])
    first = make_segmenter(server, "disk")
    first.cache = fsspec.get_mapper(str(tmp_path / "cache"), create=True)
    expected = first.segment(make_item())
    files = list((tmp_path / "cache").iterdir())
    assert [f.suffix for f in files] == [".json"]
    again = make_segmenter(server, "disk")
    again.cache = fsspec.get_mapper(str(tmp_path / "cache"))
    assert again.segment(make_item()) == expected and server.counts["disk"] == 1
    files[0].write_text('{"text": "[{')  # a write cut short by a killed run: ask again
    assert again.segment(make_item()) == expected and server.counts["disk"] == 2


def test_invalid_answers_are_never_cached(server: FakeOpenAI) -> None:
    server.script("nocache", [Reply("oops")])
    segmenter = make_segmenter(server, "nocache", max_output_retries=0)
    segmenter.segment(make_item())
    assert segmenter.cache == {}


def test_ledger_sums_usage_per_episode_and_in_total(server: FakeOpenAI) -> None:
    server.script("ledger", [Reply(halves_answer(), prompt_tokens=1200, completion_tokens=90)])
    segmenter = make_segmenter(server, "ledger")
    items = [make_item(episode_id=f"ep{i}", seed=i) for i in range(3)]
    results = list(segmenter.segment_many(items, max_in_flight=2))
    assert len(results) == 3 and all(results)
    ledger = segmenter.ledger.as_dict()
    assert ledger["total"]["input_tokens"] == 3 * 1200 and ledger["total"]["output_tokens"] == 3 * 90
    assert ledger["episodes"] == 3 and ledger["by_episode"]["ep1"]["input_tokens"] == 1200
    assert ledger["per_episode_mean"]["output_tokens"] == 90


def test_segment_many_keeps_input_order(server: FakeOpenAI) -> None:
    server.script("order", [Reply(halves_answer())])
    items = [make_item(num_frames=30 + 15 * i, episode_id=f"ep{i}", seed=i) for i in range(4)]
    results = list(make_segmenter(server, "order").segment_many(items, max_in_flight=3))
    assert [r[-1].end for r in results] == [it.num_frames for it in items]


def test_requests_rotate_over_several_base_urls(server: FakeOpenAI) -> None:
    server.script("robin", [Reply(halves_answer())])
    urls = (server.base_url, f"http://localhost:{server.port}/v1")
    config = VlmConfig(base_urls=urls, api_key="test", model="robin", cross_check=False)
    segmenter = VlmSegmenter(config, StubFallback())
    before = server.hosts.copy()
    list(segmenter.segment_many([make_item(episode_id=f"ep{i}", seed=i) for i in range(4)], max_in_flight=1))
    used = server.hosts - before
    assert used[f"127.0.0.1:{server.port}"] == 2 and used[f"localhost:{server.port}"] == 2


def test_long_episode_is_split_into_windows_and_stitched_into_one_cover(server: FakeOpenAI) -> None:
    server.script("windows", [Reply(halves_answer("move", "transport"))])
    item = make_item(num_frames=300)  # 20 s
    segments = make_segmenter(server, "windows", window_s=8.0, window_overlap_s=2.0).segment(item)
    assert server.counts["windows"] == 3
    assert segments[0].start == 0 and segments[-1].end == 300
    assert all(a.end == b.start for a, b in zip(segments, segments[1:]))


def test_describe_first_grounds_the_segmentation_prompt(server: FakeOpenAI) -> None:
    description = json.dumps({"description": "0.0-1.4s: the gripper moves down"})
    server.script("describe", [Reply(description), Reply(VALID)])
    segments = make_segmenter(server, "describe", describe_first=True).segment(make_item())
    assert spans(segments) == VALID_SPANS
    assert server.counts["describe"] == 2
    assert "the gripper moves down" in json.dumps(server.requests["describe"][1]["messages"])


def test_cross_check_flags_labels_the_kinematic_segmenter_disagrees_with(server: FakeOpenAI) -> None:
    server.script("cross", [Reply(VALID)])
    config = VlmConfig(base_urls=(server.base_url,), api_key="t", model="cross", cross_check=True)
    segments = VlmSegmenter(config, StubFallback(("move", "move", "lift"))).segment(make_item())
    assert [s.flags for s in segments] == [(), ("kinematic_disagrees:move",), ()]


def test_taking_an_episode_from_the_ledger_starts_it_from_zero() -> None:
    ledger = TokenLedger()
    ledger.record("ep0", 1000, 50, cached=False)
    ledger.record("ep0", 1000, 50, cached=True)
    taken = ledger.take("ep0")
    assert (taken.input_tokens, taken.cache_hits, taken.cached_input_tokens) == (1000, 1, 1000)
    assert ledger.take("ep0").input_tokens == 0 and ledger.total().requests == 0


def test_provider_prefix_cache_hits_are_counted_apart_from_the_suites_own_cache(server: FakeOpenAI) -> None:
    # a server with prefix caching reports the reused prefix in usage.prompt_tokens_details.cached_tokens
    server.script("prefix", [Reply(VALID, prompt_tokens=1200, completion_tokens=80, cached_prompt_tokens=900)])
    first = make_segmenter(server, "prefix")
    first.segment(make_item())
    paid = first.ledger.episode("ep0")
    assert (paid.input_tokens, paid.provider_cached_input_tokens, paid.cached_input_tokens) == (1200, 900, 0)
    again = make_segmenter(server, "prefix")  # the suite's own response cache replays the answer
    again.cache = first.cache
    again.segment(make_item())
    replayed = again.ledger.episode("ep0")
    assert (replayed.input_tokens, replayed.provider_cached_input_tokens, replayed.cached_input_tokens) == (0, 0, 1200)


def test_a_usage_without_prompt_token_details_counts_no_provider_cache(server: FakeOpenAI) -> None:
    server.script("nodetails", [Reply(VALID, prompt_tokens=1000)])
    segmenter = make_segmenter(server, "nodetails")
    segmenter.segment(make_item())
    assert segmenter.ledger.as_dict()["total"]["provider_cached_input_tokens"] == 0


def test_the_ledger_never_counts_more_provider_cached_tokens_than_were_sent() -> None:
    ledger = TokenLedger()
    ledger.record("ep0", 500, 20, cached=False, provider_cached=800)
    ledger.record("ep0", 500, 20, cached=False, provider_cached=300)
    assert ledger.total().provider_cached_input_tokens == 800 and ledger.total().input_tokens == 1000
