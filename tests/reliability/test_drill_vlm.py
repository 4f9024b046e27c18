"""Reliability drill, the hostile VLM server: bodies that are not chat completions, rejected
keys and requests, non-finite numbers in the answer, rate limits with Retry-After.

Each case scripts the fake OpenAI server (tests/annotators/segments/fake_openai.py) and asserts one
outcome: the episode quarantined with a reason while its batch goes on, the run stopped with one
line, the answer re-asked then the kinematic fallback flagged, or the wait the server asked for.
Waits are recorded by a patched sleep, never slept.
"""

from __future__ import annotations

import email.utils
import itertools
import json
import time
from collections.abc import Iterator

import numpy as np
import pytest

from annotators.segments.base import Segment, SegmentationInput
from annotators.segments.kinematic import KinematicSegmenter
from annotators.segments.vlm import VlmConfig, VlmSegmenter
from datasets_cards.errors import EpisodeError, RunAbortError
from tests.annotators.segments.fake_openai import FakeOpenAI, Reply, halves_answer

pytestmark = pytest.mark.server

FPS = 15.0
HTML = "<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n<body>nginx</body></html>"


def make_item(episode_id: str = "ep0", num_frames: int = 45, seed: int = 0) -> SegmentationInput:
    rng = np.random.default_rng(seed)
    frames = [rng.integers(0, 256, (24, 32, 3), dtype=np.uint8) for _ in range(num_frames)]
    return SegmentationInput(
        episode_id=episode_id, task="put the cup on the plate", fps=FPS,
        arm_state=rng.normal(size=(num_frames, 6)), gripper=np.zeros(num_frames),
        keyframe_hints=("1.00s: gripper_close",), keyframes=(15,),
        frames={"exterior_1_left": ("exterior", frames)},
    )


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI().start()
    yield fake
    fake.stop()


def make_segmenter(server: FakeOpenAI, model: str, **settings: object) -> tuple[VlmSegmenter, list[float]]:
    """A segmenter on `model`'s script whose backoff records its waits instead of sleeping."""
    settings = {"timeout_s": 10.0, "cross_check": False, **settings}
    config = VlmConfig(base_urls=(server.base_url,), api_key="test", model=model, **settings)
    segmenter = VlmSegmenter(config, KinematicSegmenter())
    waits: list[float] = []
    segmenter._backend.sleep = waits.append
    return segmenter, waits


def is_cover(segments: list[Segment], item: SegmentationInput) -> bool:
    return (bool(segments) and segments[0].start == 0 and segments[-1].end == item.num_frames
            and all(a.end == b.start for a, b in itertools.pairwise(segments)))


# --- 6. a body that is not a chat completion: that episode only ---------------------------------

@pytest.mark.parametrize(("bad", "says"), [
    (Reply(raw=HTML), "non-JSON body"),  # a proxy's error page with status 200
    (Reply(raw=HTML, content_type="application/json"), "not JSON"),  # ... that claims to be JSON
    (Reply(choices=[]), "no choices"),
    (Reply(choices=[{"index": 0, "finish_reason": "stop"}]), "without a message"),
], ids=["html", "html-as-json", "empty-choices", "no-message"])
def test_a_body_that_is_not_a_completion_quarantines_only_its_episode(
        server: FakeOpenAI, bad: Reply, says: str) -> None:
    model = f"bad-body-{says}"
    good = Reply(halves_answer())
    server.script(model, [good, bad, good])  # one request per episode, in order (one in flight)
    segmenter, _ = make_segmenter(server, model)
    items = [make_item(f"ep{i}", seed=i) for i in range(3)]
    results = list(segmenter.segment_many(items, max_in_flight=1))
    assert server.counts[model] == 3  # not retried, not re-asked: the body is no answer to fix
    assert is_cover(results[0], items[0]) and is_cover(results[2], items[2])
    assert {s.segmenter for s in results[0] + results[2]} == {"vlm"}
    error = results[1]
    assert isinstance(error, EpisodeError) and error.episode_id == "ep1"
    assert error.reason.startswith("vlm_bad_response: ") and says in error.reason
    assert server.base_url in error.reason and "\n" not in error.reason
    if bad.raw is not None:
        assert "502 Bad Gateway" in error.reason  # names what the endpoint sent


