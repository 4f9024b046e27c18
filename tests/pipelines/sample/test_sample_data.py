"""The committed sample reads back through the RLDS reader, and its ground truth matches it."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines.sample.ground_truth import CARD_NAMES, DEFAULT_DATA_DIR, GROUND_TRUTH_DIR, load_ground_truth

pytest.importorskip("tensorflow_datasets", reason="reading RLDS needs the `tfds` extra")

SCHEMAS = ["droid", "bridge", "fractal"]


def _sample_present(schema: str) -> bool:
    return (DEFAULT_DATA_DIR / schema / GROUND_TRUTH_DIR / "episodes.parquet").exists()


@pytest.fixture(scope="module", params=SCHEMAS)
def schema_read(request):
    schema = request.param
    if not _sample_present(schema):
        pytest.skip(f"no generated sample in {DEFAULT_DATA_DIR}/{schema}: run `make sample-data`")
    from datasets_cards import load_source_card
    from pipelines.formats import open_reader

    card = load_source_card(CARD_NAMES[schema])
    episodes = list(open_reader(card))
    return schema, card, episodes, load_ground_truth(schema)


def test_every_sample_episode_reads_back_without_quarantine(schema_read):
    _, _, episodes, truth = schema_read
    from datasets_cards import Episode

    assert all(isinstance(e, Episode) for e in episodes), [e for e in episodes if not isinstance(e, Episode)]
    assert len(episodes) == len(truth.episode_ids)


def test_reader_ids_lengths_and_instructions_match_ground_truth(schema_read):
    _, _, episodes, truth = schema_read
    assert [e.episode_id for e in episodes] == truth.episode_ids
    for episode in episodes:
        expected = truth.episode(episode.episode_id)
        assert episode.num_frames == expected.num_frames
        assert episode.instruction == expected.instruction


def test_reader_cameras_are_the_ground_truth_cameras(schema_read):
    _, card, episodes, truth = schema_read
    assert set(episodes[0].cameras) == set(card.cameras) == set(truth.views["camera"].unique())
    frame = episodes[0].frames[episodes[0].cameras[0]][0]
    assert frame.shape == (int(truth.views["height"].iloc[0]), int(truth.views["width"].iloc[0]), 3)


def test_normalised_gripper_follows_the_true_closure(schema_read):
    _, _, episodes, truth = schema_read
    for episode in episodes:
        closure = truth.frames[truth.frames["episode_id"] == episode.episode_id].sort_values("frame_index")
        np.testing.assert_allclose(episode.gripper, closure["gripper_closure"].to_numpy(), atol=0.03)
