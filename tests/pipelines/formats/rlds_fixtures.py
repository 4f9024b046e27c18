"""Tiny RLDS datasets in the exact published DROID / Bridge / Fractal schemas, for any test.

`make_rlds_fixture(tmp_path, "bridge", n_episodes=3, n_steps=6)` returns the
dataset's version folder (`tmp_path/bridge_orig/1.0.0`); point a source card at
it with `open_reader(load_source_card("bridge"), str(path))`. Values follow
`pipelines.sample.generator.synthetic_rlds`: episode i has instruction INSTRUCTIONS[i % 3], the
gripper is closed (1) in the middle third of the steps, frames are 32×48.
`faults={index: "nan_state" | "empty_instruction" | "corrupt_first_frame" |
"corrupt_late_frame" | "zero_steps" | ...}` injects defects (every kind: `FAULTS`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from pipelines.sample.generator.synthetic_rlds import FAULTS, INSTRUCTIONS, synthetic_trajectory, write_synthetic_rlds

IMAGE_SIZE = (32, 48)

__all__ = ["FAULTS", "IMAGE_SIZE", "INSTRUCTIONS", "expected_gripper", "make_rlds_fixture"]


def make_rlds_fixture(
    tmp: str | Path,
    schema: str,
    n_episodes: int = 3,
    n_steps: int = 6,
    *,
    faults: Mapping[int, str] | None = None,
    image_size: tuple[int, int] = IMAGE_SIZE,
    seed: int = 0,
    num_shards: int | None = None,
) -> Path:
    """`num_shards`: that many TFRecord files, episodes in contiguous runs (default: one file)."""
    return write_synthetic_rlds(tmp, schema, n_episodes, n_steps, image_size=image_size, seed=seed, faults=faults,
                                num_shards=num_shards)


def expected_gripper(n_steps: int) -> np.ndarray:
    """The canonical gripper (0 open, 1 closed) every synthetic episode of n_steps has."""
    return synthetic_trajectory(n_steps, np.random.default_rng(0))["closed"].astype(np.float32)
