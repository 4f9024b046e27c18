"""Frozen vision encoders: one result type, backends behind one Protocol, a factory by name.

Backends: `qwen2_5_vl` (the Qwen2.5-VL vision tower after its patch merger, DIAL's
encoder, default), `siglip`, `dinov2` (the DIAL-DINO ablation), `stub` (no model).
Heavy modules (torch, transformers) load on first use. `views` holds the pure image
functions that decide what the encoder sees of a frame.
"""

from annotators.vision.base import (
    VISION_ENCODERS,
    StubVisionEncoder,
    VisionEncoder,
    VisionEncoderConfig,
    VisionFeatures,
    make_vision_encoder,
)
from annotators.weights import MissingWeightsError

__all__ = [
    "VISION_ENCODERS", "MissingWeightsError", "StubVisionEncoder", "VisionEncoder", "VisionEncoderConfig",
    "VisionFeatures", "make_vision_encoder",
]
