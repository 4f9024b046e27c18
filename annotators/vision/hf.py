"""SigLIP and DINOv2 through transformers: the patch tokens of the last layer, for comparison runs.

`siglip`: `SiglipVisionModel` (SigLIP and fixed-resolution SigLIP 2 checkpoints; the
vision half of a full checkpoint is loaded alone), every patch token of
`last_hidden_state` (14×14 × 768 for base-patch16-224). `dinov2`: `Dinov2Model` (and
the with-registers variant), `last_hidden_state` without the CLS and register tokens
(16×16 × 768 for base at 224): the DIAL-DINO ablation's encoder. Pixels are normalised
on the device with the checkpoint's own mean and std (preprocessor_config.json).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from annotators.devices import pick_device
from annotators.vision.base import (
    VISION_ENCODERS,
    VisionEncoderConfig,
    VisionFeatures,
    check_images,
    pooled_grid,
    torch_dtype,
)
from annotators.vision.tensors import (
    Normaliser,
    pool_tokens,
    processor_settings,
    to_device,
)
from annotators.weights import MissingWeightsError, resolve_weights


class _PatchTokenEncoder:
    """A ViT whose `last_hidden_state` is [prefix tokens, patch tokens in raster order]."""

    family: ClassVar[str]
    model_types: ClassVar[tuple[str, ...]]
    mean: ClassVar[tuple[float, float, float]]
    std: ClassVar[tuple[float, float, float]]

    def __init__(self, config: VisionEncoderConfig | None = None, model: Any = None, folder: Path | None = None):
        self.config = config or VisionEncoderConfig(model=self.default_model)
        self.device = pick_device(self.config.device)
        self.dtype = torch_dtype(self.config, self.device)
        if model is None:
            from transformers.utils import logging as hf_logging

            folder = resolve_weights(self.config.model, self.family)
            verbosity = hf_logging.get_verbosity()
            hf_logging.set_verbosity_error()  # a full checkpoint's text half is "unexpected": expected here
            try:
                model = self.load(folder)
            finally:
                hf_logging.set_verbosity(verbosity)
        self.model = model.to(device=self.device, dtype=self.dtype).eval().requires_grad_(False)
        patch = int(self.vision_config.patch_size)
        height, width = self.config.image_size
        if height % patch or width % patch:
            raise ValueError(f"{self.family} needs image sides that are multiples of its patch {patch}; "
                             f"the view size is {height}×{width}")
        self.patch_grid = (height // patch, width // patch)
        self._grid = pooled_grid(self.patch_grid, self.config.pool, self.family)
        scale, mean, std = processor_settings(folder, self.mean, self.std) if folder else (1 / 255, self.mean, self.std)
        self.normalise = Normaliser(scale, list(mean), list(std), self.device)

    default_model: ClassVar[str]

    @property
    def vision_config(self) -> Any:
        return self.model.config

    @property
    def grid(self) -> tuple[int, int]:
        return self._grid

    @property
    def dim(self) -> int:
        return int(self.vision_config.hidden_size)

    def check_type(self, folder: Path) -> None:
        model_type = json.loads((folder / "config.json").read_text()).get("model_type")
        if model_type not in self.model_types:
            raise MissingWeightsError(f"{folder} holds a {model_type!r} model, not {self.family} "
                                      f"(model_type {' or '.join(self.model_types)})")

    def load(self, folder: Path) -> Any:
        raise NotImplementedError

    def prefix_tokens(self) -> int:
        return 0

    def run(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=pixels).last_hidden_state

    @torch.inference_mode()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        tokens = self.run(self.normalise(images).to(self.dtype))[:, self.prefix_tokens():]
        return pool_tokens(tokens, self.patch_grid, self.config.pool)

    def encode(self, images: np.ndarray) -> VisionFeatures:
        check_images(images, self.config.image_size)
        parts = [self.forward(to_device(images[s : s + self.config.batch_size], self.device)).to(torch.float16).cpu()
                 for s in range(0, len(images), self.config.batch_size)]
        if not parts:
            return VisionFeatures(np.zeros((0, self._grid[0] * self._grid[1], self.dim), np.float16), self._grid)
        return VisionFeatures(torch.cat(parts).numpy(), self._grid)


@VISION_ENCODERS.register("siglip")
class SiglipEncoder(_PatchTokenEncoder):
    family = "SigLIP"
    model_types = ("siglip", "siglip_vision_model")
    mean = std = (0.5, 0.5, 0.5)
    default_model = "google/siglip2-base-patch16-224"

    def load(self, folder: Path) -> Any:
        from transformers import SiglipVisionModel

        self.check_type(folder)
        return SiglipVisionModel.from_pretrained(folder, local_files_only=True)

    def run(self, pixels: torch.Tensor) -> torch.Tensor:
        other_size = tuple(pixels.shape[-2:]) != (self.vision_config.image_size,) * 2
        return self.model(pixel_values=pixels, interpolate_pos_encoding=other_size).last_hidden_state


@VISION_ENCODERS.register("dinov2")
class Dinov2Encoder(_PatchTokenEncoder):
    family = "DINOv2"
    model_types = ("dinov2", "dinov2_with_registers")
    mean = (0.485, 0.456, 0.406)
    std = (0.229, 0.224, 0.225)
    default_model = "facebook/dinov2-base"

    def load(self, folder: Path) -> Any:
        from transformers import AutoModel

        self.check_type(folder)
        return AutoModel.from_pretrained(folder, local_files_only=True)

    def prefix_tokens(self) -> int:
        return 1 + int(getattr(self.vision_config, "num_register_tokens", 0) or 0)  # CLS (+ registers)
