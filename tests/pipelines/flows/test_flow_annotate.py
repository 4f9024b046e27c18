"""The generic flow on a synthetic format and a test pipeline, plugged in through the registries.

Planning, resume, quarantine, config checks, retries, streaming and the concurrency limit.
"""

from __future__ import annotations

import json
import logging
import threading
import time

import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from datasets_cards import Episode, EpisodeError, FrameSequence, load_output_card
from datasets_cards.manifest import Manifest
from pipelines import base
from pipelines.base import PIPELINES
from pipelines.cli import app
from pipelines.flows.annotate import (
    EXIT_INCOMPLETE,
    EXIT_NOTHING_WRITTEN,
    ConfigMismatchError,
    IncompleteRunError,
    annotate,
    plan_units,
    run_annotate,
)
from pipelines.formats import READERS
from pipelines.quarantine import Quarantined


@pytest.mark.parametrize(
    "n, per, expected",
    [(0, 4, []), (3, 4, [(0, 3)]), (8, 4, [(0, 4), (4, 8)]), (9, 4, [(0, 4), (4, 8), (8, 9)])],
)
def test_plan_units_covers_every_episode_once(n, per, expected):
    assert [(u.start, u.stop) for u in plan_units(n, per)] == expected


class FakeReader:
    """Episodes 0..n-1 of the `fake` format; episode 3 is unreadable, episode 5 fails annotation.

    `fail_starts` maps a unit's first index to how many of its reads raise before one succeeds.
    """

    n = 10
    reads: list[tuple[int, int]] = []
    events: list[str] = []
    fail_starts: dict[int, int] = {}

    def __init__(self, card, location=None):
        self.card = card
        self.location = "memory://fake"

    def num_episodes(self) -> int:
        return self.n

    def fingerprint(self) -> str:  # the same data on every run of a test
        return "fake"

    def episode_ids(self, start, stop):
        return [f"ep{i}" for i in range(start, min(stop, self.n))]

    def read(self, start, stop):
        FakeReader.reads.append((start, stop))
        if FakeReader.fail_starts.get(start, 0) > 0:
            FakeReader.fail_starts[start] -= 1
            raise OSError("disk went away")
        for i in range(start, stop):
            FakeReader.events.append(f"read ep{i}")
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
                "view": 0, "num_frames": episode.num_frames, "feature": [float(episode.arm_state[0, 0])] * 2,
                "instruction": episode.instruction, "state": episode.arm_state[t].tolist(), "state_valid": [1],
                "actions": [[0.0]], "action_valid": [1],
            }
            for t in range(episode.num_frames)
        ]

    def unit_stats(self, rows):
        if rows:
            FakeReader.events.append(f"rows {rows[0]['episode_id']}")
        return {"frames": len(rows)}


class UnlimitedPipeline(FramePipeline):
    """FramePipeline that records how many units annotate at once."""

    lock = threading.Lock()
    active = peak = 0

    def annotate(self, episode):
        cls = type(self)
        with cls.lock:
            cls.active += 1
            cls.peak = max(cls.peak, cls.active)
        time.sleep(0.05)
        with cls.lock:
            cls.active -= 1
        return super().annotate(episode)


class GpuPipeline(UnlimitedPipeline):
    """The same pipeline holding a model: its units occupy the `test-gpu` global concurrency limit."""

    concurrency_limit = "test-gpu"
    lock = threading.Lock()
    active = peak = 0


@pytest.fixture
def card_file(tmp_path):
    """A source card of the synthetic `fake` format (a DROID-shaped card otherwise)."""
    path = tmp_path / "fake-droid.yaml"
    path.write_text("extends: droid\nname: fake-droid\ndescription: synthetic\nformat: fake\nlocation: memory://fake\n")
    return str(path)


@pytest.fixture
def fake():
    FakeReader.reads, FakeReader.events, FakeReader.fail_starts = [], [], {}
    base._cached.cache_clear()  # worker pipelines are cached per process: start from the registered class
    with READERS.override("fake", FakeReader), PIPELINES.override("future", FramePipeline):
        yield FakeReader
    base._cached.cache_clear()


def run(tmp_path, card_file, **kw):
    args = dict(source=card_file, pipeline="future", out=str(tmp_path / "out"), episodes_per_shard=4, retries=0)
    return annotate(**(args | kw))


