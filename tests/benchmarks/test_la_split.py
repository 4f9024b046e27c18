"""The fit / report split of benchmarks/la_split.py: named seeds, disjoint, generated on demand."""

from __future__ import annotations

import pytest

from benchmarks.la_split import (
    COMMITTED_SEED,
    FIT_SEEDS,
    REPORT_SEEDS,
    ensure_generation,
    generation_dir,
    set_data,
    tolerance_for,
)
from pipelines.sample.ground_truth import SCHEMAS


def test_fit_report_and_committed_seeds_are_disjoint():
    assert FIT_SEEDS and REPORT_SEEDS
    assert not set(FIT_SEEDS) & set(REPORT_SEEDS)
    assert COMMITTED_SEED not in set(FIT_SEEDS) | set(REPORT_SEEDS)


@pytest.mark.parametrize(("fps", "expected"), [(15.0, 2), (10.0, 2), (5.0, 1), (3.0, 1)])
def test_keyframe_tolerance_is_one_frame_at_five_hz_and_below(fps, expected):
    assert tolerance_for(fps) == expected


def test_a_set_pools_its_seeds_under_distinct_episode_ids(tmp_path, monkeypatch):
    pytest.importorskip("pybullet", reason="the generator needs the `sim` extra")
    pytest.importorskip("tensorflow_datasets", reason="reading RLDS needs the `tfds` extra")
    import benchmarks.la_split as split

    monkeypatch.setitem(split.SETS, "tiny", (5, 6))
    episodes, truth = set_data("tiny", "fractal", tmp_path, episodes=1)
    ids = [e[0] for e in episodes]
    assert len(ids) == 2 and ids[0].startswith("s5/") and ids[1].startswith("s6/")
    assert set(truth["labels"]) == set(ids) == set(truth["keyframes"])
    for eid, fps, state, gripper in episodes:
        assert fps == 3.0 and len(state) == len(gripper) == truth["num_frames"][eid] == len(truth["labels"][eid])
    # cached: a second call generates nothing (the folder's files are left as they were)
    folder = generation_dir(5, tmp_path, 1)
    stamp = {p: p.stat().st_mtime_ns for p in folder.rglob("*.parquet")}
    assert ensure_generation(5, tmp_path, 1) == folder
    assert {p: p.stat().st_mtime_ns for p in folder.rglob("*.parquet")} == stamp
    assert all((folder / s).is_dir() for s in SCHEMAS)
