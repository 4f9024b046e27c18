"""Thin trainer: reads the suite's shards (trainer.data), reference recipes (trainer.train)."""

from trainer.data import (
    Holdout,
    Position,
    ShardDataset,
    ShardIntegrityError,
    ShardLoader,
)
from trainer.train import TrainConfig, get_lr, train

__all__ = ["Holdout", "Position", "ShardDataset", "ShardIntegrityError", "ShardLoader", "TrainConfig", "get_lr", "train"]
