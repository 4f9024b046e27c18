"""Episode ids are unique over a whole run: checked before units are cut, and again as shards land.

Built on an RLDS dataset in Bridge's published layout where, as in real Bridge, trajectories share
their out.npy `file_path` and `episode_id` restarts in every file: neither key alone is unique.
"""

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from datasets_cards.manifest import DuplicateEpisodeError, Manifest, ShardRecord
from pipelines.flows.annotate import annotate
from pipelines.formats import DuplicateEpisodeIdError
from tests.pipelines.formats.rlds_fixtures import make_rlds_fixture

pytest.importorskip("tensorflow_datasets")
EPISODES = 4


@pytest.fixture(scope="module")
def bridge_like(tmp_path_factory) -> Path:
    return make_rlds_fixture(tmp_path_factory.mktemp("bridge-like"), "bridge", n_episodes=EPISODES, n_steps=30)


def card_file(folder: Path, location: Path, keys: str | None) -> str:
    """A card given by path (as a user would write one) over the bridge-like data."""
    path = folder / "my-bridge.yaml"
    text = f"extends: bridge\nname: my-bridge\ndescription: bridge-like\nlocation: {location}\n"
    if keys is not None:
        text += f"episode_id_keys: {keys}\n"
    path.write_text(text)
    return str(path)


def test_ids_that_repeat_stop_the_run_before_any_unit_is_written(bridge_like, tmp_path):
    card = card_file(tmp_path, bridge_like, "[episode_metadata/file_path]")  # the old, too-short key
    with pytest.raises(DuplicateEpisodeIdError, match=r"folder0/out\.npy' at 0 and 1.*episode_id_keys"):
        annotate(source=card, pipeline="la", out=str(tmp_path / "out"), episodes_per_shard=1,
                 options={"plots": 0, "review": False})
    assert not (tmp_path / "out" / "la" / "my-bridge" / "shards").exists()
    card = card_file(tmp_path, bridge_like, None)  # the user adds the missing key and runs again, same OUT
    manifest = annotate(source=card, pipeline="la", out=str(tmp_path / "out"), episodes_per_shard=1,
                        options={"plots": 0, "review": False})
    assert manifest.complete and len({e for s in manifest.shards for e in s.episodes}) == EPISODES


def test_bridge_card_keys_give_every_episode_its_own_rows_across_units(bridge_like, tmp_path):
    card = card_file(tmp_path, bridge_like, None)  # the bridge card's keys: file_path and episode_id
    manifest = annotate(source=card, pipeline="la", out=str(tmp_path / "out"), episodes_per_shard=1,
                        options={"plots": 0, "review": False})
    assert manifest.complete and len(manifest.shards) == EPISODES and manifest.quarantined == 0
    episodes = [e for s in manifest.shards for e in s.episodes]
    assert len(set(episodes)) == EPISODES
    assert episodes[:2] == ["/synthetic/bridge/raw/folder0/out.npy#0", "/synthetic/bridge/raw/folder0/out.npy#1"]
    table = pq.read_table(tmp_path / "out" / "la" / "my-bridge" / "shards")
    assert set(table.column("source_episode_id").to_pylist()) == set(episodes)


def _record(path: str, episodes: list[str]) -> ShardRecord:
    return ShardRecord(unit=path, path=path, rows=1, bytes=1, sha256="0", episodes=episodes, seconds=0.0)


def test_the_manifest_refuses_a_shard_repeating_another_shards_episode():
    manifest = Manifest(pipeline="la", output_card_version="1", source="s", source_location="x", config_hash="h",
                        config={}, code_version="v", created="t", updated="t")
    manifest.add_shard(_record("shards/shard-00000.parquet", ["a", "b"]))
    manifest.add_shard(_record("shards/shard-00000.parquet", ["a", "b"]))  # the same unit again: replaced
    with pytest.raises(DuplicateEpisodeError, match="shard-00001.parquet and shards/shard-00000.parquet.*'b'"):
        manifest.add_shard(_record("shards/shard-00001.parquet", ["b", "c"]))
    assert [s.path for s in manifest.shards] == ["shards/shard-00000.parquet"]


def test_a_card_file_named_like_a_built_in_card_is_the_card_the_units_use(bridge_like, tmp_path):
    """Units get the card itself: the built-in `bridge` (its data on GCS) never stands in for the file."""
    path = tmp_path / "bridge.yaml"
    path.write_text(f"extends: bridge\nname: bridge\ndescription: my copy\nlocation: {bridge_like}\n")
    manifest = annotate(source=str(path), pipeline="la", out=str(tmp_path / "out"), episodes_per_shard=2,
                        options={"plots": 0, "review": False})
    assert manifest.complete and manifest.rows > 0 and manifest.quarantined == 0
    assert manifest.source_location == str(bridge_like)
