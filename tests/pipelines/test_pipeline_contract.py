"""One contract for every registered pipeline, run through the real flow on a synthetic format.

Each pipeline must: write rows of its own output card (the writer enforces the schema and
unique keys); handle a one-frame episode (rows, or a quarantine record with a reason, never
a failed unit); quarantine an episode whose frames do not decode, with the reason; and
resume: a second run reads nothing and leaves the shards as they were. A new pipeline joins
by adding its options to CONTRACT_OPTIONS (the first test fails until it does).
"""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from datasets_cards import Episode, FrameSequence, encode_jpeg, list_sources, load_source_card
from pipelines import base
from pipelines.base import PIPELINES
from pipelines.flows.annotate import annotate
from pipelines.formats import READERS
from tests.annotators.segments.segment_factories import PICK_AND_PLACE, phase_trajectory

# Options that make each pipeline runnable offline (no model weights, no endpoint).
CONTRACT_OPTIONS = {
    "la": {"plots": 1},
    "gaze": {"detector": "stub", "montage": 1},
    # `centre` always answers (the stub finds nothing, and pixel would quarantine every episode)
    "pixel": {"detector": "centre", "segmenter": "stub", "montage": 1},
    # the contract card imitates egodex; its episodes are robot-shaped: the Episode's own vectors, no layout
    "future": {"encoder": "stub", "view": {"size": [32, 48]}, "batch_size": 16,
               "layout": {"width": 0, "state": "raw", "gripper": True, "state_slots": [], "action": "raw",
                          "action_slots": []}},
}
GOOD, ONE_FRAME, UNDECODABLE = "contract-good", "contract-one-frame", "contract-undecodable"


class ContractReader:
    """A good pick-and-place episode, a one-frame episode and one whose frames are not images."""

    reads: list[tuple[int, int]] = []

    def __init__(self, card, location=None):
        self.card = card
        self.location = "memory://contract"

    def num_episodes(self) -> int:
        return 3

    def fingerprint(self) -> str:  # the same data on every run of a test
        return "contract"

    def _episode(self, episode_id: str, frames: int, decodable: bool) -> Episode:
        item, _ = phase_trajectory(PICK_AND_PLACE, seed=0)
        state, gripper = item.arm_state[:frames], item.gripper[:frames]
        image = encode_jpeg(np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8))
        encoded = [image if decodable else b"not an image"] * frames
        cameras = {name: FrameSequence(encoded) for name in self.card.cameras}
        actions = np.concatenate([state, gripper[:, None]], axis=1)
        return Episode(episode_id, self.card.name, "put the red block in the bowl", item.fps, cameras,
                       state, gripper, actions)

    EPISODES = [(GOOD, 135, True), (ONE_FRAME, 1, True), (UNDECODABLE, 135, False)]

    def episode_ids(self, start, stop):
        return [episode_id for episode_id, _, _ in self.EPISODES[start:stop]]

    def read(self, start, stop):
        ContractReader.reads.append((start, stop))
        for episode_id, frames, decodable in self.EPISODES[start:stop]:
            yield self._episode(episode_id, frames, decodable)


def test_every_registered_pipeline_is_in_the_contract():
    assert set(CONTRACT_OPTIONS) == set(PIPELINES.names())


def source_for(pipeline: str) -> str:
    """The first source card that feeds `pipeline`: the contract card imitates its schema."""
    return next(name for name in list_sources() if pipeline in load_source_card(name).pipelines)


@pytest.mark.parametrize("pipeline", sorted(CONTRACT_OPTIONS))
def test_pipeline_contract(pipeline, tmp_path):
    card = tmp_path / "contract.yaml"
    card.write_text(f"extends: {source_for(pipeline)}\nname: contract\ndescription: contract episodes\n"
                    "format: contract\nlocation: memory://contract\n")
    ContractReader.reads = []
    base._cached.cache_clear()
    args = dict(source=str(card), pipeline=pipeline, out=str(tmp_path / "out"), episodes_per_shard=2, retries=0,
                options=CONTRACT_OPTIONS[pipeline])
    with READERS.override("contract", ContractReader):
        first = annotate(**args)
        target = tmp_path / "out" / pipeline / "contract"
        quarantine = {q["episode_id"]: q for q in pq.read_table(target / "quarantine.parquet").to_pylist()}
        rows = pq.read_table(target / "shards").to_pylist()

        assert first.complete and first.output_card_version == first.config["output_card_version"]
        assert not [q for q in quarantine.values() if q["stage"] == "unit"]  # no unit failed
        assert {r["episode_id"].split("#")[0] for r in rows} >= {GOOD}
        assert UNDECODABLE in quarantine and "undecodable" in quarantine[UNDECODABLE]["reason"]
        assert not any(r["episode_id"].startswith(UNDECODABLE) for r in rows)
        assert any(r["episode_id"].startswith(ONE_FRAME) for r in rows) or quarantine[ONE_FRAME]["reason"]
        assert (target / "card.md").read_text().startswith(f"# {pipeline} from contract")

        ContractReader.reads = []
        second = annotate(**args)
    assert ContractReader.reads == [] and [s.sha256 for s in second.shards] == [s.sha256 for s in first.shards]
    base._cached.cache_clear()
