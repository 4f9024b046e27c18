import json
from collections import Counter

import pytest
import torch
from torch.utils.data import DataLoader

from datasets_cards import SchemaVersionError, load_output_card
from datasets_cards.constants import MANIFEST_FILE
from tests.trainer.factories import make_gaze_folder, make_la_folder
from trainer.collate import CardCollate, CollateSpec
from trainer.data import ShardDataset, ShardIntegrityError, batches_before


@pytest.fixture(scope="module")
def la_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("la")
    make_la_folder(root)
    return root


def _keys(ds):
    return [r["episode_id"] for r in ds]


def test_two_ranks_two_workers_read_every_row_exactly_once(la_dir):
    seen = Counter()
    for rank in range(2):
        ds = ShardDataset(str(la_dir), columns=["episode_id"], rank=rank, world_size=2, buffer_size=8)
        # forkserver: the full suite has imported TensorFlow and Prefect, whose threads make fork unsafe.
        for row in DataLoader(ds, batch_size=None, num_workers=2, multiprocessing_context="forkserver"):
            seen[row["episode_id"]] += 1
    assert len(seen) == 36 and set(seen.values()) == {1}


def test_shuffle_is_seeded_and_changes_with_epoch(la_dir):
    a, b = (ShardDataset(str(la_dir), columns=["episode_id"], seed=3, buffer_size=8) for _ in range(2))
    assert _keys(a) == _keys(b)
    first = _keys(a)
    a.set_epoch(1)
    assert _keys(a) != first and sorted(_keys(a)) == sorted(first)


@pytest.mark.parametrize(("consumed", "stream", "streams", "expected"), [(0, 0, 2, 0), (5, 0, 2, 3), (5, 1, 2, 2), (1, 1, 2, 0)])
def test_batches_before_counts_round_robin_turns(consumed, stream, streams, expected):
    assert batches_before(consumed, stream, streams) == expected


def test_checksum_mismatch_is_refused(tmp_path):
    make_la_folder(tmp_path)
    manifest = json.loads((tmp_path / MANIFEST_FILE).read_text())
    manifest["shards"][1]["sha256"] = "0" * 64
    (tmp_path / MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(ShardIntegrityError, match="sha256"):
        ShardDataset(str(tmp_path))


def test_other_schema_major_is_refused(tmp_path):
    make_la_folder(tmp_path)
    manifest = json.loads((tmp_path / MANIFEST_FILE).read_text())
    manifest["output_card_version"] = "2.0.0"
    (tmp_path / MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(SchemaVersionError, match="major 1"):
        ShardDataset(str(tmp_path))


def test_la_collate_pads_trajectories_with_masks(la_dir):
    collate = CardCollate(load_output_card("la"), CollateSpec(byte_columns={"instruction": 16}))
    rows = list(ShardDataset(str(la_dir), decode_row=collate.decode_row, shuffle=False))[:4]
    batch = collate(rows)
    lengths = [len(r["actions"]) for r in rows]
    assert batch["actions"].shape == (4, max(lengths), 7)
    assert batch["actions_mask"].sum(1).tolist() == lengths
    assert batch["instruction"].shape == (4, 16) and batch["instruction"].dtype == torch.uint8


def test_gaze_collate_decodes_images_and_marks_missing_crops(tmp_path):
    make_gaze_folder(tmp_path)
    spec = CollateSpec(image_size=(32, 32), image_sizes={"crop": (8, 8)})
    collate = CardCollate(load_output_card("gaze"), spec)
    rows = list(ShardDataset(str(tmp_path), decode_row=collate.decode_row, shuffle=False))[:8]
    batch = collate(rows)
    assert batch["image"].shape == (8, 3, 32, 32) and batch["crop"].shape == (8, 3, 8, 8)
    assert batch["crop_valid"].tolist() == [r["crop"] is not None for r in rows]
    assert not batch["crop_valid"].all()