def target(tmp_path):
    return tmp_path / "out" / "future" / "fake-droid"


def test_flow_writes_shards_manifest_quarantine_and_card(tmp_path, card_file, fake):
    manifest = run(tmp_path, card_file)
    assert manifest.complete and len(manifest.shards) == 3
    assert manifest.rows == 8 * 3  # 10 episodes, 2 quarantined, 3 frames each
    saved = json.loads((target(tmp_path) / "manifest.json").read_text())
    assert saved["complete"] and len(saved["shards"]) == 3
    quarantine = pq.read_table(target(tmp_path) / "quarantine.parquet").to_pylist()
    assert {(q["episode_id"], q["stage"], q["reason"]) for q in quarantine} == {
        ("ep3", "read", "NaN in state"), ("ep5", "annotate", "annotator refused"),
    }
    ids = pq.read_table(target(tmp_path) / "shards").column("episode_id").to_pylist()
    assert sorted(set(ids)) == sorted(f"ep{i}" for i in range(10) if i not in (3, 5))
    assert "| `feature` |" in (target(tmp_path) / "card.md").read_text()  # the card names every column


def test_units_stream_each_episode_into_the_shard_before_reading_the_next(tmp_path, card_file, fake):
    run(tmp_path, card_file, episodes_per_shard=10)
    assert fake.events[:5] == ["read ep0", "rows ep0", "read ep1", "rows ep1", "read ep2"]
    shard = json.loads((target(tmp_path) / "manifest.json").read_text())["shards"][0]
    assert shard["stats"]["frames"] == 24  # per-episode statistics summed into the shard record


def test_rerun_skips_units_the_manifest_records(tmp_path, card_file, fake):
    run(tmp_path, card_file)
    fake.reads.clear()
    manifest = run(tmp_path, card_file)
    assert fake.reads == [] and manifest.complete and manifest.rows == 24


def test_rerun_after_a_lost_unit_redoes_only_that_unit(tmp_path, card_file, fake):
    first = run(tmp_path, card_file)
    saved = json.loads((target(tmp_path) / "manifest.json").read_text())
    saved["shards"] = saved["shards"][:2]  # as if killed before the last unit was recorded
    (target(tmp_path) / "manifest.json").write_text(json.dumps(saved))
    fake.reads.clear()
    second = run(tmp_path, card_file)
    assert fake.reads == [(8, 10)]
    assert [s.sha256 for s in second.shards] == [s.sha256 for s in first.shards]


def test_changed_config_refuses_to_mix_outputs(tmp_path, card_file, fake):
    run(tmp_path, card_file)
    with pytest.raises(ConfigMismatchError, match="--overwrite"):
        run(tmp_path, card_file, options={"stride": 2})
    assert run(tmp_path, card_file, options={"stride": 2}, overwrite=True).complete


def test_a_unit_that_fails_once_is_retried_and_the_run_completes(tmp_path, card_file, fake):
    fake.fail_starts = {4: 1}
    manifest = run(tmp_path, card_file, retries=1)
    assert manifest.complete and manifest.rows == 24
    assert fake.reads.count((4, 8)) == 2  # the failed try and the retry


def test_failing_unit_is_quarantined_after_its_retries_and_the_run_goes_on(tmp_path, card_file, fake):
    fake.fail_starts = {4: 99}
    with pytest.raises(IncompleteRunError, match="1 of 3 units failed") as failed:
        run(tmp_path, card_file, retries=1)  # the flow run ends Failed: deployments see it too
    manifest, saved = failed.value.manifest, Manifest.load(str(target(tmp_path)))
    assert failed.value.exit_code == EXIT_INCOMPLETE
    assert not manifest.complete and len(manifest.shards) == len(saved.shards) == 2
    assert fake.reads.count((4, 8)) == 2
    quarantine = pq.read_table(target(tmp_path) / "quarantine.parquet").to_pylist()
    assert any(q["stage"] == "unit" and "disk went away" in q["reason"] for q in quarantine)
    fake.fail_starts = {}
    assert run(tmp_path, card_file).complete  # the next run fills the gap


