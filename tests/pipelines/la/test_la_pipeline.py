"""The la pipeline on synthetic episodes: rows, statistics, plots, LeRobot v3.0 (and v2.1), verdicts."""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from datasets_cards import Episode, load_output_card, load_source_card
from datasets_cards.manifest import Manifest, ShardRecord
from pipelines.base import make_pipeline, merge_stats
from pipelines.formats.lerobot.validate import validate_lerobot_v21
from pipelines.io import ShardWriter
from pipelines.la.export import write_layouts
from pipelines.la.review.apply import VERDICT_SCHEMA, apply_verdicts, publish
from tests.pipelines.la.lerobot_checks import assert_lerobot_v30_holds
from tests.annotators.segments.segment_factories import PICK_AND_PLACE, phase_trajectory


def make_episode(index: int) -> Episode:
    item, _ = phase_trajectory(PICK_AND_PLACE, seed=index)
    actions = np.concatenate([item.arm_state, item.gripper[:, None]], axis=1)
    return Episode(f"ep{index}", "droid", "put the cup in the bowl", item.fps, {}, item.arm_state, item.gripper, actions)


@pytest.fixture(scope="module")
def pipe():
    return make_pipeline("la", load_source_card("droid"), {"plots": 1, "review": False})


def read_current(out: str) -> list[dict]:
    manifest = Manifest.load(out)
    return pa.concat_tables([pq.read_table(f"{out}/{s.path}") for s in manifest.current_shards]).to_pylist()


@pytest.fixture(scope="module")
def run(tmp_path_factory, pipe):
    """Two units of episodes annotated as the flow does (rows, artifacts, stats per episode), then finalize and steps."""
    out = str(tmp_path_factory.mktemp("la") / "la" / "droid")
    manifest = Manifest(pipeline="la", output_card_version="1.0.0", source="droid", source_location="synthetic",
                        config_hash="x", config=pipe.config(), code_version="test", created="", updated="")
    index = 0
    for unit, episodes in enumerate([[make_episode(0), make_episode(1)], [make_episode(2)]]):
        path = f"shards/shard-{unit:05d}.parquet"
        stats = pipe.unit_stats([])
        with ShardWriter(pipe.output, f"{out}/{path}") as w:
            for episode in episodes:
                rows = pipe.annotate(episode)
                w.write_rows(rows)
                stats = merge_stats(merge_stats(stats, pipe.unit_stats(rows)),
                                    pipe.episode_artifacts(episode, rows, out, index))
                index += 1
        n, size, sha = w.result
        manifest.shards.append(ShardRecord(unit=f"{unit}:{unit + 1}", path=path, rows=n, bytes=size, sha256=sha,
                                           episodes=[e.episode_id for e in episodes], seconds=0.0, stats=stats))
    manifest.stats = pipe.finalize(out, manifest)
    manifest.save(out)
    for step in pipe.steps():
        manifest.stats[step.name] = step.run(out, manifest)
    manifest.save(out)
    return out, manifest


def test_rows_cover_each_episode_and_start_unverified(pipe):
    episode = make_episode(0)
    rows = pipe.annotate(episode)
    assert [r["segment_index"] for r in rows] == list(range(len(rows)))
    assert rows[0]["start"] == 0 and rows[-1]["end"] == episode.num_frames
    assert all(a["end"] == b["start"] for a, b in zip(rows, rows[1:]))
    assert not any(r["verified"] for r in rows) and all(r["quality"] is None for r in rows)
    assert all(len(r["state"]) == r["end"] - r["start"] for r in rows)
    pa.Table.from_pylist(rows, schema=load_output_card("la").arrow_schema())  # fits the card


def test_unknown_segmenter_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown segmenter 'magic'"):
        make_pipeline("la", load_source_card("droid"), {"segmenter": "magic"})


def test_vlm_segmenter_without_endpoint_says_what_is_missing(monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ValueError, match="OPENAI_BASE_URL"):
        make_pipeline("la", load_source_card("droid"), {"segmenter": "vlm"})


def test_finalize_reports_table3_and_primitives(run):
    _, manifest = run
    t3 = manifest.stats["table3"]
    assert t3["source"] == {"episodes": 3, "frames": 3 * 135, "frames_per_episode": 135.0}
    assert t3["candidates"]["episodes"] == manifest.rows and t3["candidates"]["frames"] == 3 * 135
    assert t3["verified"]["episodes"] == 0
    assert sum(manifest.stats["primitives"].values()) == manifest.rows
    assert manifest.stats["plots"] == ["plots/episode-000.png"]


def test_lerobot_layout_is_v30_by_default_with_la33k_keys_and_the_rows_values(run):
    out, manifest = run
    info = assert_lerobot_v30_holds(f"{out}/lerobot", read_current(out))
    assert manifest.stats["lerobot"]["version"] == "3.0"
    for key in ("observation.state.cartesian_position", "observation.state.gripper_position",
                "action.cartesian_position", "action.gripper_position"):
        assert key in info["features"]
    assert info["features"]["action.cartesian_position"]["shape"] == [6]


