"""One contract for every registered source format (`READERS.names()`).

Each format has a factory in FORMAT_FIXTURES that writes, in a fresh folder, a
tiny dataset of 3 episodes: index 0 good, index 1 "empty" (no steps, or the
closest the format can express), index 2 bad (NaN in the state). A format added
under pipelines/formats/<name>/reader.py without a factory here fails the suite.

Contract: the reader counts 3 episodes; reading [0, 3) yields, in order, an
Episode whose invariants hold for index 0 and Quarantined records with a reason
for 1 and 2, without raising; ranges are deterministic (resume from 1 gives the
same ids, reading [0, 1) twice gives the same arrays).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from datasets_cards import Episode, SourceCard, list_sources, load_source_card
from datasets_cards.registry import UnknownNameError
from pipelines.formats import READERS, Quarantined, open_reader

N_EPISODES = 3
GOOD, EMPTY, BAD = 0, 1, 2


# ---- hdf5: LIBERO's robomimic layout, built by hand as in hdf5/test_hdf5_reader.py ---------------

def _hdf5_libero(root: Path) -> tuple[SourceCard, str]:
    """One robomimic file, data/demo_0..2: demo_0 good (8 steps), demo_1 zero steps (every dataset
    has length 0: HDF5 can store that), demo_2 NaN in obs/ee_pos."""
    h5py = pytest.importorskip("h5py", reason="the hdf5 reader needs h5py")
    h, w = 16, 24
    with h5py.File(root / "task.hdf5", "w") as f:
        data = f.create_group("data")
        data.attrs["problem_info"] = json.dumps({"problem_name": "stove", "language_instruction": "turn on the stove"})
        for index, t in ((GOOD, 8), (EMPTY, 0), (BAD, 8)):
            demo = data.create_group(f"demo_{index}")
            steps = np.arange(t, dtype=np.float64)[:, None]
            ee_pos = np.hstack([steps, steps + 1, steps + 2]).reshape(t, 3) * 0.01
            if index == BAD:
                ee_pos[2, 0] = np.nan
            demo["obs/ee_pos"] = ee_pos
            demo["obs/ee_ori"] = np.zeros((t, 3))
            demo["obs/agentview_rgb"] = np.full((t, h, w, 3), 100, np.uint8)
            demo["obs/eye_in_hand_rgb"] = np.zeros((t, h, w, 3), np.uint8)
            actions = np.zeros((t, 7))
            actions[:, 6] = np.where(np.arange(t) < t // 2, -1.0, 1.0)  # LIBERO: -1 open, +1 close
            demo["actions"] = actions
    return load_source_card("libero"), str(root)


# ---- lerobot: the CALVIN-shaped v2.1 fixture of lerobot_fixtures.py ------------------------------

def _lerobot_calvin(root: Path) -> tuple[SourceCard, str]:
    """CALVIN v2.1: episode 0 good, episode 1 emptied after writing (the writer refuses zero-length
    episodes, so its parquet is rewritten with no rows and meta/episodes.jsonl says length 0; its video
    stays), episode 2 NaN in observation.state."""
    pytest.importorskip("av", reason="the lerobot reader decodes video with PyAV")
    import pyarrow.parquet as pq

    from pipelines.formats.lerobot.writer import write_lerobot_v21
    from tests.pipelines.formats.lerobot_fixtures import FPS, calvin_episode, calvin_features, episode_lengths

    episodes = [calvin_episode(e, n) for e, n in enumerate(episode_lengths(N_EPISODES))]
    episodes[BAD].data["observation.state"][4, 2] = np.nan
    dataset = write_lerobot_v21(root / "calvin", fps=FPS, features=calvin_features(), episodes=episodes)

    parquet = dataset / f"data/chunk-000/episode_{EMPTY:06d}.parquet"
    pq.write_table(pq.read_table(parquet).slice(0, 0), parquet)
    lines_path = dataset / "meta/episodes.jsonl"
    lines = [json.loads(line) for line in lines_path.read_text().splitlines() if line.strip()]
    for line in lines:
        if line["episode_index"] == EMPTY:
            line["length"] = 0
    lines_path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return load_source_card("calvin"), str(dataset)


# ---- rlds: the synthetic Bridge dataset with injected faults (rlds_fixtures.py) ------------------

def _rlds_bridge(root: Path) -> tuple[SourceCard, str]:
    """bridge_orig schema, 6 steps: episode 1 "zero_steps" (no steps at all), episode 2 "nan_state"."""
    pytest.importorskip("tensorflow_datasets", reason="RLDS needs the tfds extra")
    from tests.pipelines.formats.rlds_fixtures import make_rlds_fixture

    path = make_rlds_fixture(root, "bridge", N_EPISODES, 6, faults={EMPTY: "zero_steps", BAD: "nan_state"})
    return load_source_card("bridge"), str(path)


# format name → factory(folder) -> (source card, location); must cover READERS.names()
FORMAT_FIXTURES: dict[str, Callable[[Path], tuple[SourceCard, str]]] = {
    "hdf5": _hdf5_libero,
    "lerobot": _lerobot_calvin,
    "rlds": _rlds_bridge,
}


def test_every_registered_format_has_a_contract_fixture():
    assert set(FORMAT_FIXTURES) == set(READERS.names()), (
        "add a factory to FORMAT_FIXTURES for each format in pipelines/formats/ (and drop removed ones)")


@pytest.fixture(scope="module", params=READERS.names())
def dataset(request, tmp_path_factory) -> tuple[SourceCard, str]:
    """(card, location) of the format's 3-episode dataset, built once per format."""
    fmt = request.param
    if fmt not in FORMAT_FIXTURES:
        pytest.fail(f"source format {fmt!r} is registered but has no factory in FORMAT_FIXTURES")
    card, location = FORMAT_FIXTURES[fmt](tmp_path_factory.mktemp(f"contract-{fmt}"))
    assert card.format == fmt, f"the {fmt} fixture returned a card of format {card.format!r}"
    return card, location


