import numpy as np
import pytest

from annotators.segmentation import (
    SEGMENTERS,
    MaskResult,
    SegmenterConfig,
    StubSegmenter,
    make_segmenter,
)
from annotators.weights import MissingWeightsError

SHAPES = [(48, 80), (64, 64), (30, 50), (70, 40), (48, 80)]


def scene(shape, seed):
    """A noisy image with a bright rectangle, and the rectangle as an xyxy box."""
    rng = np.random.default_rng(seed)
    h, w = shape
    image = rng.integers(0, 80, (h, w, 3), dtype=np.uint8)
    x0, y0 = int(rng.integers(0, w // 2)), int(rng.integers(0, h // 2))
    x1, y1 = x0 + w // 3, y0 + h // 3
    image[y0:y1, x0:x1] = (220, 180, 40)
    return image, np.array([x0, y0, x1, y1], dtype=np.float32)


@pytest.fixture(scope="module")
def scenes():
    return [scene(shape, i) for i, shape in enumerate(SHAPES)]


@pytest.fixture(scope="module")
def sam2(tiny_sam2_path):
    return make_segmenter("transformers", SegmenterConfig(model=tiny_sam2_path, device="cpu", batch_size=4))


def test_sam2_masks_at_full_resolution(sam2, scenes):
    images, boxes = zip(*scenes, strict=True)
    results = sam2.segment(list(images), list(boxes))
    assert len(results) == len(images)
    for result, image in zip(results, images, strict=True):
        assert isinstance(result, MaskResult)
        assert result.mask.dtype == bool and result.mask.shape == image.shape[:2]
        assert isinstance(result.score, float) and np.isfinite(result.score)
    assert any(r.mask.any() for r in results) and not all(r.mask.all() for r in results)
    assert type(sam2.model).__name__ == "Sam2Model"


def test_batch_equals_one_by_one(sam2, tiny_sam2_path, scenes):
    images, boxes = map(list, zip(*scenes, strict=True))
    batched = sam2.segment(images, boxes)  # batches of 4 and 1
    single = make_segmenter("transformers", SegmenterConfig(model=tiny_sam2_path, device="cpu", batch_size=1),
                            model=sam2.model)
    alone = single.segment(images, boxes)
    for a, b in zip(batched, alone, strict=True):
        assert (a.mask != b.mask).mean() < 1e-3  # fp32 batched matmuls may flip a pixel at the threshold
        assert a.score == pytest.approx(b.score, abs=1e-5)


def test_sam1_checkpoint_loads_and_segments(tiny_sam_path, scenes):
    seg = make_segmenter("transformers", SegmenterConfig(model=tiny_sam_path, device="cpu"))
    assert type(seg.model).__name__ == "SamModel"
    images, boxes = map(list, zip(*scenes, strict=True))
    results = seg.segment(images, boxes)
    assert [r.mask.shape for r in results] == SHAPES


def test_sam1_postprocessing_matches_the_processor(tiny_sam_path):
    """Padding crop + upsampling equal SamImageProcessor.post_process_masks (the PIL one needs no torchvision)."""
    import torch
    from transformers.models.sam.image_processing_pil_sam import SamImageProcessorPil

    from annotators.segmentation.sam import longest_edge_shape, upsample_masks

    processor = SamImageProcessorPil.from_pretrained(tiny_sam_path)
    logits = torch.randn(1, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    for h, w in [(48, 80), (70, 40)]:
        resized = longest_edge_shape(h, w, 64)
        assert resized == processor._get_preprocess_shape((h, w), 64)
        want = processor.post_process_masks([logits.clone()], [(h, w)], [resized])[0][:, 0]
        got = upsample_masks(logits, (h, w), 64, resized)
        assert torch.equal(got, want)


def test_missing_weights_name_the_model(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(MissingWeightsError, match="facebook/sam2.1-hiera-tiny") as error:
        make_segmenter("transformers", SegmenterConfig(device="cpu"))
    assert "SAM" in str(error.value) and "download" in str(error.value)
    with pytest.raises(MissingWeightsError, match="no config.json"):
        make_segmenter("transformers", SegmenterConfig(model=str(tmp_path), device="cpu"))


def test_other_model_types_are_refused(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(ValueError, match="bert"):
        make_segmenter("transformers", SegmenterConfig(model=str(tmp_path), device="cpu"))


def test_stub_fills_the_box_by_default(scenes):
    assert {"stub", "transformers"} <= set(SEGMENTERS.names())
    stub = make_segmenter("stub")
    assert isinstance(stub, StubSegmenter)
    image = np.zeros((10, 20, 3), np.uint8)
    (result,) = stub.segment([image], [np.array([2, 3, 6, 8])])
    assert result.score == 1.0 and result.mask.shape == (10, 20)
    assert result.mask.sum() == 4 * 5 and result.mask[3:8, 2:6].all()
    with pytest.raises(ValueError):
        stub.segment([image], [])


def test_stub_answers_per_call_index():
    seen = []

    def answers(index, image):
        seen.append(index)
        return MaskResult(np.full(image.shape[:2], index % 2 == 1), float(index))

    stub = StubSegmenter(answers)
    images = [np.zeros((4, 4, 3), np.uint8)] * 3
    first = stub.segment(images[:2], [np.zeros(4)] * 2)
    second = stub.segment(images[2:], [np.zeros(4)])
    assert seen == [0, 1, 2] and [r.score for r in first + second] == [0.0, 1.0, 2.0]
    assert not first[0].mask.any() and first[1].mask.all()


def test_config_validates():
    with pytest.raises(ValueError):
        SegmenterConfig(batch_size=0)