def test_lerobot_v21_stays_an_option_and_validates(run, tmp_path):
    import shutil

    out = str(tmp_path / "la" / "droid")
    shutil.copytree(run[0], out)
    info = write_layouts(out, Manifest.load(out), load_source_card("droid"), lav=False, version="2.1")
    assert info["version"] == "2.1" and info["episodes"] == run[1].rows
    assert validate_lerobot_v21(f"{out}/lerobot") == []
    with pytest.raises(ValueError, match="choose one of 3.0, 2.1"):
        write_layouts(out, Manifest.load(out), load_source_card("droid"), lav=False, version="2.0")


def verdicts(rows: list[tuple]) -> pa.Table:
    names = VERDICT_SCHEMA.names
    return pa.Table.from_pylist([dict(zip(names, r)) for r in rows], schema=VERDICT_SCHEMA)


def test_apply_verdicts_keeps_quality_at_least_two_and_applies_corrections(run, tmp_path):
    import shutil

    out = str(tmp_path / "la" / "droid")
    shutil.copytree(run[0], out)
    table = verdicts([
        ("ep0", 0, 3.0, 2.0, 2, None, None),
        ("ep0", 1, 2.0, 1.5, 2, "grasp", "close the gripper on the object"),
        ("ep0", 2, 1.5, 1.0, 2, None, None),  # below the keep threshold
        ("ep1", 0, 2.5, 2.0, 1, "wait", None),
    ])
    candidates = pq.read_table(f"{out}/shards").to_pylist()
    stats = apply_verdicts(out, table)
    publish(out)
    assert stats["kept"] == 3 and stats["reviewed"] == 4 and stats["generation"] == 1
    assert stats["retention_rate"] == pytest.approx(3 / run[1].rows, abs=1e-4)
    assert pq.read_table(f"{out}/shards").to_pylist() == candidates  # the candidates are never rewritten
    kept = read_current(out)
    assert [(r["source_episode_id"], r["segment_index"]) for r in kept] == [("ep0", 0), ("ep0", 1), ("ep1", 0)]
    assert all(r["verified"] for r in kept) and kept[0]["quality"] == 3.0 and kept[1]["num_annotators"] == 2
    assert kept[1]["instruction"] == "close the gripper on the object"
    assert kept[2]["subaction"] == "wait" and kept[2]["agreement"] is False
    manifest = Manifest.load(out)
    assert manifest.generation == 1 and all(s.path.startswith("verified/0001/") for s in manifest.current_shards)
    assert manifest.rows == 3 and manifest.stats["table3"]["verified"]["episodes"] == 3
    assert "Human verification" in open(f"{out}/card.md").read()
    assert_lerobot_v30_holds(f"{out}/lerobot", kept)
    # re-applying starts from the candidates, not from the already filtered shards, as a new generation
    assert apply_verdicts(out, table)["kept"] == 3
    assert Manifest.load(out).generation == 2 and not os.path.exists(f"{out}/verified/0001")


@pytest.mark.parametrize(
    "rows, message",
    [
        ([("ep0", 0, 3.0, 2.0, 2, "fly", None)], "not in the LA vocabulary"),
        ([("ep0", 0, 3.0, 2.0, 2, None, None), ("ep0", 0, 2.0, 2.0, 2, None, None)], "more than one row"),
    ],
)
def test_bad_verdicts_are_rejected(run, rows, message):
    with pytest.raises(ValueError, match=message):
        apply_verdicts(run[0], verdicts(rows))


def test_corrected_boundaries_recut_the_segment_from_its_episode(run, tmp_path):
    import shutil

    out = str(tmp_path / "la" / "droid")
    shutil.copytree(run[0], out)
    candidates = [r for r in pq.read_table(f"{out}/shards/shard-00000.parquet").to_pylist() if r["source_episode_id"] == "ep0"]
    first, second = candidates[0], candidates[1]
    new_end = second["start"] + (second["end"] - second["start"]) // 2  # the verifier moves the end into the next segment
    names = VERDICT_SCHEMA.names
    table = pa.Table.from_pylist([
        dict(zip(names, ("ep0", 0, 3.0, 2.0, 1, None, None, None, new_end))),
        dict(zip(names, ("ep0", 1, 3.0, 2.0, 1, None, None, 50, 10_000))),  # past the episode's end: rejected
    ], schema=VERDICT_SCHEMA)
    stats = apply_verdicts(out, table)
    publish(out)
    kept = read_current(out)
    recut, rejected = kept
    assert (recut["start"], recut["end"]) == (0, new_end)
    joined = first["state"] + second["state"]
    assert recut["state"] == joined[:new_end] and len(recut["gripper"]) == len(recut["actions"]) == new_end
    assert recut["keyframes"] == sorted(f for f in first["keyframes"] + second["keyframes"] if f < new_end)
    assert "boundary_corrected" in recut["flags"]
    assert (rejected["start"], rejected["end"]) == (second["start"], second["end"])
    assert rejected["state"] == second["state"]
    assert any(f.startswith("boundary_correction_rejected:") for f in rejected["flags"])
    assert stats["corrected_boundaries"] == 2
    assert_lerobot_v30_holds(f"{out}/lerobot", kept)


def test_finalize_counts_a_shard_whose_record_predates_the_counts(run, pipe):
    """A folder written by an older version (shard records without counts) resumes with the same Table 3."""
    out, manifest = run
    old = manifest.model_copy(deep=True)
    for shard in old.shards:
        shard.stats = {k: v for k, v in shard.stats.items() if k not in ("source_episodes", "source_frames", "agreements")}
    assert pipe.finalize(out, old)["table3"] == manifest.stats["table3"]
