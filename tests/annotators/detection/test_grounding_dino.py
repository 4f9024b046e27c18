"""The transformers backend on a tiny random-weight model loaded through the real loading path."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from annotators.detection import DetectorConfig, make_detector  # noqa: E402
from annotators.weights import MissingWeightsError, resolve_weights  # noqa: E402


def images(n: int, seed: int = 0, shape=(48, 64, 3)) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, shape, dtype=np.uint8) for _ in range(n)]


@pytest.fixture(scope="module")
def detector(tiny_grounding_dino):
    return make_detector("transformers", DetectorConfig(model=str(tiny_grounding_dino), device="cpu",
                                                        box_threshold=0.0, text_threshold=0.0, batch_size=2))


def test_missing_weights_error_names_model_places_and_fetch_command(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(MissingWeightsError) as info:
        make_detector("transformers", DetectorConfig(model="IDEA-Research/grounding-dino-tiny", device="cpu"))
    message = str(info.value)
    assert "IDEA-Research/grounding-dino-tiny" in message and "Hugging Face cache" in message
    assert "huggingface-cli download IDEA-Research/grounding-dino-tiny" in message


def test_folder_without_config_is_refused(tmp_path):
    with pytest.raises(MissingWeightsError, match="config.json"):
        resolve_weights(str(tmp_path), "Grounding DINO")


def test_device_preprocessing_matches_the_processor(detector):
    batch = images(2)
    pixels, mask = detector.pixel_batch(batch)
    reference = detector.processor(images=batch, text=["cup.", "cup."], return_tensors="pt")
    assert pixels.shape == reference["pixel_values"].shape
    assert torch.equal(mask, reference["pixel_mask"])
    # PIL resizes in uint8, we resize in float: differences are rounding-sized
    assert (pixels - reference["pixel_values"]).abs().mean() < 0.02


def test_postprocessing_matches_the_processors_boxes_and_scores(detector):
    batch, prompts = images(2), ["red block.", "eggplant."]
    pixels, mask = detector.pixel_batch(batch)
    text = detector.text_batch(prompts)
    outputs = detector.forward(pixels, mask, text)
    ours = detector.postprocess(outputs, text["input_ids"], [im.shape[:2] for im in batch])
    theirs = detector.processor.post_process_grounded_object_detection(
        outputs, text["input_ids"], threshold=0.0, text_threshold=0.0, target_sizes=[im.shape[:2] for im in batch]
    )
    for mine, ref in zip(ours, theirs):
        order = ref["scores"].argsort(descending=True)[: detector.config.max_detections]
        np.testing.assert_allclose(mine.confidence, ref["scores"][order].numpy(), rtol=1e-5)
        np.testing.assert_allclose(mine.xyxy, ref["boxes"][order].clamp(min=0).numpy(), atol=1e-3)


def test_batch_of_padded_prompts_equals_one_at_a_time(detector):
    batch = images(3, 1)
    prompts = ["cup.", "red block.", "the yellow basket."]  # three text lengths: the short ones are padded
    batched = detector.detect(batch, prompts)
    single = [detector.detect([im], [p])[0] for im, p in zip(batch, prompts)]
    for a, b in zip(batched, single):
        np.testing.assert_allclose(a.confidence, b.confidence, atol=1e-4)
        np.testing.assert_allclose(a.xyxy, b.xyxy, atol=0.05)


def test_images_of_other_sizes_are_padded_bottom_right_with_a_mask(detector):
    # Like the processor: the backbone sees the padding, so results of padded images are not
    # bit-equal to single runs; the pipeline batches frames of one camera, which share a size.
    batch = images(1, 1, (48, 64, 3)) + images(1, 2, (64, 40, 3))
    pixels, mask = detector.pixel_batch(batch)
    alone, _ = detector.pixel_batch(batch[1:])
    h, w = alone.shape[-2:]
    assert torch.allclose(pixels[1, :, :h, :w], alone[0]) and mask[1].sum() == h * w
    assert (pixels[1, :, h:, :] == 0).all() and (pixels[1, :, :, w:] == 0).all()


@pytest.mark.parametrize("cap", [1, 3])
def test_detections_are_capped_and_inside_the_image(tiny_grounding_dino, cap):
    det = make_detector("transformers", DetectorConfig(model=str(tiny_grounding_dino), device="cpu",
                                                       box_threshold=0.0, text_threshold=0.0, max_detections=cap))
    out = det.detect(images(2), ["cup.", "cup."])
    assert all(len(d) == cap for d in out)
    for d in out:
        assert (d.xyxy >= 0).all() and (d.xyxy[:, [0, 2]] <= 64).all() and (d.xyxy[:, [1, 3]] <= 48).all()
        assert list(d.confidence) == sorted(d.confidence, reverse=True)


def test_thresholds_above_every_score_give_no_box(tiny_grounding_dino):
    det = make_detector("transformers", DetectorConfig(model=str(tiny_grounding_dino), device="cpu", box_threshold=1.0))
    assert [len(d) for d in det.detect(images(2), ["cup.", "lid."])] == [0, 0]


def test_empty_input_gives_no_detections(detector):
    assert detector.detect([], []) == []