def test_shards_load_with_hf_datasets(tmp_path, card_file, fake):
    datasets = pytest.importorskip("datasets")
    run(tmp_path, card_file)
    shards = sorted(str(p) for p in (target(tmp_path) / "shards").glob("shard-*.parquet"))
    ds = datasets.load_dataset("parquet", data_files=shards, split="train", cache_dir=str(tmp_path / "hf"))
    assert ds.num_rows == 24
    assert set(ds.column_names) == {c.name for c in load_output_card("future").columns}
    assert ds[0]["feature"] == [0.0, 0.0]


def test_stale_temp_files_of_a_killed_run_are_removed(tmp_path, card_file, fake):
    shards = target(tmp_path) / "shards"
    shards.mkdir(parents=True)
    (shards / ".tmp-deadbeef-shard-00000.parquet").write_bytes(b"half")
    run(tmp_path, card_file)
    assert not list(shards.glob(".tmp-*"))


def test_progress_goes_to_a_prefect_progress_artifact_and_a_log_line_per_unit_with_rates_and_eta(
        tmp_path, card_file, fake):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterType, LogFilter, LogFilterFlowRunId

    from prefect.logging.handlers import APILogHandler

    runs_logger = logging.getLogger("prefect.flow_runs")  # the suite runs Prefect at WARNING (tests/conftest.py)
    level = runs_logger.level
    runs_logger.setLevel(logging.INFO)
    try:
        manifest = run(tmp_path, card_file, episodes_per_shard=2)
    finally:
        runs_logger.setLevel(level)
    assert len(manifest.shards) == 5
    APILogHandler().flush()  # run logs reach the server in batches: send the queued ones now
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(type=ArtifactFilterType(any_=["progress"])))
        ours = max((a for a in artifacts if a.description == "units of future ← fake-droid"), key=lambda a: a.created)
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[ours.flow_run_id])))
    assert ours.data == 100.0
    lines = [log.message for log in sorted(logs, key=lambda log: log.timestamp) if "units done;" in log.message]
    assert len(lines) == 5 and all("episodes/s" in line and "ETA" in line for line in lines)
    assert lines[-1].endswith("ETA 0:00:00)")


def test_model_heavy_units_hold_the_global_concurrency_limit(tmp_path, card_file, fake):
    """With a `test-gpu` limit of 1 on the server, four threads never annotate two units at once."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate

    with get_client(sync_client=True) as client:
        client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name="test-gpu", limit=1))
    peaks = {}
    for cls in (UnlimitedPipeline, GpuPipeline):
        cls.peak = 0
        base._cached.cache_clear()
        with PIPELINES.override("future", cls):
            manifest = run_annotate(task_runner="threads", max_workers=4, source=card_file, pipeline="future",
                                    out=str(tmp_path / cls.__name__), episodes_per_shard=2, retries=0)
        assert manifest.rows == 24
        peaks[cls.__name__] = cls.peak
    assert peaks["UnlimitedPipeline"] >= 2  # without the limit, units do overlap here ...
    assert peaks["GpuPipeline"] == 1  # ... and with it, never


class RefusingPipeline(FramePipeline):
    def annotate(self, episode):
        raise EpisodeError("nothing to see", episode.episode_id)


def cli(*args: str):
    return CliRunner().invoke(app, ["annotate", *args, "--pipeline", "future", "--episodes-per-shard", "4"])


def test_the_command_exits_0_with_quarantined_episodes_3_with_failed_units_4_with_no_rows(tmp_path, card_file, fake):
    done = cli(card_file, "--out", str(tmp_path / "ok"), "--retries", "0")
    assert done.exit_code == 0 and "24 rows in 3 shards, 2 quarantined" in done.output

    fake.fail_starts = {0: 99, 4: 99, 8: 99}  # every unit fails
    failed = cli(card_file, "--out", str(tmp_path / "failed"), "--retries", "0")
    assert failed.exit_code == EXIT_INCOMPLETE and "3 of 3 units failed" in failed.output.splitlines()[-1]
    assert "disk went away" in (tmp_path / "failed" / "logs" / "future-fake-droid.log").read_text()

    fake.fail_starts = {}
    base._cached.cache_clear()
    with PIPELINES.override("future", RefusingPipeline):
        empty = cli(card_file, "--out", str(tmp_path / "empty"))
    assert empty.exit_code == EXIT_NOTHING_WRITTEN
    assert "no rows from 10 episodes: all 10 quarantined" in empty.output.splitlines()[-1]
