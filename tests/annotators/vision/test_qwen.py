"""The Qwen2.5-VL tower backend against the model's own path: processor patches, merged tokens, their order."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from annotators.vision import (
    MissingWeightsError,
    VisionEncoderConfig,
    make_vision_encoder,
)
from annotators.vision.qwen import QwenVisionEncoder, tower_state_dict


def images(n: int, size=(224, 224), seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, *size, 3), dtype=np.uint8)


def encoder(path, **kw) -> QwenVisionEncoder:
    return make_vision_encoder("qwen2_5_vl", VisionEncoderConfig(model=str(path), device="cpu", **kw))


@pytest.fixture(scope="module")
def reference(tiny_qwen):
    """The whole model and its processor, as transformers loads them."""
    from transformers import Qwen2_5_VLForConditionalGeneration
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (
        Qwen2VLImageProcessorPil,
    )

    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(tiny_qwen, local_files_only=True).eval()
    return model, Qwen2VLImageProcessorPil.from_pretrained(tiny_qwen, local_files_only=True)


def merged_by_model(reference, batch: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """(pixel patches, merged tokens per image) exactly as Qwen2.5-VL computes them for its LLM."""
    model, processor = reference
    inputs = processor(images=list(batch), return_tensors="pt")
    with torch.no_grad():
        features = model.model.get_image_features(inputs["pixel_values"], inputs["image_grid_thw"])
    pooled = features.pooler_output if hasattr(features, "pooler_output") else features
    return inputs["pixel_values"], torch.stack(list(pooled))


def test_patches_are_the_image_processor_patches(tiny_qwen, reference):
    batch = images(3)
    patches, _ = merged_by_model(reference, batch)
    ours = encoder(tiny_qwen).patchify(torch.from_numpy(batch))
    assert ours.shape == patches.shape == (3 * 256, 3 * 2 * 14 * 14)
    torch.testing.assert_close(ours, patches, atol=1e-5, rtol=0)


def test_tokens_are_the_models_merged_output_in_order_and_count(tiny_qwen, reference):
    batch = images(3, seed=1)
    _, merged = merged_by_model(reference, batch)
    enc = encoder(tiny_qwen, batch_size=2)  # two forward passes: batching keeps images apart
    features = enc.encode(batch)
    assert features.grid == (8, 8) and features.tokens.shape == (3, 64, enc.dim) and features.tokens.dtype == np.float16
    assert enc.dim == reference[0].config.vision_config.out_hidden_size  # after the merger, not hidden_size
    np.testing.assert_allclose(features.tokens.astype(np.float32), merged.numpy(), atol=2e-3, rtol=2e-3)


def test_pooling_averages_2x2_blocks_of_the_raster_grid(tiny_qwen, reference):
    batch = images(2, seed=2)
    _, merged = merged_by_model(reference, batch)
    features = encoder(tiny_qwen, pool=2).encode(batch)
    grid = merged.view(2, 8, 8, -1)
    expected = grid.view(2, 4, 2, 4, 2, -1).mean(dim=(2, 4)).reshape(2, 16, -1)
    assert features.grid == (4, 4)
    np.testing.assert_allclose(features.tokens.astype(np.float32), expected.numpy(), atol=2e-3, rtol=2e-3)


@pytest.mark.parametrize("size", [(224, 224), (56, 56), (112, 168)])
def test_batched_attention_equals_the_stock_forward(tiny_qwen, size):
    enc = encoder(tiny_qwen, image_size=size)
    patches = enc.patchify(torch.from_numpy(images(2, size, seed=3)))
    stock = enc.stock_forward(patches, 2)
    if enc.geometry.window_length is None:  # 112×168: windows of unequal length → the stock forward is used
        assert size == (112, 168)
        np.testing.assert_array_equal(enc.encode(images(2, size, seed=3)).tokens,
                                      stock.to(torch.float16).numpy())
        return
    torch.testing.assert_close(enc.fast_forward(patches, 2), stock, atol=1e-5, rtol=1e-5)


def test_only_the_vision_tower_is_read_from_the_checkpoint(tiny_qwen):
    state = tower_state_dict(tiny_qwen)
    assert state and all(k.split(".")[0] in {"patch_embed", "blocks", "merger"} for k in state)
    tower = encoder(tiny_qwen).tower
    assert type(tower).__name__ == "Qwen2_5_VisionTransformerPretrainedModel"
    assert not any(p.requires_grad for p in tower.parameters())


def test_missing_weights_name_the_model_and_how_to_fetch_it(tmp_path):
    with pytest.raises(MissingWeightsError, match=r"'Qwen/Qwen2.5-VL-3B-Instruct' not found.*download"):
        make_vision_encoder("qwen2_5_vl", VisionEncoderConfig(device="cpu"))
    (tmp_path / "config.json").write_text('{"model_type": "dinov2"}')
    with pytest.raises(MissingWeightsError, match="not Qwen2.5-VL"):
        encoder(tmp_path)


@pytest.mark.parametrize(("kw", "message"), [
    ({"image_size": (200, 224)}, "multiples of 28"),
    ({"pool": 3}, "pool 3 does not divide"),
])
def test_sizes_the_tower_cannot_take_are_refused(tiny_qwen, kw, message):
    with pytest.raises(ValueError, match=message):
        encoder(tiny_qwen, **kw)
