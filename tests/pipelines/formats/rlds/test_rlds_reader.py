"""RldsReader on fixtures in the published schemas, read through the real source cards."""

from __future__ import annotations

import numpy as np
import pytest

from datasets_cards import Episode, FrameDecodeError, load_source_card
from pipelines.formats import open_reader
from pipelines.formats.rlds.reader import RldsReader, resolve_version_dir
from pipelines.formats.rlds.writer import write_rlds
from pipelines.quarantine import Quarantined
from pipelines.sample.generator.rlds_schemas import rlds_schema
from pipelines.sample.generator.synthetic_rlds import synthetic_episodes
from tests.pipelines.formats.rlds.conftest import FAULTS, N_EPISODES, N_STEPS, SCHEMAS
from tests.pipelines.formats.rlds_fixtures import IMAGE_SIZE, INSTRUCTIONS, expected_gripper

# schema → source card that reads it
CARDS = {"droid": "droid", "bridge": "bridge", "fractal": "fractal"}


def _reader(schema: str, location, **reader_options) -> RldsReader:
    card = load_source_card(CARDS[schema])
    if reader_options:
        card = card.model_copy(update={"reader_options": reader_options})
    reader = open_reader(card, str(location))
    assert isinstance(reader, RldsReader)
    return reader


@pytest.mark.parametrize("schema", SCHEMAS)
def test_every_episode_comes_out_in_the_card_layout(clean_rlds, schema):
    reader = _reader(schema, clean_rlds[schema])
    card = reader.card
    episodes = list(reader)

    assert reader.num_episodes() == N_EPISODES
    assert all(isinstance(e, Episode) for e in episodes)
    for index, episode in enumerate(episodes):
        assert episode.source == card.name
        assert episode.fps == card.fps
        assert episode.instruction == INSTRUCTIONS[index % len(INSTRUCTIONS)]
        assert episode.arm_state.shape == (N_STEPS, len(card.state.names))
        assert episode.actions.shape == (N_STEPS, len(card.action.names))
        assert episode.cameras == list(card.cameras)
        assert episode.frames[episode.cameras[0]][0].shape == (*IMAGE_SIZE, 3)
        assert episode.metadata["episode_index"] == index


@pytest.mark.parametrize("schema", SCHEMAS)
def test_gripper_is_normalised_to_zero_open_one_closed(clean_rlds, schema):
    # Bridge stores 1 = open in state[6]; DROID and Fractal store 1 = closed.
    for episode in _reader(schema, clean_rlds[schema]):
        np.testing.assert_allclose(episode.gripper, expected_gripper(N_STEPS))


@pytest.mark.parametrize(
    ("schema", "first_id"),
    [
        ("droid", "/synthetic/droid/success/episode_000000/trajectory.h5"),
        ("bridge", "/synthetic/bridge/raw/folder0/out.npy#0"),  # file_path and episode_id repeat, the pair does not
        ("fractal", "fractal-train-000000"),  # no episode_id_keys: the split and the index
    ],
)
def test_episode_ids_are_unique_and_the_same_for_any_range(clean_rlds, schema, first_id):
    reader = _reader(schema, clean_rlds[schema])
    ids = [e.episode_id for e in reader.read(0, N_EPISODES)]

    assert ids[0] == first_id
    assert len(set(ids)) == N_EPISODES
    assert [e.episode_id for e in reader.read(1, N_EPISODES)] == ids[1:]
    assert reader.episode_ids(0, N_EPISODES) == ids  # the id scan (no decoding) agrees with reading
    assert reader.episode_ids(1, 99) == ids[1:]


def test_an_id_key_at_step_level_is_a_card_error(clean_rlds):
    card = load_source_card("bridge").model_copy(update={"episode_id_keys": ["language_instruction"]})
    with pytest.raises(ValueError, match="episode-level keys"):
        RldsReader(card, str(clean_rlds["bridge"])).num_episodes()


@pytest.mark.parametrize(("start", "stop", "expected"), [(0, 0, []), (2, 2, []), (5, 9, []), (-3, 1, [0]), (2, 99, [2])])
def test_read_ranges_are_clamped_to_the_split(clean_rlds, start, stop, expected):
    reader = _reader("bridge", clean_rlds["bridge"])
    assert [e.metadata["episode_index"] for e in reader.read(start, stop)] == expected


