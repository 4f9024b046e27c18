"""The pixel pipeline on in-memory episodes with stub models: geometry, rows, prompts, and every discard reason."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from annotators.segmentation import MaskResult, StubSegmenter, StubTracker
from annotators.segmentation.base import box_mask
from datasets_cards import EpisodeError, load_source_card
from datasets_cards.codecs import rle_to_mask
from pipelines.pixel.pipeline import PixelPipeline
from tests.pipelines.pixel.pixel_episodes import (
    CLOSE_AT,
    OBJECT_BOX,
    PROPOSAL,
    H,
    T,
    W,
    detector,
    episode,
    run_stage,
)


def pipeline(segmenter=None, find_object=True, **options) -> PixelPipeline:
    return PixelPipeline(load_source_card("fractal"), {"montage": 0, "detector": "stub", "segmenter": "stub", **options},
                         detector=detector(find_object), segmenter=segmenter or StubSegmenter(), tracker=StubTracker())


def annotate(pipe, episodes, tmp_path):
    run_stage(pipe, episodes, tmp_path)
    return list(pipe.annotate_many(episodes))


def test_one_row_per_frame_with_the_target_found_inside_the_gripper_proposal(tmp_path):
    pipe = pipeline()
    [(_, rows)] = annotate(pipe, [episode()], tmp_path)
    assert [r["frame_index"] for r in rows] == list(range(T))
    pa.Table.from_pylist(rows, schema=pipe.output.arrow_schema())  # raises on a schema mismatch
    g = rows[CLOSE_AT]
    assert g["first_close_frame"] == CLOSE_AT and g["flags"] == ["first_close"]
    assert g["proposal_box"] == PROPOSAL.tolist() and g["box"] == OBJECT_BOX.tolist()
    assert g["target_noun"] == "red block" and g["detector_score"] == pytest.approx(0.8)
    np.testing.assert_array_equal(rle_to_mask(g["mask"]), box_mask((H, W), OBJECT_BOX))
    assert g["box_prompt"] == OBJECT_BOX.tolist()
    assert all(rle_to_mask(g["mask"])[int(y), int(x)] for x, y in g["points"])
    assert all(r["flags"] == ["propagated"] for r in rows if r["frame_index"] != CLOSE_AT)
    assert [r["state"][0] for r in rows] == list(range(T))


def test_a_re_run_draws_the_same_prompts_and_other_episodes_draw_others(tmp_path):
    [(_, first)] = annotate(pipeline(), [episode()], tmp_path / "a")
    [(_, again)] = annotate(pipeline(), [episode()], tmp_path / "b")
    [(_, other)] = annotate(pipeline(), [episode("ep1")], tmp_path / "c")
    assert [r["points"] for r in first] == [r["points"] for r in again]
    assert first[0]["points"] != other[0]["points"]


def test_keep_first_close_writes_frame_g_alone(tmp_path):
    [(_, rows)] = annotate(pipeline(keep_frames="first_close"), [episode()], tmp_path)
    assert [r["frame_index"] for r in rows] == [CLOSE_AT]


def mask_answer(kind: str):
    def answer(_i: int, image: np.ndarray) -> MaskResult:
        mask = np.zeros(image.shape[:2], bool)
        if kind == "tiny":
            mask[26:28, 38:40] = True
        elif kind == "whole":
            mask[:] = True
        elif kind == "proposal":
            mask[0:40, 20:60] = True
        elif kind == "outside":
            mask[45:64, 0:15] = True
        return MaskResult(mask, 0.9)

    return answer


@pytest.mark.parametrize("kind, reason", [
    ("empty", "empty_mask"), ("tiny", "small_mask"), ("proposal", "mask_fills_proposal"),
    ("whole", "mask_fills_image"), ("outside", "mask_outside_proposal"),
])
def test_a_mask_failing_a_filter_quarantines_its_episode_with_the_reason(kind, reason, tmp_path):
    [(_, result)] = annotate(pipeline(StubSegmenter(mask_answer(kind))), [episode()], tmp_path)
    assert isinstance(result, EpisodeError) and result.reason.startswith(f"{reason}:")


def test_bad_episodes_get_their_reasons_and_the_others_their_rows(tmp_path):
    episodes = [episode("good"), episode("open", closes=False), episode("blank", blank_at=CLOSE_AT),
                episode("vague", instruction="do it"), episode("good2")]
    results = {e.episode_id: r for e, r in annotate(pipeline(batch_size=2), episodes, tmp_path)}
    assert len(results["good"]) == len(results["good2"]) == T
    assert results["open"].reason.startswith("no_close:")
    assert results["blank"].reason.startswith("blank_frame:")
    assert results["vague"].reason.startswith("no_target:")


def test_no_detection_in_the_proposal_is_no_box(tmp_path):
    [(_, result)] = annotate(pipeline(find_object=False), [episode()], tmp_path)
    assert isinstance(result, EpisodeError) and result.reason.startswith("no_box:")


def test_missing_weights_name_both_models_at_once(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    from annotators.weights import MissingWeightsError

    with pytest.raises(MissingWeightsError) as error:
        PixelPipeline(load_source_card("fractal"), {})
    message = str(error.value)
    assert "IDEA-Research/grounding-dino-tiny" in message and "facebook/sam2.1-hiera-tiny" in message
    assert message.count("download") >= 2 and "--option" in message


def test_an_llm_names_the_target_through_an_openai_compatible_endpoint_and_its_replies_are_cached(tmp_path, monkeypatch):
    import json

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)

    from tests.annotators.segments.fake_openai import FakeOpenAI, Reply

    server = FakeOpenAI().start()
    try:
        server.script("noun-model", [Reply(content=json.dumps({"object": "crimson cube", "destination": None}))])
        options = {"phrase_extractor": "llm", "llm_cache": str(tmp_path / "llm-cache"),
                   "llm": {"model": "noun-model", "base_url": server.base_url}}  # a local server: no key
        [(_, rows)] = annotate(pipeline(**options), [episode(instruction="pick up the red block")], tmp_path / "a")
        assert {r["target_noun"] for r in rows} == {"crimson cube"} and server.counts["noun-model"] == 1
        # A re-run (another worker, the same cache) asks nothing and gets the same noun.
        [(_, again)] = annotate(pipeline(**options), [episode(instruction="pick up the red block")], tmp_path / "b")
        assert {r["target_noun"] for r in again} == {"crimson cube"} and server.counts["noun-model"] == 1
    finally:
        server.stop()
