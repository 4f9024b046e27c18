import hashlib

import pyarrow.parquet as pq
import pytest

from datasets_cards import load_output_card
from pipelines.io import ShardWriter


def future_row(i: int, episode: str = "ep") -> dict:
    return {
        "episode_id": episode, "source": "test", "camera": "cam", "frame_index": i, "view": 0, "num_frames": i + 1,
        "feature": [0.5] * 4, "instruction": "x", "state": [0.0] * 3, "state_valid": [1] * 3,
        "actions": [[0.0] * 2], "action_valid": [1] * 2,
    }


@pytest.mark.parametrize("n_rows", [0, 1, 5, 1030])
def test_writer_counts_rows_and_checksums_the_file(tmp_path, n_rows):
    card = load_output_card("future")
    path = tmp_path / "shards" / "shard-00000.parquet"
    with ShardWriter(card, str(path), row_group_rows=512) as w:
        w.write_rows([future_row(i) for i in range(n_rows)])
    rows, size, sha = w.result
    assert rows == n_rows == pq.read_metadata(path).num_rows
    assert size == path.stat().st_size
    assert sha == hashlib.sha256(path.read_bytes()).hexdigest()
    assert pq.read_schema(path).remove_metadata() == card.arrow_schema().remove_metadata()
    assert [p.name for p in path.parent.iterdir()] == ["shard-00000.parquet"]  # no temp file left


def test_writer_one_row_group_per_row_group_rows(tmp_path):
    path = tmp_path / "s.parquet"
    with ShardWriter(load_output_card("future"), str(path), row_group_rows=4) as w:
        w.write_rows([future_row(i) for i in range(10)])
    assert pq.ParquetFile(path).num_row_groups == 3


def test_writer_rejects_duplicate_keys(tmp_path):
    with pytest.raises(ValueError, match="duplicate row key"):
        with ShardWriter(load_output_card("future"), str(tmp_path / "s.parquet")) as w:
            w.write_rows([future_row(1), future_row(1)])
    assert list(tmp_path.iterdir()) == []  # nothing half-written stays behind


def test_writer_rejects_rows_that_break_the_card_schema(tmp_path):
    bad = future_row(0) | {"frame_index": "zero"}
    with pytest.raises(ValueError, match="card schema"):
        with ShardWriter(load_output_card("future"), str(tmp_path / "s.parquet")) as w:
            w.write_rows([bad])
    assert list(tmp_path.iterdir()) == []


def test_finalize_is_idempotent(tmp_path):
    w = ShardWriter(load_output_card("future"), str(tmp_path / "s.parquet"))
    with w:
        w.write_rows([future_row(0)])
    assert w.finalize() == w.result