# --- 6. rejected key or request: the run stops with one line ------------------------------------

@pytest.mark.parametrize(("status", "fix"), [
    (401, "OPENAI_API_KEY"),
    (403, "OPENAI_API_KEY"),
    (400, "request settings"),
    (422, "request settings"),
])
def test_rejected_key_or_request_aborts_the_run_with_one_line(server: FakeOpenAI, status: int, fix: str) -> None:
    model = f"reject-{status}"
    server.script(model, [Reply(f"scripted {status}\nsecond line", status=status)])
    segmenter, waits = make_segmenter(server, model)
    items = [make_item(f"ep{i}", seed=i) for i in range(4)]
    with pytest.raises(RunAbortError) as err:
        list(segmenter.segment_many(items, max_in_flight=1))  # not turned into an EpisodeError
    line = str(err.value)
    assert f"HTTP {status}" in line and server.base_url in line and fix in line and "\n" not in line
    assert server.counts[model] == 1 and waits == []  # neither retried nor carried on to the next episode


def test_unknown_model_aborts_the_run_naming_the_model(server: FakeOpenAI) -> None:
    # the fake answers 404 to a model it has no script for, as vLLM does for an unknown model
    segmenter, _ = make_segmenter(server, "no-such-model")
    with pytest.raises(RunAbortError) as err:
        list(segmenter.segment_many([make_item(f"ep{i}", seed=i) for i in range(3)], max_in_flight=2))
    line = str(err.value)
    assert "HTTP 404" in line and "'no-such-model'" in line and "LA_VLM_MODEL" in line and "\n" not in line
    assert server.counts["no-such-model"] <= 2  # only what was already in flight


# --- 7. non-finite numbers are invalid output ---------------------------------------------------

def answer_with(end: str) -> str:
    return f'[{{"subaction": "move", "instruction": "move the gripper", "start": 0.0, "end": {end}}}]'


@pytest.mark.parametrize(("end", "flag"), [
    ("NaN", "vlm_invalid_json"), ("Infinity", "vlm_invalid_json"), ("-Infinity", "vlm_invalid_json"),
    ("1e400", "vlm_invalid_schema"),  # valid JSON that parses to inf
])
def test_non_finite_end_is_re_asked_then_falls_back_to_kinematic_with_the_flag(
        server: FakeOpenAI, end: str, flag: str) -> None:
    model = f"nonfinite-{end}"
    server.script(model, [Reply(answer_with(end))])
    segmenter, _ = make_segmenter(server, model, max_output_retries=1)
    item = make_item()
    segments = segmenter.segment(item)
    assert server.counts[model] == 2  # asked, then re-asked once
    assert "finite" in server.requests[model][1]["messages"][-1]["content"]  # told what was wrong
    expected = KinematicSegmenter().segment(item)
    assert [(s.start, s.end, s.subaction) for s in segments] == [(s.start, s.end, s.subaction) for s in expected]
    assert all(s.segmenter == "vlm_fallback" and flag in s.flags for s in segments)


def test_nan_answer_then_a_valid_retry_is_accepted(server: FakeOpenAI) -> None:
    valid = json.dumps([{"subaction": "move", "instruction": "move the gripper", "start": 0.0, "end": 1.5},
                        {"subaction": "grasp", "instruction": "grasp the cup", "start": 1.5, "end": 3.0}])
    server.script("nan-then-valid", [Reply(answer_with("NaN")), Reply(valid)])
    segmenter, _ = make_segmenter(server, "nan-then-valid")
    item = make_item()
    segments = segmenter.segment(item)
    assert server.counts["nan-then-valid"] == 2
    assert is_cover(segments, item) and [s.subaction for s in segments] == ["move", "grasp"]
    assert all(s.segmenter == "vlm" and not s.flags for s in segments)


# --- 8. 429: honour Retry-After (capped), count throttled requests --------------------------------

