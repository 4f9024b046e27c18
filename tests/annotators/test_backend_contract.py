"""One contract per pluggable family, run over every name its registry answers to.

Families: detector backends (`DETECTORS`), phrase extractors (`PHRASE_EXTRACTORS`),
segmenters (`SEGMENTERS`) and task runners (`TASK_RUNNERS`). Each family keeps a
dict of per-backend factories and a test that it covers the registry's names, so
a backend registered without a factory here fails the suite. A backend whose
optional dependency is missing (ultralytics, prefect_dask, prefect_ray) is skipped.

Nothing is downloaded: Grounding DINO is a tiny random-weight model saved in a
temp folder, and the LLM / VLM endpoints are a fake OpenAI server on 127.0.0.1.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from annotators.detection import DETECTORS, Detections, DetectorConfig, make_detector
from annotators.phrases import PHRASE_EXTRACTORS, TargetPhrases, make_phrase_extractor
from annotators.segments import SEGMENTERS, VOCABULARY, Segment, SegmentationInput
from annotators.segments.kinematic import KinematicSegmenter
from datasets_cards import EpisodeError
from datasets_cards.params.la import LaParams
from pipelines.runners import TASK_RUNNERS, make_task_runner
from tests.annotators.segments.fake_openai import FakeOpenAI, Reply, halves_answer
from tests.annotators.segments.segment_factories import PICK_AND_PLACE, phase_trajectory


def _needs(module: str, backend: str) -> None:
    pytest.importorskip(module, reason=f"the {backend} backend needs the optional package {module!r}")


@pytest.fixture(scope="module")
def fake_openai() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI().start()
    yield server
    server.stop()


# ---- detectors ----------------------------------------------------------------------------------

H, W = 48, 64
MAX_DETECTIONS = 3
PROMPTS = ["red block.", "bowl."]


def _config(**overrides: Any) -> DetectorConfig:
    # thresholds 0: a random-weight model keeps boxes, so the bounds below are exercised, not vacuous
    return DetectorConfig(**{"device": "cpu", "box_threshold": 0.0, "text_threshold": 0.0,
                             "max_detections": MAX_DETECTIONS, "batch_size": 2, **overrides})


@pytest.fixture(scope="module")
def tiny_grounding_dino(tmp_path_factory) -> str:
    pytest.importorskip("torch")
    from tests.annotators.detection.tiny_grounding_dino import save_tiny_grounding_dino

    return str(save_tiny_grounding_dino(tmp_path_factory.mktemp("contract-grounding-dino")))


def _transformers(request: pytest.FixtureRequest):
    return make_detector("transformers", _config(model=request.getfixturevalue("tiny_grounding_dino")))


def _ultralytics(request: pytest.FixtureRequest):
    _needs("ultralytics", "ultralytics")
    import ultralytics

    from annotators.detection.ultralytics_backend import UltralyticsDetector

    # a random-weight YOLOv8n built from the packaged architecture yaml (no weights download)
    return UltralyticsDetector(_config(model="yolov8n.yaml"), model=ultralytics.YOLO("yolov8n.yaml"))


def _stub(request: pytest.FixtureRequest):
    return make_detector("stub", _config())


def _centre(request: pytest.FixtureRequest):
    return make_detector("centre", _config())


DETECTOR_FACTORIES: dict[str, Callable[[pytest.FixtureRequest], Any]] = {
    "transformers": _transformers,
    "ultralytics": _ultralytics,
    "stub": _stub,
    "centre": _centre,
}


def test_detector_factories_cover_every_registered_backend():
    assert set(DETECTOR_FACTORIES) == set(DETECTORS.names())


@pytest.fixture(scope="module", params=DETECTORS.names())
def detector(request):
    if request.param not in DETECTOR_FACTORIES:
        pytest.fail(f"detector backend {request.param!r} is registered but has no factory in DETECTOR_FACTORIES")
    return DETECTOR_FACTORIES[request.param](request)


def _images(n: int = 2, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (H, W, 3), dtype=np.uint8) for _ in range(n)]


def test_detect_on_no_images_returns_an_empty_list(detector):
    assert detector.detect([], []) == []


def test_detect_returns_one_detections_per_image_with_boxes_inside_and_confidences_in_unit_interval(detector):
    results = detector.detect(_images(), PROMPTS)
    assert isinstance(results, list) and len(results) == 2
    for result in results:
        assert isinstance(result, Detections)
        assert len(result) <= detector.config.max_detections == MAX_DETECTIONS
        x0, y0, x1, y1 = result.xyxy.T
        assert np.all((0 <= x0) & (x0 <= x1) & (x1 <= W)), result.xyxy
        assert np.all((0 <= y0) & (y0 <= y1) & (y1 <= H)), result.xyxy
        assert np.all((0 <= result.confidence) & (result.confidence <= 1)), result.confidence


@pytest.mark.parametrize("n_images, n_phrases", [(2, 1), (1, 2)])
def test_detect_with_different_numbers_of_images_and_phrases_raises_value_error(detector, n_images, n_phrases):
    with pytest.raises(ValueError):
        detector.detect(_images(n_images), PROMPTS[:1] * n_phrases)


# ---- phrase extractors --------------------------------------------------------------------------

PICK_INSTRUCTION = "pick up the red block and put it in the bowl"
LLM_MODEL = "contract-phrases"


def _llm_answer(request: dict) -> str:
    """What a well-behaved LLM answers: the targets, or no object when the instruction names none."""
    instruction = request["messages"][-1]["content"]
    if "red block" in instruction:
        return json.dumps({"object": "red block", "destination": "bowl"})
    return json.dumps({"object": "", "destination": None})


def _rules(request: pytest.FixtureRequest):
    return make_phrase_extractor("rules")


def _llm(request: pytest.FixtureRequest):
    _needs("openai", "llm")
    server: FakeOpenAI = request.getfixturevalue("fake_openai")
    server.script(LLM_MODEL, [Reply(_llm_answer)])
    return make_phrase_extractor("llm", model=LLM_MODEL, base_url=server.base_url, api_key="test", cache={})


PHRASE_FACTORIES: dict[str, Callable[[pytest.FixtureRequest], Any]] = {"rules": _rules, "llm": _llm}


def test_phrase_extractor_factories_cover_every_registered_extractor():
    assert set(PHRASE_FACTORIES) == set(PHRASE_EXTRACTORS.names())


@pytest.fixture(params=PHRASE_EXTRACTORS.names())
def phrase_extractor(request):
    if request.param not in PHRASE_FACTORIES:
        pytest.fail(f"phrase extractor {request.param!r} is registered but has no factory in PHRASE_FACTORIES")
    return PHRASE_FACTORIES[request.param](request)


def test_extractor_finds_a_non_empty_object_in_a_pick_and_place_instruction(phrase_extractor):
    phrases = phrase_extractor(PICK_INSTRUCTION)
    assert isinstance(phrases, TargetPhrases)
    assert isinstance(phrases.object, str) and phrases.object.strip()
    assert "block" in phrases.object


@pytest.mark.parametrize("instruction", ["", "   ", "the"])
def test_extractor_raises_value_error_on_an_instruction_naming_no_object(phrase_extractor, instruction):
    with pytest.raises(ValueError):
        phrase_extractor(instruction)


def test_extractor_raises_value_error_on_wait_which_names_no_object(phrase_extractor):
    try:
        result = phrase_extractor("wait")
    except ValueError:
        return
    raise AssertionError(f"'wait' names no object, got {result!r}")


# ---- segmenters ---------------------------------------------------------------------------------

VLM_MODEL = "contract-segments"


def _kinematic_as_the_la_pipeline_builds_it() -> KinematicSegmenter:
    params = LaParams()
    return KinematicSegmenter(params.kinematic, params.min_segment_frames)


def _la_settings() -> dict[str, Any]:
    params = LaParams()  # what LaPipeline._make_segmenter passes every factory
    return {"vlm_fps": params.vlm_fps, "frame_size": tuple(params.vlm_frame_size),
            "min_segment_frames": params.min_segment_frames}


def _kinematic_factory(request: pytest.FixtureRequest):
    return SEGMENTERS.get("kinematic")(_kinematic_as_the_la_pipeline_builds_it(), cache=None, **_la_settings())


def _vlm_factory(request: pytest.FixtureRequest):
    _needs("openai", "vlm")
    server: FakeOpenAI = request.getfixturevalue("fake_openai")
    monkeypatch: pytest.MonkeyPatch = request.getfixturevalue("monkeypatch")
    server.script(VLM_MODEL, [Reply(halves_answer("move", "grasp"))])
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "test")
    monkeypatch.setenv("LA_VLM_MODEL", VLM_MODEL)
    settings = {**_la_settings(), "timeout_s": 10.0, "backoff_base_s": 0.001, "backoff_max_s": 0.005}
    return SEGMENTERS.get("vlm")(_kinematic_as_the_la_pipeline_builds_it(), cache={}, **settings)


SEGMENTER_FACTORIES: dict[str, Callable[[pytest.FixtureRequest], Any]] = {
    "kinematic": _kinematic_factory,
    "vlm": _vlm_factory,
}


def test_segmenter_factories_cover_every_registered_segmenter():
    assert set(SEGMENTER_FACTORIES) == set(SEGMENTERS.names())


@pytest.fixture(params=SEGMENTERS.names())
def segmenter(request):
    if request.param not in SEGMENTER_FACTORIES:
        pytest.fail(f"segmenter {request.param!r} is registered but has no factory in SEGMENTER_FACTORIES")
    return SEGMENTER_FACTORIES[request.param](request)


def _pick_and_place() -> SegmentationInput:
    item, _ = phase_trajectory(PICK_AND_PLACE, seed=0)
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (36, 64, 3), dtype=np.uint8) for _ in range(item.num_frames)]
    return replace(item, frames={"exterior": ("exterior", frames)})


def _assert_cover(segments: list[Segment], num_frames: int) -> None:
    assert segments, "no segments"
    assert all(isinstance(s, Segment) for s in segments)
    assert segments[0].start == 0 and segments[-1].end == num_frames, [(s.start, s.end) for s in segments]
    assert all(a.end == b.start for a, b in itertools.pairwise(segments)), [(s.start, s.end) for s in segments]
    assert all(s.start < s.end for s in segments)
    assert {s.subaction for s in segments} <= set(VOCABULARY)


def test_segments_of_a_pick_and_place_are_a_contiguous_cover_in_the_vocabulary(segmenter):
    item = _pick_and_place()
    segments = segmenter.segment(item)
    _assert_cover(segments, item.num_frames)
    # a healthy backend answers itself (for vlm: the fake endpoint was used, not the kinematic fallback)
    assert not any(s.segmenter == "vlm_fallback" for s in segments), [s.flags for s in segments]


def test_a_one_frame_episode_is_covered_or_raises_episode_error(segmenter):
    full = _pick_and_place()
    item = replace(full, arm_state=full.arm_state[:1], gripper=full.gripper[:1],
                   frames={name: (view, frames[:1]) for name, (view, frames) in full.frames.items()})
    try:
        segments = segmenter.segment(item)
    except EpisodeError:
        return
    _assert_cover(segments, 1)


# ---- mask segmenters and video trackers (annotators.segmentation) -------------------------------

BOX = np.array([10, 8, 40, 30], np.float32)


@pytest.fixture(scope="module")
def tiny_sam2(tmp_path_factory) -> str:
    pytest.importorskip("torch")
    from tests.annotators.segmentation.tiny_sam import tiny_sam2_video

    return tiny_sam2_video(tmp_path_factory.mktemp("contract-sam2"))


def _sam_config(request: pytest.FixtureRequest, backend: str):
    from annotators.segmentation import SegmenterConfig

    model = request.getfixturevalue("tiny_sam2") if backend == "transformers" else "none"
    return SegmenterConfig(model=model, device="cpu", batch_size=2)


MASK_BACKENDS = ("transformers", "stub")  # each names a segmenter (SEGMENTERS) and a tracker (TRACKERS)


def test_mask_backend_list_covers_every_registered_segmenter_and_tracker():
    from annotators.segmentation import SEGMENTERS as MASKS
    from annotators.segmentation import TRACKERS

    assert set(MASK_BACKENDS) == set(MASKS.names()) == set(TRACKERS.names())


@pytest.fixture(scope="module", params=MASK_BACKENDS)
def mask_backend(request):
    from annotators.segmentation import make_segmenter, make_tracker

    config = _sam_config(request, request.param)
    return make_segmenter(request.param, config), make_tracker(request.param, config)


def test_segment_gives_one_full_size_boolean_mask_per_image_and_a_score(mask_backend):
    segmenter, _ = mask_backend
    results = segmenter.segment(_images(3), [BOX] * 3)
    assert len(results) == 3 and segmenter.segment([], []) == []
    for result in results:
        assert result.mask.shape == (H, W) and result.mask.dtype == bool and np.isfinite(result.score)
    with pytest.raises(ValueError):
        segmenter.segment(_images(2), [BOX])


def test_tracker_seeds_steps_round_trips_its_state_and_propagates(mask_backend):
    import torch

    _, tracker = mask_backend
    frames = np.stack(_images(4, seed=3))
    seeded = tracker.seed(frames[0], box=BOX)
    stepped = [tracker.step(frame) for frame in frames[1:3]]
    assert all(r.mask.shape == (H, W) and 0.0 <= r.score <= 1.0 for r in [seeded, *stepped])
    state = tracker.state_dict()
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    after = tracker.step(frames[3])
    tracker.load_state_dict(state)
    again = tracker.step(frames[3])
    assert np.array_equal(after.mask, again.mask) and after.score == pytest.approx(again.score)
    masks, scores = tracker.propagate(frames, 1, seeded.mask)
    assert masks.shape == (4, H, W) and scores.shape == (4,) and np.array_equal(masks[1], seeded.mask)


# ---- task runners -------------------------------------------------------------------------------

def _runner(name: str, extra: str | None = None) -> Callable[[], Any]:
    def build():
        if extra is not None:
            _needs(extra, name)
        return make_task_runner(name)
    return build


RUNNER_FACTORIES: dict[str, Callable[[], Any]] = {
    "threads": _runner("threads"),
    "dask": _runner("dask", "prefect_dask"),
    "ray": _runner("ray", "prefect_ray"),
}


def test_task_runner_factories_cover_every_registered_runner():
    assert set(RUNNER_FACTORIES) == set(TASK_RUNNERS.names())


@pytest.mark.parametrize("name", TASK_RUNNERS.names())
def test_make_task_runner_returns_a_prefect_task_runner(name):
    from prefect.task_runners import TaskRunner

    if name not in RUNNER_FACTORIES:
        pytest.fail(f"task runner {name!r} is registered but has no factory in RUNNER_FACTORIES")
    assert isinstance(RUNNER_FACTORIES[name](), TaskRunner)