@pytest.mark.parametrize("schema", SCHEMAS)
@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ("zero_steps", "zero-length episode"),
        ("nan_state", "non-finite values (NaN/inf) in arm_state"),
        ("empty_instruction", "missing instruction"),
        ("corrupt_first_frame", "undecodable frame"),
    ],
)
def test_bad_episodes_are_quarantined_with_their_reason(faulty_rlds, schema, fault, reason):
    index = next(i for i, f in FAULTS.items() if f == fault)
    (record,) = _reader(schema, faulty_rlds[schema]).read(index, index + 1)
    assert isinstance(record, Quarantined)
    assert reason in record.reason
    assert record.stage == "read"


@pytest.mark.parametrize("schema", SCHEMAS)
def test_the_run_goes_on_past_bad_episodes(faulty_rlds, schema):
    records = list(_reader(schema, faulty_rlds[schema]))
    kinds = [type(r).__name__ for r in records]
    # clean, 4 quarantined, corrupt_late_frame passes the first-frame check, clean
    assert kinds == ["Episode", "Quarantined", "Quarantined", "Quarantined", "Episode", "Quarantined", "Episode"]


def test_a_late_corrupt_frame_raises_when_decoded_or_is_quarantined_with_check_all(faulty_rlds):
    index = next(i for i, f in FAULTS.items() if f == "corrupt_late_frame")
    (episode,) = _reader("droid", faulty_rlds["droid"]).read(index, index + 1)
    assert isinstance(episode, Episode)
    with pytest.raises(FrameDecodeError):
        episode.frames["wrist_left"][N_STEPS - 1]

    (record,) = _reader("droid", faulty_rlds["droid"], check_frames="all").read(index, index + 1)
    assert isinstance(record, Quarantined)
    assert f"frame {N_STEPS - 1}" in record.reason


def test_state_dims_beyond_the_data_quarantine_as_wrong_shape(clean_rlds):
    card = load_source_card("bridge")
    card = card.model_copy(update={"state": card.state.model_copy(update={"dims": [0, 7]})})
    (record, *_) = open_reader(card, str(clean_rlds["bridge"])).read(0, 1)
    assert isinstance(record, Quarantined)
    assert record.reason.startswith("wrong shape")


def test_card_keys_missing_from_the_dataset_raise_listing_its_keys(clean_rlds):
    card = load_source_card("fractal")
    card = card.model_copy(update={"instruction_key": "language_instruction"})
    with pytest.raises(ValueError, match=r"\['language_instruction'\].*observation/natural_language_instruction"):
        open_reader(card, str(clean_rlds["fractal"])).num_episodes()


def test_a_parent_folder_resolves_to_its_highest_version(tmp_path):
    schema = rlds_schema("bridge", IMAGE_SIZE)
    for version, n in (("0.9.0", 1), ("1.0.0", 2), ("1.0.10", 3), ("notes", 0)):
        if version == "notes":
            (tmp_path / "bridge_orig" / version).mkdir()
            continue
        episodes = synthetic_episodes(schema, n, 2)
        write_rlds(tmp_path, "bridge_orig", schema.steps, episodes, episode_metadata_features=schema.episode_metadata, version=version)

    assert resolve_version_dir(str(tmp_path / "bridge_orig")).endswith("1.0.10")
    assert _reader("bridge", tmp_path / "bridge_orig").num_episodes() == 3
    with pytest.raises(FileNotFoundError, match="no dataset_info.json"):
        resolve_version_dir(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        resolve_version_dir(str(tmp_path / "missing"))


def test_empty_and_duplicate_episode_ids(tmp_path):
    schema = rlds_schema("droid", IMAGE_SIZE)
    episodes = list(synthetic_episodes(schema, 3, 2))
    episodes[1]["episode_metadata"]["file_path"] = ""  # empty: falls back to the index
    episodes[2]["episode_metadata"]["file_path"] = episodes[0]["episode_metadata"]["file_path"]
    path = write_rlds(tmp_path, "droid", schema.steps, episodes, episode_metadata_features=schema.episode_metadata)

    first, second, third = _reader("droid", path)
    assert isinstance(first, Episode)
    assert second.episode_id == "droid-train-000001"
    assert isinstance(third, Quarantined) and "duplicate episode id" in third.reason


def test_unknown_check_frames_option_is_refused(clean_rlds):
    with pytest.raises(ValueError, match="check_frames"):
        _reader("droid", clean_rlds["droid"], check_frames="some")