@pytest.mark.parametrize(("headers", "backoff_max_s", "waited"), [
    ({"Retry-After": "2"}, 30.0, 2.0),  # the server's wait, not our 1 s-based backoff
    ({"Retry-After": "2"}, 0.05, 0.05),  # capped by the configured maximum
    ({"retry-after-ms": "250", "Retry-After": "9"}, 30.0, 0.25),  # the finer header first
], ids=["seconds", "capped", "ms"])
def test_rate_limit_waits_for_retry_after_and_counts_throttled(
        server: FakeOpenAI, headers: dict, backoff_max_s: float, waited: float) -> None:
    model = f"throttle-{backoff_max_s}-{len(headers)}"
    throttled = Reply(status=429, headers=headers)
    server.script(model, [throttled, throttled, Reply(halves_answer())])
    segmenter, waits = make_segmenter(server, model, backoff_base_s=1.0, backoff_max_s=backoff_max_s)
    item = make_item()
    segments = segmenter.segment(item)
    assert is_cover(segments, item) and {s.segmenter for s in segments} == {"vlm"}
    assert waits == pytest.approx([waited, waited])
    tokens = segmenter.ledger.episode("ep0")
    assert (tokens.throttled, tokens.requests) == (2, 1)
    assert segmenter.ledger.as_dict()["total"]["throttled"] == 2
    assert segmenter.ledger.take("ep0").throttled == 2  # what the la pipeline sums into the manifest


def test_retry_after_as_an_http_date_is_honoured(server: FakeOpenAI) -> None:
    when = email.utils.formatdate(time.time() + 3, usegmt=True)
    server.script("throttle-date", [Reply(status=429, headers={"Retry-After": when}), Reply(halves_answer())])
    segmenter, waits = make_segmenter(server, "throttle-date", backoff_base_s=0.001, backoff_max_s=30.0)
    segmenter.segment(make_item())
    assert len(waits) == 1 and 1.0 < waits[0] <= 3.0  # an HTTP date has whole seconds


def test_rate_limit_without_retry_after_uses_the_exponential_backoff(server: FakeOpenAI) -> None:
    throttled = Reply(status=429)
    server.script("throttle-bare", [throttled, throttled, throttled, Reply(halves_answer())])
    segmenter, waits = make_segmenter(server, "throttle-bare", backoff_base_s=1.0, backoff_max_s=30.0)
    segmenter.segment(make_item())
    # min(max, base·2^attempt) · uniform(0.5, 1)
    assert len(waits) == 3 and all(0.5 * 2 ** a <= w <= 2 ** a for a, w in enumerate(waits))
    assert segmenter.ledger.episode("ep0").throttled == 3


def test_rate_limit_that_never_ends_falls_back_and_counts_every_429(server: FakeOpenAI) -> None:
    server.script("throttle-forever", [Reply(status=429, headers={"Retry-After": "1"})])
    segmenter, waits = make_segmenter(server, "throttle-forever", max_api_retries=2)
    segments = segmenter.segment(make_item())
    assert {s.segmenter for s in segments} == {"vlm_fallback"} and all("vlm_api_error" in s.flags for s in segments)
    assert waits == [1.0, 1.0] and server.counts["throttle-forever"] == 3
    assert segmenter.ledger.episode("ep0").throttled == 3


def test_throttled_count_is_per_episode_in_a_batch(server: FakeOpenAI) -> None:
    throttled = Reply(status=429, headers={"Retry-After": "0"})
    server.script("throttle-batch", [throttled, Reply(halves_answer())])  # only the first request is throttled
    segmenter, _ = make_segmenter(server, "throttle-batch")
    items = [make_item(f"ep{i}", seed=i) for i in range(3)]
    results = list(segmenter.segment_many(items, max_in_flight=1))
    assert all(is_cover(r, it) for r, it in zip(results, items))
    by_episode = segmenter.ledger.as_dict()["by_episode"]
    assert [by_episode[f"ep{i}"]["throttled"] for i in range(3)] == [1, 0, 0]
    assert json.dumps(segmenter.ledger.as_dict())  # still plain data for the manifest
