"""Which torch device a model runs on: one rule for every model family."""

from __future__ import annotations


def pick_device(device: str) -> str:
    """`auto` → cuda when a GPU is visible, else cpu; any other name as given ("cpu", "cuda:1")."""
    if device == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return device
