"""The generic flow on a fake reader and pipeline: planning, resume, quarantine, config checks."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from datasets_cards import Episode, EpisodeError, FrameSequence, load_output_card
from pipelines import base
from pipelines.flows import annotate as flow_module
from pipelines.flows.annotate import ConfigMismatchError, plan_units
from pipelines.quarantine import Quarantined


@pytest.mark.parametrize(
    "n, per, expected",
    [(0, 4, []), (3, 4, [(0, 3)]), (8, 4, [(0, 4), (4, 8)]), (9, 4, [(0, 4), (4, 8), (8, 9)])],
)
def test_plan_units_covers_every_episode_once(n, per, expected):
    assert [(u.start, u.stop) for u in plan_units(n, per)] == expected


class FakeReader:
    """Episodes 0..n-1; episode 3 is unreadable, episode 5 fails annotation."""

    def __init__(self, n: int):
        self.n = n
        self.location = "memory://fake"
        self.reads: list[tuple[int, int]] = []

    def num_episodes(self) -> int:
        return self.n

    def read(self, start, stop):
        self.reads.append((start, stop))
        for i in range(start, stop):
            if i == 3:
                yield Quarantined(f"ep{i}", "NaN in state")
                continue
            t = 3
            yield Episode(
                episode_id=f"ep{i}", source="droid", instruction=f"task {i}", fps=15.0,
                frames={"cam": FrameSequence.from_array(np.zeros((t, 4, 4, 3), np.uint8))},
                arm_state=np.full((t, 6), i, np.float32), gripper=np.zeros(t), actions=np.zeros((t, 7)),
            )


class FramePipeline(base.Pipeline):
    """One `future` row per frame; the feature is the episode number."""

    name = "future"

    def annotate(self, episode):
        if episode.episode_id == "ep5":
            raise EpisodeError("annotator refused", episode.episode_id)
        return [
            {
                "episode_id": episode.episode_id, "source": episode.source, "camera": "cam", "frame_index": t,
                "target_index": min(t + 1, episode.num_frames - 1), "feature": [float(episode.arm_state[0, 0])] * 2,
                "instruction": episode.instruction, "state": episode.arm_state[t].tolist(), "action": [0.0],
            }
            for t in range(episode.num_frames)
        ]


@pytest.fixture
def fake(monkeypatch):
    reader = FakeReader(10)
    monkeypatch.setattr(flow_module, "open_reader", lambda card, location=None: reader)
    monkeypatch.setattr(flow_module, "worker_pipeline", lambda name, card, options=None: FramePipeline(card, options))
    monkeypatch.setattr(flow_module, "render_card", lambda *a: "# card\n")
    return reader


def run(tmp_path, **kw):
    args = dict(source="droid", pipeline="future", out=str(tmp_path), episodes_per_shard=4)
    return flow_module.annotate(**(args | kw))


def test_flow_writes_shards_manifest_and_quarantine(tmp_path, fake):
    manifest = run(tmp_path)
    target = tmp_path / "future" / "droid"
    assert manifest.complete and len(manifest.shards) == 3
    assert manifest.rows == 8 * 3  # 10 episodes, 2 quarantined, 3 frames each
    saved = json.loads((target / "manifest.json").read_text())
    assert saved["complete"] and len(saved["shards"]) == 3
    quarantine = pq.read_table(target / "quarantine.parquet").to_pylist()
    assert {(q["episode_id"], q["stage"], q["reason"]) for q in quarantine} == {
        ("ep3", "read", "NaN in state"), ("ep5", "annotate", "annotator refused"),
    }
    ids = pq.read_table(target / "shards").column("episode_id").to_pylist()
    assert sorted(set(ids)) == sorted(f"ep{i}" for i in range(10) if i not in (3, 5))


def test_rerun_skips_units_the_manifest_records(tmp_path, fake):
    run(tmp_path)
    fake.reads.clear()
    manifest = run(tmp_path)
    assert fake.reads == [] and manifest.complete and manifest.rows == 24


def test_rerun_after_a_lost_unit_redoes_only_that_unit(tmp_path, fake):
    first = run(tmp_path)
    target = tmp_path / "future" / "droid"
    saved = json.loads((target / "manifest.json").read_text())
    saved["shards"] = saved["shards"][:2]  # as if killed before the last unit was recorded
    (target / "manifest.json").write_text(json.dumps(saved))
    fake.reads.clear()
    second = run(tmp_path)
    assert fake.reads == [(8, 10)]
    assert [s.sha256 for s in second.shards] == [s.sha256 for s in first.shards]


def test_changed_config_refuses_to_mix_outputs(tmp_path, fake):
    run(tmp_path)
    with pytest.raises(ConfigMismatchError, match="--overwrite"):
        run(tmp_path, options={"threshold": 0.9})
    assert run(tmp_path, options={"threshold": 0.9}, overwrite=True).complete


def test_failing_unit_is_quarantined_and_the_run_goes_on(tmp_path, fake, monkeypatch):
    original = fake.read

    def flaky(start, stop):
        if start == 4:
            raise OSError("disk went away")
        return original(start, stop)

    monkeypatch.setattr(fake, "read", flaky)
    manifest = run(tmp_path)
    assert not manifest.complete and len(manifest.shards) == 2
    quarantine = pq.read_table(tmp_path / "future" / "droid" / "quarantine.parquet").to_pylist()
    assert any(q["stage"] == "unit" and "disk went away" in q["reason"] for q in quarantine)
    monkeypatch.setattr(fake, "read", original)
    assert run(tmp_path).complete  # the retry fills the gap


def test_shards_load_with_hf_datasets(tmp_path, fake):
    datasets = pytest.importorskip("datasets")
    run(tmp_path)
    shards = sorted(str(p) for p in (tmp_path / "future" / "droid" / "shards").glob("shard-*.parquet"))
    ds = datasets.load_dataset("parquet", data_files=shards, split="train", cache_dir=str(tmp_path / "hf"))
    assert ds.num_rows == 24
    assert set(ds.column_names) == {c.name for c in load_output_card("future").columns}
    assert ds[0]["feature"] == [0.0, 0.0]


def test_stale_temp_files_of_a_killed_run_are_removed(tmp_path, fake):
    shards = tmp_path / "future" / "droid" / "shards"
    shards.mkdir(parents=True)
    (shards / ".tmp-deadbeef-shard-00000.parquet").write_bytes(b"half")
    run(tmp_path)
    assert not list(shards.glob(".tmp-*"))
