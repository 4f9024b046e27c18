"""Per-episode feature statistics as LeRobot stores them (episodes_stats / stats/* columns).

Numeric features: min, max, mean, std over frames, per dimension (shape = the
feature's shape; scalars get shape (1,)). Camera features: per channel over all
pixels of all frames, on values scaled to [0, 1], shape (3, 1, 1). `count` is
the number of frames, shape (1,).
"""

from __future__ import annotations

import numpy as np


def array_to_stats(values: np.ndarray) -> dict[str, np.ndarray]:
    """Frames of one numeric feature (T × shape) → {min, max, mean, std, count}."""
    values = np.asarray(values, dtype=np.float64)
    keepdims = values.ndim == 1  # scalars keep a length-1 axis, as LeRobot does
    return {
        "min": np.min(values, axis=0, keepdims=keepdims),
        "max": np.max(values, axis=0, keepdims=keepdims),
        "mean": np.mean(values, axis=0, keepdims=keepdims),
        "std": np.std(values, axis=0, keepdims=keepdims),
        "count": np.array([len(values)]),
    }


def frames_to_stats(frames: np.ndarray) -> dict[str, np.ndarray]:
    """uint8 T×H×W×3 frames → per-channel stats of shape (3, 1, 1) on [0, 1] values."""
    pixels = np.asarray(frames, dtype=np.float64).reshape(-1, frames.shape[-1]) / 255.0
    per_channel = {
        "min": pixels.min(axis=0),
        "max": pixels.max(axis=0),
        "mean": pixels.mean(axis=0),
        "std": pixels.std(axis=0),
    }
    stats = {name: value.reshape(-1, 1, 1) for name, value in per_channel.items()}
    stats["count"] = np.array([len(frames)])
    return stats


def aggregate_stats(per_episode: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Pool episodes' stats of one feature into dataset stats (count-weighted mean and variance)."""
    counts = np.array([s["count"][0] for s in per_episode], dtype=np.float64)
    weights = (counts / counts.sum()).reshape((-1,) + (1,) * per_episode[0]["mean"].ndim)
    means = np.stack([s["mean"] for s in per_episode])
    mean = (weights * means).sum(axis=0)
    second_moment = (weights * (np.stack([s["std"] for s in per_episode]) ** 2 + means**2)).sum(axis=0)
    return {
        "min": np.min(np.stack([s["min"] for s in per_episode]), axis=0),
        "max": np.max(np.stack([s["max"] for s in per_episode]), axis=0),
        "mean": mean,
        "std": np.sqrt(np.maximum(second_moment - mean**2, 0.0)),
        "count": np.array([int(counts.sum())]),
    }


def stats_to_json(stats: dict[str, dict[str, np.ndarray]]) -> dict[str, dict[str, list]]:
    return {key: {name: np.asarray(v).tolist() for name, v in s.items()} for key, s in stats.items()}
