"""A review writes a new manifest generation beside the candidates; a failed or killed one damages nothing."""

from __future__ import annotations

import hashlib

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from datasets_cards.manifest import Manifest
from pipelines.la.review.apply import VERDICT_SCHEMA, VERIFIED_DIR, apply_verdicts, publish


def verdicts(la_run, quality: float = 3.0) -> pa.Table:
    rows = [dict(zip(VERDICT_SCHEMA.names, (e, i, quality, 2.0, 1, None, None, None, None)))
            for e in la_run.episode_ids for i in (0, 1)]
    return pa.Table.from_pylist(rows, schema=VERDICT_SCHEMA)


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def candidates(la_run) -> dict[str, str]:
    return {p.name: digest(p) for p in (la_run.out_dir / "shards").glob("*.parquet")}


def test_each_review_is_a_new_generation_and_the_old_one_is_dropped(la_run):
    before = candidates(la_run)
    apply_verdicts(str(la_run.out_dir), verdicts(la_run))
    first = Manifest.load(str(la_run.out_dir))
    assert first.generation == 1 and first.rows == 6 and first.current_shards[0].path.startswith("verified/0001/")
    shard = la_run.out_dir / first.current_shards[0].path
    assert digest(shard) == first.current_shards[0].sha256  # what the trainer checks
    apply_verdicts(str(la_run.out_dir), verdicts(la_run, quality=0.0))
    second = Manifest.load(str(la_run.out_dir))
    assert second.generation == 2 and second.rows == 0
    assert not (la_run.out_dir / VERIFIED_DIR / "0001").exists()
    assert candidates(la_run) == before and [s.rows for s in second.shards] == [6]


def test_a_review_that_fails_while_writing_leaves_the_candidates_and_the_manifest_as_they_were(la_run):
    before, manifest = candidates(la_run), Manifest.load(str(la_run.out_dir))
    (la_run.out_dir / VERIFIED_DIR).write_text("not a folder")  # the generation cannot be written
    with pytest.raises(OSError):
        apply_verdicts(str(la_run.out_dir), verdicts(la_run))
    after = Manifest.load(str(la_run.out_dir))
    assert candidates(la_run) == before and after.generation == 0 and after.shards == manifest.shards


def test_a_review_killed_part_way_is_redone_from_the_candidates(la_run):
    half = la_run.out_dir / VERIFIED_DIR / "0001" / "shard-00000.parquet"
    half.parent.mkdir(parents=True)
    half.write_bytes(b"PAR1 half a shard")  # as a killed review leaves it: never committed
    apply_verdicts(str(la_run.out_dir), verdicts(la_run))
    manifest = Manifest.load(str(la_run.out_dir))
    assert manifest.generation == 1 and pq.read_table(half).num_rows == 6
    assert digest(half) == manifest.current_shards[0].sha256


def test_publish_exports_the_generation_in_force(la_run):
    apply_verdicts(str(la_run.out_dir), verdicts(la_run, quality=0.0))
    assert publish(str(la_run.out_dir))["episodes"] == 0  # nothing kept: an empty layout, not the candidates
    apply_verdicts(str(la_run.out_dir), verdicts(la_run))
    assert publish(str(la_run.out_dir))["episodes"] == 6
    assert "Human verification" in (la_run.out_dir / "card.md").read_text()


def test_the_hub_readme_names_the_generation_in_force(la_run, tmp_path):
    """README.md follows the review: `load_dataset(folder)` reads the verified rows, never the candidates."""
    import yaml

    from tests.pipelines.hub_checks import check_loads_with_datasets

    apply_verdicts(str(la_run.out_dir), verdicts(la_run, quality=0.0))
    publish(str(la_run.out_dir))
    apply_verdicts(str(la_run.out_dir), verdicts(la_run))
    publish(str(la_run.out_dir))
    meta = yaml.safe_load((la_run.out_dir / "README.md").read_text().split("---\n")[1])
    generation = Manifest.load(str(la_run.out_dir)).generation
    assert generation == 2
    assert meta["configs"][0]["data_files"] == [{"split": "train", "path": [f"verified/{generation:04d}/shard-*.parquet"]}]
    check_loads_with_datasets(la_run.out_dir, tmp_path / "hf")  # the 6 kept rows, candidates beside them
