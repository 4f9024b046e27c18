"""The encoder family's contract and the SigLIP / DINOv2 backends on tiny random-weight checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from annotators.vision import (
    VISION_ENCODERS,
    VisionEncoderConfig,
    VisionFeatures,
    make_vision_encoder,
)
from datasets_cards.registry import UnknownNameError

SIZE = (64, 64)


def _config(model: str = "unused", **kw) -> VisionEncoderConfig:
    return VisionEncoderConfig(**{"model": model, "device": "cpu", "image_size": SIZE, "batch_size": 2, **kw})


FACTORIES = {
    "qwen2_5_vl": lambda r, **kw: make_vision_encoder("qwen2_5_vl", _config(str(r.getfixturevalue("tiny_qwen")),
                                                                              image_size=(56, 56), **kw)),
    "siglip": lambda r, **kw: make_vision_encoder("siglip", _config(str(r.getfixturevalue("tiny_siglip")), **kw)),
    "dinov2": lambda r, **kw: make_vision_encoder("dinov2", _config(str(r.getfixturevalue("tiny_dinov2")), **kw)),
    "stub": lambda r, **kw: make_vision_encoder("stub", _config(**kw)),
}


def test_factories_cover_every_registered_backend():
    assert set(FACTORIES) == set(VISION_ENCODERS.names())


def test_an_unknown_backend_lists_the_known_ones():
    with pytest.raises(UnknownNameError, match="dinov2, qwen2_5_vl, siglip, stub"):
        make_vision_encoder("clip")


@pytest.mark.parametrize("backend", sorted(FACTORIES))
def test_every_backend_returns_float16_tokens_on_its_grid_for_any_batch(backend, request):
    enc = FACTORIES[backend](request)
    size = enc.config.image_size
    batch = np.random.default_rng(0).integers(0, 256, (5, *size, 3), dtype=np.uint8)
    features = enc.encode(batch)  # 5 images, batches of 2
    assert isinstance(features, VisionFeatures) and len(features) == 5
    assert features.tokens.shape == (5, enc.grid[0] * enc.grid[1], enc.dim)
    assert np.isfinite(features.tokens).all()
    np.testing.assert_array_equal(enc.encode(batch[3:4]).tokens[0], features.tokens[3])  # batch-independent
    assert enc.encode(batch[:0]).tokens.shape == (0, enc.grid[0] * enc.grid[1], enc.dim)
    with pytest.raises(ValueError, match="built for"):
        enc.encode(batch[:, :-8])


@pytest.mark.parametrize("backend", sorted(FACTORIES))
def test_pool_2_quarters_the_tokens(backend, request):
    full, pooled = FACTORIES[backend](request), FACTORIES[backend](request, pool=2)
    assert pooled.grid == (full.grid[0] // 2, full.grid[1] // 2)


def test_dinov2_drops_the_cls_token_and_siglip_keeps_every_patch(request):
    batch = np.random.default_rng(1).integers(0, 256, (2, *SIZE, 3), dtype=np.uint8)
    for backend, skip in (("dinov2", 1), ("siglip", 0)):
        enc = FACTORIES[backend](request)
        pixels = enc.normalise(torch.from_numpy(batch))
        with torch.no_grad():
            hidden = enc.run(pixels)
        assert hidden.shape[1] == 64 + skip  # 8×8 patches of 8 px (+ CLS)
        np.testing.assert_allclose(enc.encode(batch).tokens.astype(np.float32), hidden[:, skip:].numpy(),
                                   atol=2e-3, rtol=2e-3)


def test_the_stub_token_is_the_cell_colour():
    enc = make_vision_encoder("stub", _config(), dim=3)
    image = np.zeros((1, *SIZE, 3), np.uint8)
    image[0, :16, :16] = (255, 0, 0)
    tokens = enc.encode(image).tokens
    np.testing.assert_allclose(tokens[0, 0], [1, 0, 0], atol=1e-3)
    np.testing.assert_allclose(tokens[0, 1], [0, 0, 0], atol=1e-3)


@pytest.mark.parametrize(("kw", "message"), [({"dtype": "int8"}, "dtype"), ({"pool": 0}, "pool"),
                                             ({"image_size": (0, 4)}, "image_size")])
def test_config_refuses_bad_values(kw, message):
    with pytest.raises(ValueError, match=message):
        _config(**kw)
