import itertools
import json
from collections import Counter

import pytest
import torch
from torch.utils.data import DataLoader

from datasets_cards import SchemaVersionError, load_output_card
from datasets_cards.constants import MANIFEST_FILE
from tests.trainer.factories import (
    la_rows,
    make_gaze_folder,
    make_la_folder,
    write_output_folder,
)
from trainer.collate import CardCollate, CollateSpec
from trainer.data import (
    Holdout,
    MixtureDataset,
    ShardDataset,
    ShardIntegrityError,
    ShardLoader,
    default_workers,
    parse_data,
)


@pytest.fixture(scope="module")
def la_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("la")
    make_la_folder(root)
    return root


def _keys(ds):
    return [r["episode_id"] for r in ds]


def _ids(batch):
    return list(batch["episode_id"])


def _collate_ids(rows):
    return {"episode_id": [r["episode_id"] for r in rows]}


def _loader(root, rank, world, workers, batch_size=3, **kw):
    ds = ShardDataset(str(root), columns=["episode_id"], rank=rank, world_size=world, window=2, buffer_size=6,
                      holdout=Holdout("source_episode_id", 0.25, "train"), **kw)
    # forkserver: the full suite has imported TensorFlow and Prefect, whose threads make fork unsafe.
    loader = ShardLoader(ds, _collate_ids, batch_size,
                         num_workers=workers, seed=kw.get("seed", 0))
    if workers:
        loader._loader.multiprocessing_context = "forkserver"
    return loader


def _run(root, world, workers, steps, state=None, batch_size=3):
    """`steps` global batches from `state` (or the start) on `world` ranks: the samples in global order,
    every rank's batch count per epoch, and the state to resume from."""
    iters, loaders = [], []
    for rank in range(world):
        loader = _loader(root, rank, world, workers, batch_size=batch_size)
        if state:
            loader.load_state_dict(state)
        loaders.append(loader)
        iters.append(iter(loader))
    seen, counts = [], [Counter() for _ in range(world)]
    position = None
    for _ in range(steps):
        for rank, batches in enumerate(iters):
            batch, position = next(batches)
            seen += [(position.epoch, key) for key in _ids(batch)]
            counts[rank][position.epoch] += 1
    nxt = [next(batches)[1] for batches in iters]
    assert len({(p.epoch, p.sample) for p in nxt}) == 1  # every rank agrees where the job stands
    return seen, counts, loaders[0].state_dict(nxt[0]), loaders[0]


