"""The la pipeline with the VLM segmenter against a fake OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

import json

import numpy as np
import pytest

from datasets_cards import Episode, FrameSequence, load_source_card
from pipelines.base import make_pipeline
from tests.annotators.segments.fake_openai import FakeOpenAI, Reply, halves_answer
from tests.annotators.segments.segment_factories import PICK_AND_PLACE, phase_trajectory

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def server():
    fake = FakeOpenAI().start()
    yield fake
    fake.stop()


def episode(index: int = 0, corrupt: bool = False) -> Episode:
    item, _ = phase_trajectory(PICK_AND_PLACE, seed=index)
    t = item.num_frames
    rng = np.random.default_rng(index)
    frames = {c: FrameSequence.from_array(rng.integers(0, 255, (t, 36, 64, 3), dtype=np.uint8))
              for c in ("exterior_1_left", "wrist_left")}
    if corrupt:  # a camera whose JPEGs do not decode
        frames["wrist_left"] = FrameSequence([b"not a jpeg"] * t)
    actions = np.concatenate([item.arm_state, item.gripper[:, None]], axis=1)
    return Episode(f"ep{index}", "droid", "put the cup in the bowl", item.fps, frames, item.arm_state, item.gripper,
                   actions)


def vlm_pipeline(server, monkeypatch, model: str, **vlm):
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "test")
    monkeypatch.setenv("LA_VLM_MODEL", model)
    settings = {"backoff_base_s": 0.001, "backoff_max_s": 0.005, "max_output_retries": 1, **vlm}
    return make_pipeline("la", load_source_card("droid"), {"segmenter": "vlm", "vlm": settings})


def test_vlm_rows_carry_the_kinematic_cross_check_and_tokens(server, monkeypatch):
    server.script("la-valid", [Reply(halves_answer("move", "lift"), prompt_tokens=1200, completion_tokens=80)])
    pipe = vlm_pipeline(server, monkeypatch, "la-valid")
    rows = pipe.annotate(episode())
    assert [r["subaction"] for r in rows] == ["move", "lift"] and {r["segmenter"] for r in rows} == {"vlm"}
    assert rows[0]["start"] == 0 and rows[-1]["end"] == 135
    assert rows[0]["agreement"] is True  # the kinematic segmenter also starts with a move
    assert rows[1]["agreement"] is False and rows[1]["kinematic_subaction"] != "lift"
    stats = pipe.unit_stats(rows)
    assert stats["tokens"]["input_tokens"] >= 1200 and stats["tokens"]["requests"] >= 1


def test_invalid_vlm_output_falls_back_to_flagged_kinematic_rows(server, monkeypatch):
    server.script("la-broken", [Reply("this is not json")])
    rows = vlm_pipeline(server, monkeypatch, "la-broken").annotate(episode())
    assert {r["segmenter"] for r in rows} == {"vlm_fallback"}
    assert all(r["flags"] for r in rows) and all(r["agreement"] for r in rows)


def test_episodes_wait_on_the_endpoint_together_but_never_more_than_max_in_flight(server, monkeypatch):
    server.script("la-many", [Reply(halves_answer("move", "lift"), delay_s=0.3)])
    pipe = vlm_pipeline(server, monkeypatch, "la-many", max_in_flight=3)
    results = list(pipe.annotate_many(episode(i) for i in range(6)))
    assert [e.episode_id for e, _ in results] == [f"ep{i}" for i in range(6)]  # input order
    assert all(rows[0]["source_episode_id"] == e.episode_id for e, rows in results)
    assert 2 <= server.peak_in_flight <= 3


def test_an_undecodable_episode_is_returned_as_its_error_and_the_others_go_on(server, monkeypatch):
    server.script("la-corrupt", [Reply(halves_answer("move", "lift"))])
    pipe = vlm_pipeline(server, monkeypatch, "la-corrupt", max_in_flight=2)
    results = list(pipe.annotate_many([episode(0), episode(1, corrupt=True), episode(2)]))
    assert [type(r).__name__ for _, r in results] == ["list", "FrameDecodeError", "list"]
    assert "undecodable frame" in results[1][1].reason
    assert {r["source_episode_id"] for r in results[2][1]} == {"ep2"}


def test_the_ledger_reaches_manifest_and_card_and_a_cached_rerun_pays_nothing(server, monkeypatch, tmp_path):
    from pipelines.flows import annotate as flow_module
    from tests.pipelines.la.conftest import SYNTHETIC_SOURCE, synthetic_format, write_synthetic_card

    server.script("la-ledger", [Reply(halves_answer("move", "lift"), prompt_tokens=1500, completion_tokens=90,
                                                cached_prompt_tokens=1000)])
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "test")
    monkeypatch.setenv("LA_VLM_MODEL", "la-ledger")
    card_file = write_synthetic_card(tmp_path)
    options = {"segmenter": "vlm", "vlm_cache": str(tmp_path / "cache"), "review": False, "plots": 0}

    def run(out: str) -> dict:
        with synthetic_format():
            flow_module.annotate(source=card_file, pipeline="la", out=str(tmp_path / out), episodes_per_shard=2,
                                 options=options)
        return json.loads((tmp_path / out / "la" / SYNTHETIC_SOURCE / "manifest.json").read_text())["stats"]["tokens"]

    first = run("first")
    assert (first["input_tokens"], first["output_tokens"], first["cache_hits"]) == (3 * 1500, 3 * 90, 0)
    assert first["provider_cached_input_tokens"] == 3 * 1000  # the endpoint's prefix cache, reported apart
    assert (first["episodes"], first["input_per_episode"], first["output_per_episode"]) == (3, 1500, 90)
    card = (tmp_path / "first" / "la" / SYNTHETIC_SOURCE / "card.md").read_text()
    assert "## VLM tokens" in card and "1500.0 input / 90.0 output" in card
    assert "served 3000 of the input tokens from its prefix cache" in card

    # Another output folder, same cache: no request is sent, the cost per episode is still known.
    requests_before = server.counts["la-ledger"]
    again = run("again")
    assert server.counts["la-ledger"] == requests_before
    assert (again["input_tokens"], again["requests"], again["cache_hits"]) == (0, 0, 3)
    assert (again["cached_input_tokens"], again["input_per_episode"]) == (3 * 1500, 1500)
    assert again["provider_cached_input_tokens"] == 0
