"""Torch steps every backend shares: uint8 pixels onto the device, normalisation, token pooling."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F


def to_device(images: np.ndarray, device: str) -> torch.Tensor:
    """uint8 B×H×W×3 numpy → uint8 tensor on `device` (pinned host memory, asynchronous copy on CUDA)."""
    x = torch.from_numpy(np.ascontiguousarray(images))
    if device.startswith("cuda"):
        return x.pin_memory().to(device, non_blocking=True)
    return x


def processor_settings(folder: Path, mean: tuple[float, ...], std: tuple[float, ...]) -> tuple[float, list, list]:
    """(rescale factor, mean, std) from the model folder's preprocessor_config.json, else the given defaults."""
    path = folder / "preprocessor_config.json"
    settings = json.loads(path.read_text()) if path.exists() else {}
    scale = float(settings.get("rescale_factor", 1 / 255)) if settings.get("do_rescale", True) else 1.0
    return scale, list(settings.get("image_mean", mean)), list(settings.get("image_std", std))


class Normaliser:
    """uint8 B×H×W×3 → float32 B×3×H×W, `(pixel × rescale − mean) / std` as one fused multiply-add."""

    def __init__(self, rescale: float, mean: list[float], std: list[float], device: str):
        mean_t = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
        std_t = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
        self.scale = (rescale / std_t).to(device)
        self.shift = (-mean_t / std_t).to(device)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return images.permute(0, 3, 1, 2).float() * self.scale + self.shift


def pool_tokens(tokens: torch.Tensor, grid: tuple[int, int], pool: int) -> torch.Tensor:
    """B×N×D tokens in raster order of `grid` → B×(N/pool²)×D, each the mean of a pool×pool block."""
    if pool == 1:
        return tokens
    b, _, d = tokens.shape
    x = tokens.view(b, grid[0], grid[1], d).permute(0, 3, 1, 2)
    x = F.avg_pool2d(x.float(), pool).to(tokens.dtype)
    return x.flatten(2).transpose(1, 2)
