"""The trainer's loader reads shards from s3:// (fsspec) exactly as from a local folder."""

from __future__ import annotations

import fsspec
import pytest

from tests.trainer.factories import make_la_folder
from trainer.data import ShardDataset, ShardLoader


def _collate(rows):
    return {"episode_id": [r["episode_id"] for r in rows], "start": [int(r["start"]) for r in rows]}


def _batches(root: str, workers: int, n: int = 3) -> list[dict]:
    ds = ShardDataset(root, columns=["episode_id", "start"], window=2, buffer_size=6, seed=3)
    loader = ShardLoader(ds, _collate, 4, num_workers=workers, seed=3)
    if workers:
        loader._loader.multiprocessing_context = "forkserver"  # as tests/trainer: fork is unsafe after TF/Prefect
    it = iter(loader)
    return [next(it)[0] for _ in range(n)]


@pytest.mark.parametrize("workers", [0, 1])
def test_loader_reads_s3_shards_like_local_ones(tmp_path, s3_prefix, workers):
    make_la_folder(tmp_path / "la")
    remote = f"{s3_prefix}/la"
    fs, path = fsspec.core.url_to_fs(remote)
    fs.put(str(tmp_path / "la"), path, recursive=True)
    local = _batches(str(tmp_path / "la"), workers)
    assert _batches(remote, workers) == local
    assert len({e for b in local for e in b["episode_id"]}) > 1