def test_global_order_is_the_same_for_every_world_size_and_worker_count(la_dir):
    reference, _, _, loader = _run(la_dir, 1, 0, 60)
    per_epoch = loader.batches_per_epoch(0)
    kept = loader.dataset.epoch_length(0)
    first = [k for e, k in reference if e == 0]
    assert len(first) == per_epoch * 3 == kept - kept % 3 and len(set(first)) == len(first)  # each kept row once
    for world, workers in ((2, 0), (3, 0), (2, 2), (1, 2)):
        steps = 30 // world
        seen, counts, _, _ = _run(la_dir, world, workers, steps)
        for epoch in {e for e, _ in seen}:  # each epoch: a prefix of the same sequence (a longer tail dropped)
            mine, ref = [k for e, k in seen if e == epoch], [k for e, k in reference if e == epoch]
            assert mine == ref[: len(mine)] and len(mine) >= len(ref) - 3 * world or epoch == max(e for e, _ in seen)
        full = {e for e in counts[0] if (e + 1) * (kept // (3 * world)) <= steps}  # completed epochs
        assert all(c[e] == counts[0][e] for c in counts for e in full)  # even: every rank as many batches


def test_resume_mid_epoch_on_another_world_size_continues_the_same_sequence(la_dir):
    reference, _, _, loader = _run(la_dir, 1, 0, 12, batch_size=2)
    assert loader.batches_per_epoch(0) >= 12
    head, _, state, _ = _run(la_dir, 2, 0, 3, batch_size=2)  # 3 global batches of 2 × 2 samples, then "killed"
    assert state["sample"] == 12
    for world, workers in ((1, 0), (3, 1), (2, 2)):
        tail, _, _, _ = _run(la_dir, world, workers, 6 // world, state, batch_size=2)
        assert head + tail == reference[: len(head) + len(tail)], (world, workers)


def test_holdout_sides_split_the_rows_and_old_positions_are_refused(la_dir):
    train = ShardDataset(str(la_dir), columns=["episode_id"], holdout=Holdout("source_episode_id", 0.25, "train"))
    held = ShardDataset(str(la_dir), columns=["episode_id"], holdout=Holdout("source_episode_id", 0.25, "eval"))
    assert train.epoch_length() + held.epoch_length() == train.num_rows
    assert not {r["episode_id"] for r in train} & {r["episode_id"] for r in held}
    loader = _loader(la_dir, 0, 1, 0)
    with pytest.raises(ValueError, match="older trainer"):
        loader.load_state_dict({"epoch": 0, "batch": 3, "num_workers": 4, "world_size": 1, "batch_size": 3})


def test_workers_default_follows_the_cores_of_the_process(monkeypatch):
    monkeypatch.setattr("os.sched_getaffinity", lambda _: {0, 1}, raising=False)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert default_workers() == 2
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert default_workers() == 0  # one core per process: read in the training process
    monkeypatch.setattr("os.sched_getaffinity", lambda _: set(range(64)), raising=False)
    assert default_workers() == 4


def test_data_specs_parse_weights_urls_and_yaml(tmp_path):
    assert parse_data("a") == [("a", 1.0)]
    assert parse_data("out/a:0.7, s3://b/c:0.3") == [("out/a", 0.7), ("s3://b/c", 0.3)]
    assert parse_data("a,b") == [("a", 0.5), ("b", 0.5)]
    spec = tmp_path / "mix.yaml"
    spec.write_text("sources:\n  - {path: a, weight: 3}\n  - {path: b, weight: 1}\n")
    assert parse_data(str(spec)) == [("a", 0.75), ("b", 0.25)]
    with pytest.raises(ValueError, match="weights"):
        parse_data("a:-1,b:1")


@pytest.fixture(scope="module")
def two_la_dirs(tmp_path_factory):
    a, b = tmp_path_factory.mktemp("mix-a"), tmp_path_factory.mktemp("mix-b")
    write_output_folder(a, "la", la_rows(episodes=400, segments=5), rows_per_shard=500, row_group_rows=50)
    write_output_folder(b, "la", la_rows(episodes=400, segments=5, seed=1), rows_per_shard=500, row_group_rows=50)
    return a, b


def test_mixture_draws_by_weight_reproducibly_and_resumes_on_another_world_size(two_la_dirs):
    def mixture(seed=0, rank=0, world=1):
        sources = [ShardDataset(str(d), columns=["episode_id"], verify_checksums=False, rank=rank, world_size=world)
                   for d in two_la_dirs]
        return MixtureDataset(sources, [0.7, 0.3], seed=seed, rank=rank, world_size=world)

    mix = mixture()
    n = mix.epoch_length(0)
    assert n >= 2000  # ends when the 0.7 source runs out: about 2000 / 0.7 draws
    draws = [mix.locate(0, i)[0] for i in range(n)]
    share = draws.count(0) / n
    assert abs(share - 0.7) < 0.03, share
    again, other = mixture(), mixture(seed=1)
    assert draws == [again.locate(0, i)[0] for i in range(n)]  # reproducible by seed
    assert draws != [other.locate(0, i)[0] for i in range(other.epoch_length(0))]
    located = [mix.locate(0, i) for i in range(n)]
    assert len(set(located)) == n  # no source sample twice
    # rows: the same global sequence read on 2 ranks from a mid-epoch offset
    whole = [r["episode_id"] for r in mix.rows_at(0, list(range(100, 112)))]
    ranks = [mixture(rank=r, world=2) for r in range(2)]
    for r in ranks:
        r.set_position(0, 100, 3)
    two = [[x["episode_id"] for x in itertools.islice(iter(r), 6)] for r in ranks]
    assert two[0][:3] + two[1][:3] + two[0][3:] + two[1][3:] == whole


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
