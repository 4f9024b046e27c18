"""la flow tests read a synthetic format (DROID-shaped pick-and-place with small camera frames),
plugged in through the format registry instead of patching the flow; a card without cameras makes
the same episodes a state-only recording."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml

from datasets_cards import Episode, FrameSequence, load_source_card
from datasets_cards.manifest import Manifest
from pipelines import base
from pipelines.flows.annotate import annotate
from pipelines.formats import READERS
from pipelines.labelstudio.client import URL_ENV
from tests.annotators.segments.segment_factories import PICK_AND_PLACE, phase_trajectory

SYNTHETIC_SOURCE = "synthetic-droid"
STATE_ONLY_SOURCE = "synthetic-state-only"
CAMERAS = ("exterior_1_left", "wrist_left", "exterior_2_left")


class SyntheticReader:
    """Three pick-and-place episodes in DROID's layout (format `synthetic`)."""

    location = "memory://synthetic"

    def __init__(self, card, location=None):
        self.card = card

    def num_episodes(self) -> int:
        return 3

    def fingerprint(self) -> str:  # the same data on every run of a test
        return "synthetic"

    def episode_ids(self, start, stop):
        return [f"droid-{i:06d}" for i in range(start, stop)]

    def read(self, start, stop):
        for i in range(start, stop):
            item, _ = phase_trajectory(PICK_AND_PLACE, seed=i)
            t = item.num_frames
            rng = np.random.default_rng(i)
            frames = {c: FrameSequence.from_array(rng.integers(0, 255, (t, 16, 24, 3), dtype=np.uint8))
                      for c in CAMERAS if c in self.card.cameras}  # a card without cameras reads state only
            actions = np.concatenate([item.arm_state, item.gripper[:, None]], axis=1)
            yield Episode(self.episode_ids(i, i + 1)[0], "droid", "put the cup in the bowl", item.fps, frames,
                          item.arm_state, item.gripper, actions)


def write_synthetic_card(folder: Path) -> str:
    """A source card file of the `synthetic` format that reads like DROID otherwise."""
    path = folder / f"{SYNTHETIC_SOURCE}.yaml"
    path.write_text(f"extends: droid\nname: {SYNTHETIC_SOURCE}\ndescription: synthetic pick-and-place\n"
                    "format: synthetic\nlocation: memory://synthetic\n")
    return str(path)


def write_state_only_card(folder: Path) -> str:
    """The synthetic card with no cameras, written out whole (`extends:` merges cameras, it cannot remove them)."""
    card = load_source_card(write_synthetic_card(folder)).model_dump(mode="json")
    card.update(name=STATE_ONLY_SOURCE, cameras={})
    path = folder / f"{STATE_ONLY_SOURCE}.yaml"
    path.write_text(yaml.safe_dump(card))
    return str(path)


@contextmanager
def synthetic_format():
    base._cached.cache_clear()
    with READERS.override("synthetic", SyntheticReader):
        yield
    base._cached.cache_clear()


@dataclass(frozen=True)
class StateOnlyRun:
    out: Path  # output root OUT (the default Label Studio document root)
    target: Path  # OUT/la/<source>
    manifest: Manifest


@pytest.fixture(scope="session")
def state_only_run(tmp_path_factory) -> StateOnlyRun:
    """`annotate` over the source without cameras, review on (the default) and no Label Studio server: task JSON.

    Shared by several tests: treat it as read-only (copy the target before reviewing it).
    """
    out = tmp_path_factory.mktemp("state-only-out")
    card = write_state_only_card(tmp_path_factory.mktemp("state-only-card"))
    with pytest.MonkeyPatch.context() as env, synthetic_format():
        env.delenv(URL_ENV, raising=False)
        manifest = annotate(source=card, pipeline="la", out=str(out), episodes_per_shard=2, options={"plots": 0})
    return StateOnlyRun(out, out / "la" / STATE_ONLY_SOURCE, manifest)
