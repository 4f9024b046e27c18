"""The vision-encoder contract: settings, one result type, a stub, the registry and the weights lookup.

An encoder turns a batch of equally sized uint8 RGB images into frozen patch tokens on
the encoder's own spatial grid (raster order, row after row), optionally average-pooled
`pool`×`pool` on that grid, returned as float16 numpy. Backends: `qwen2_5_vl` (the
Qwen2.5-VL vision tower after its patch merger, DIAL's encoder, default), `siglip`,
`dinov2` (DIAL-DINO) and `stub` (no model: cell colours, for tests and offline runs).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from datasets_cards.registry import Registry

DTYPES = ("bfloat16", "float16", "float32")


@dataclass(frozen=True)
class VisionEncoderConfig:
    """Settings shared by every backend (the future pipeline fills them from the card's params.future)."""

    model: str = "Qwen/Qwen2.5-VL-3B-Instruct"  # hub id (looked up in the local cache) or a local folder
    device: str = "auto"  # auto = cuda when available, else cpu
    dtype: str = "bfloat16"  # weights and activations on CUDA; CPU always runs float32
    image_size: tuple[int, int] = (224, 224)  # (H, W) of the images `encode` receives
    pool: int = 1  # average pool×pool neighbouring tokens on the encoder's grid (1 = keep every token)
    batch_size: int = 128  # images per forward pass
    fast_attention: bool = True  # qwen2_5_vl: one batched attention call per layer (False: the stock tower forward)

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, got {self.dtype!r}")
        if self.pool < 1 or self.batch_size < 1:
            raise ValueError(f"pool and batch_size must be ≥ 1, got {self.pool}, {self.batch_size}")
        if len(self.image_size) != 2 or min(self.image_size) < 1:
            raise ValueError(f"image_size must be (H, W) with positive sides, got {self.image_size}")


@dataclass(frozen=True)
class VisionFeatures:
    """Tokens of a batch: float16 B×N×D with N = grid[0] × grid[1] in raster order of `grid`."""

    tokens: np.ndarray
    grid: tuple[int, int]

    def __post_init__(self) -> None:
        if self.tokens.ndim != 3 or self.tokens.dtype != np.float16:
            raise ValueError(f"tokens must be float16 B×N×D, got {self.tokens.dtype} {self.tokens.shape}")
        if self.tokens.shape[1] != self.grid[0] * self.grid[1]:
            raise ValueError(f"{self.tokens.shape[1]} tokens do not fill the grid {self.grid}")

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def dim(self) -> int:
        return int(self.tokens.shape[2])


class VisionEncoder(Protocol):
    """Frozen image features; construction loads the model (once per worker), `encode` runs it."""

    config: VisionEncoderConfig

    @property
    def grid(self) -> tuple[int, int]:
        """The token grid (rows, cols) of one image of `config.image_size`, after pooling."""
        ...

    @property
    def dim(self) -> int:
        """Width of one token."""
        ...

    def encode(self, images: np.ndarray) -> VisionFeatures:
        """`images`: uint8 B×H×W×3 RGB of `config.image_size`; any B (batched by `config.batch_size`)."""
        ...


# Backend name → a class taking (config=VisionEncoderConfig, **options); heavy modules load on first use.
VISION_ENCODERS: Registry[Callable[..., VisionEncoder]] = Registry("vision encoder backend", builtins={
    "qwen2_5_vl": "annotators.vision.qwen",
    "siglip": "annotators.vision.hf",
    "dinov2": "annotators.vision.hf",
})


def check_images(images: np.ndarray, size: tuple[int, int]) -> None:
    if images.ndim != 4 or images.shape[3] != 3 or images.dtype != np.uint8:
        raise ValueError(f"images must be uint8 B×H×W×3, got {images.dtype} {images.shape}")
    if tuple(images.shape[1:3]) != tuple(size):
        raise ValueError(f"images are {images.shape[1]}×{images.shape[2]}, the encoder was built for {size[0]}×{size[1]}")


def pooled_grid(grid: tuple[int, int], pool: int, where: str) -> tuple[int, int]:
    """`grid` after pool×pool averaging; ValueError naming `where` when it does not divide."""
    if grid[0] % pool or grid[1] % pool:
        raise ValueError(f"pool {pool} does not divide the {where} token grid {grid[0]}×{grid[1]}; "
                         f"choose a pool that divides both sides (or another image size)")
    return grid[0] // pool, grid[1] // pool


class StubVisionEncoder:
    """No model: each token is the mean colour of its grid cell (× `dim // 3` repeats). Deterministic and fast."""

    patch = 16  # pixels per token side before pooling

    def __init__(self, config: VisionEncoderConfig | None = None, dim: int = 6):
        self.config = config or VisionEncoderConfig()
        self._dim = dim
        height, width = self.config.image_size
        if height % self.patch or width % self.patch:
            raise ValueError(f"the stub encoder needs image sides that are multiples of {self.patch}, got {height}×{width}")
        self._grid = pooled_grid((height // self.patch, width // self.patch), self.config.pool, "stub")
        self.calls = 0

    @property
    def grid(self) -> tuple[int, int]:
        return self._grid

    @property
    def dim(self) -> int:
        return self._dim

    def encode(self, images: np.ndarray) -> VisionFeatures:
        check_images(images, self.config.image_size)
        self.calls += 1
        gh, gw = self._grid
        b, h, w, _ = images.shape
        cells = images.reshape(b, gh, h // gh, gw, w // gw, 3).astype(np.float32).mean(axis=(2, 4)) / 255.0
        tokens = np.tile(cells.reshape(b, gh * gw, 3), (1, 1, -(-self._dim // 3)))[..., : self._dim]
        return VisionFeatures(tokens.astype(np.float16), self._grid)


VISION_ENCODERS.add("stub", StubVisionEncoder)


def default_model(backend: str) -> str | None:
    """The checkpoint `backend` loads when none is named (None for backends without weights)."""
    return getattr(VISION_ENCODERS.get(backend), "default_model", None)


def make_vision_encoder(backend: str, config: VisionEncoderConfig | None = None, **options: Any) -> VisionEncoder:
    """The encoder of `backend` (qwen2_5_vl | siglip | dinov2 | stub) built from `config`."""
    return VISION_ENCODERS.get(backend)(config=config or VisionEncoderConfig(), **options)


def torch_dtype(config: VisionEncoderConfig, device: str):
    """The dtype weights and activations run in: the configured one on CUDA, float32 elsewhere."""
    import torch

    return getattr(torch, config.dtype) if device.startswith("cuda") else torch.float32
