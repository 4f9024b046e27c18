"""la flow tests read a synthetic format (DROID-shaped pick-and-place with small camera frames),
plugged in through the format registry instead of patching the flow."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import numpy as np

from datasets_cards import Episode, FrameSequence
from pipelines import base
from pipelines.formats import READERS
from tests.annotators.segments.segment_factories import PICK_AND_PLACE, phase_trajectory

SYNTHETIC_SOURCE = "synthetic-droid"
CAMERAS = ("exterior_1_left", "wrist_left", "exterior_2_left")


class SyntheticReader:
    """Three pick-and-place episodes in DROID's layout (format `synthetic`)."""

    location = "memory://synthetic"

    def __init__(self, card, location=None):
        self.card = card

    def num_episodes(self) -> int:
        return 3

    def episode_ids(self, start, stop):
        return [f"droid-{i:06d}" for i in range(start, stop)]

    def read(self, start, stop):
        for i in range(start, stop):
            item, _ = phase_trajectory(PICK_AND_PLACE, seed=i)
            t = item.num_frames
            rng = np.random.default_rng(i)
            frames = {c: FrameSequence.from_array(rng.integers(0, 255, (t, 16, 24, 3), dtype=np.uint8)) for c in CAMERAS}
            actions = np.concatenate([item.arm_state, item.gripper[:, None]], axis=1)
            yield Episode(self.episode_ids(i, i + 1)[0], "droid", "put the cup in the bowl", item.fps, frames,
                          item.arm_state, item.gripper, actions)


def write_synthetic_card(folder: Path) -> str:
    """A source card file of the `synthetic` format that reads like DROID otherwise."""
    path = folder / f"{SYNTHETIC_SOURCE}.yaml"
    path.write_text(f"extends: droid\nname: {SYNTHETIC_SOURCE}\ndescription: synthetic pick-and-place\n"
                    "format: synthetic\nlocation: memory://synthetic\n")
    return str(path)


@contextmanager
def synthetic_format():
    base._cached.cache_clear()
    with READERS.override("synthetic", SyntheticReader):
        yield
    base._cached.cache_clear()