def _arrays(episode: Episode) -> dict[str, np.ndarray]:
    return {"arm_state": episode.arm_state, "gripper": episode.gripper, "actions": episode.actions}


def test_num_episodes_counts_good_empty_and_bad_episodes(dataset):
    card, location = dataset
    reader = open_reader(card, location)
    assert reader.format == card.format
    assert reader.num_episodes() == N_EPISODES


def test_full_read_yields_one_episode_then_quarantines_empty_and_bad_in_order(dataset):
    card, location = dataset
    items = list(open_reader(card, location).read(0, N_EPISODES))  # must not raise

    assert [type(item) for item in items] == [Episode, Quarantined, Quarantined], items
    episode = items[GOOD]
    episode.validate()
    assert episode.num_frames >= 1 and episode.source == card.name
    assert episode.cameras == list(card.cameras)
    for camera, frames in episode.frames.items():
        assert len(frames) == episode.num_frames, camera
        assert frames.load().shape[0] == episode.num_frames, camera  # decoded count, not just the declared one
    for index in (EMPTY, BAD):
        record = items[index]
        assert isinstance(record.reason, str) and record.reason.strip(), record
        assert record.episode_id and record.stage == "read"
    assert "non-finite values (NaN/inf) in arm_state" in items[BAD].reason, items[BAD].reason
    assert "zero-length episode" in items[EMPTY].reason, items[EMPTY].reason  # the reason, not a crash message
    ids = [item.episode_id for item in items]
    assert len(set(ids)) == N_EPISODES, ids


def test_resumed_range_yields_the_same_episode_ids(dataset):
    card, location = dataset
    full = [item.episode_id for item in open_reader(card, location).read(0, N_EPISODES)]
    resumed = [item.episode_id for item in open_reader(card, location).read(1, N_EPISODES)]
    assert resumed == full[1:]


def test_reading_the_first_episode_twice_gives_equal_arrays(dataset):
    card, location = dataset
    reader = open_reader(card, location)
    (first,) = reader.read(0, 1)
    (again,) = reader.read(0, 1)
    (fresh,) = open_reader(card, location).read(0, 1)  # a resumed worker opens its own reader
    assert isinstance(first, Episode) and isinstance(again, Episode) and isinstance(fresh, Episode)
    for other in (again, fresh):
        assert other.episode_id == first.episode_id and other.instruction == first.instruction
        for name, values in _arrays(first).items():
            np.testing.assert_array_equal(_arrays(other)[name], values, err_msg=name)


def test_every_format_strips_the_cards_instruction_tags(dataset):
    """A scene tag the corpus appends ("... cardboardfence") is declared in the card and stripped by every reader."""
    card, location = dataset
    (plain,) = open_reader(card, location).read(0, 1)
    *words, tag = plain.instruction.split()
    tagged = card.model_copy(update={"instruction_tags": [tag.upper()]})  # case does not matter
    (stripped,) = open_reader(tagged, location).read(0, 1)
    assert stripped.instruction == " ".join(words) != plain.instruction


def test_unknown_format_raises_unknown_name_error_listing_the_registered_formats():
    base = load_source_card("libero")
    card = SourceCard(**{**base.model_dump(), "format": "no-such-format"})
    with pytest.raises(UnknownNameError) as info:
        open_reader(card, "/nonexistent")
    message = str(info.value)
    assert "no-such-format" in message
    assert {"hdf5", "lerobot", "rlds"} <= set(info.value.known)
    # today "known: hdf5, lerobot, rlds"; joined from READERS so a new format does not break this test
    assert f"known: {', '.join(READERS.names())}" in message


@pytest.mark.parametrize("name", list_sources())
def test_every_committed_source_card_names_a_registered_format(name):
    """Cards cannot see pipelines/formats/, so a card's format is checked here (and when a run opens it)."""
    assert load_source_card(name).format in READERS.names()


def test_the_fingerprint_follows_the_data_not_its_place(dataset, tmp_path):
    """A resume compares fingerprints: a copy of the dataset elsewhere agrees, the dataset changed does not."""
    card, location = dataset
    fingerprint = open_reader(card, location).fingerprint()
    source = Path(location)
    copy = tmp_path / "copy" / source.name
    (shutil.copytree if source.is_dir() else shutil.copy2)(source, copy)
    assert open_reader(card, str(copy)).fingerprint() == fingerprint
    if card.format == "rlds":  # identified by its TFDS metadata, which names every shard's episodes and bytes
        info = next(copy.rglob("dataset_info.json"))
        info.write_text(info.read_text().replace('"numBytes": "', '"numBytes": "1'))
    else:  # the largest file (episodes, not metadata) rewritten in place at the same size
        files = [p for p in ([copy] if copy.is_file() else copy.rglob("*")) if p.is_file()]
        data = max(files, key=lambda p: p.stat().st_size)
        raw = bytearray(data.read_bytes())
        raw[-1] ^= 0xFF
        data.write_bytes(bytes(raw))
    assert open_reader(card, str(copy)).fingerprint() != fingerprint
