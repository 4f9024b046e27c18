"""The drill on units (issue 12, part 6): a damaged TFRecord file, and a fault that fails every unit alike.

A damaged record costs the episodes it touches: a flipped byte inside one record loses that episode, a
file cut short loses the rest of that file; the unit keeps every episode it could read before and after
(its shard is written with them), the run ends with code 0 and the quarantine count, and the reason names
the file. A RunAbortError (the VLM endpoint answering 401) stops the run: not retried, no unit started
after it, the manifest saved with the units that finished, one line and exit code 1; the next run, with
the key fixed, finishes the rest.
"""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from datasets_cards.constants import QUARANTINE_FILE
from datasets_cards.manifest import Manifest
from pipelines.cli import app
from pipelines.flows import annotate as _flow  # noqa: F401  (Prefect's logging set up before TF's, see below)
from tests.annotators.segments.fake_openai import FakeOpenAI, Reply, halves_answer
from tests.pipelines.formats.rlds_fixtures import make_rlds_fixture

pytest.importorskip("tensorflow_datasets")
# `_flow` is imported for Prefect's logging setup: done later (by the first CLI call), it would close every
# handler there is, absl's too, which TensorFlow made on pytest's captured stderr, and so close that stream.

runner = CliRunner()


def droid_id(index: int) -> str:
    return f"/synthetic/droid/success/episode_{index:06d}/trajectory.h5"


def records(path: Path) -> list[tuple[int, int]]:
    """(offset, data length) of every record of a TFRecord file: length u64, its crc u32, data, the data's crc u32."""
    data, spans, offset = path.read_bytes(), [], 0
    while offset < len(data):
        (length,) = struct.unpack("<Q", data[offset:offset + 8])
        spans.append((offset, length))
        offset += 8 + 4 + length + 4
    return spans


def tfrecord(corpus: Path, index: int) -> Path:
    return next(corpus.glob(f"droid-train.tfrecord-{index:05d}-of-*"))


# --- a damaged TFRecord file --------------------------------------------------------------------------------

def test_a_damaged_tfrecord_costs_only_the_episodes_it_touches(tmp_path, monkeypatch):
    # 8 episodes in 4 files of 2; units of 4 episodes. File 0: one byte flipped inside the data of its
    # second record (episode 1). File 2: cut in the middle of its first record (episodes 4 and 5).
    corpus = make_rlds_fixture(tmp_path / "data", "droid", n_episodes=8, n_steps=20, num_shards=4)
    flipped = tfrecord(corpus, 0)
    offset, length = records(flipped)[1]
    data = bytearray(flipped.read_bytes())
    data[offset + 12 + length // 2] ^= 0xFF
    flipped.write_bytes(bytes(data))
    cut = tfrecord(corpus, 2)
    offset, length = records(cut)[0]
    cut.write_bytes(cut.read_bytes()[:offset + 12 + length // 2])

    monkeypatch.chdir(tmp_path)
    command = ["annotate", "droid", "--location", str(corpus), "--out", "outputs", "--episodes-per-shard", "4",
               "-o", "plots=0", "-o", "review=false", "--retries", "0"]
    result = runner.invoke(app, command)
    assert result.exit_code == 0, result.output  # every unit done: the lost episodes are the source's fault
    assert re.search(r", 3 quarantined, (\d+ min )?\d+ s → outputs/la/droid/card\.md$", result.output.strip().splitlines()[-1])
    target = tmp_path / "outputs" / "la" / "droid"
    manifest = Manifest.load(str(target))
    assert manifest.complete and len(manifest.shards) == 2 and manifest.quarantined == 3
    found = {r["episode_id"]: r for r in pq.read_table(target / QUARANTINE_FILE).to_pylist()}
    assert set(found) == {"droid-train-000001", "droid-train-000004", "droid-train-000005"}
    assert {r["stage"] for r in found.values()} == {"read"} and {r["unit"] for r in found.values()} == {"0:4", "4:8"}
    assert re.fullmatch(rf"unreadable record 1: {re.escape(str(flipped))} is damaged \(DataLossError: corrupted record "
                        r"at \d+\); copy the file again from the dataset's release", found["droid-train-000001"]["reason"])
    for index in (4, 5):  # the cut record, and the one after it in the same file
        assert found[f"droid-train-{index:06d}"]["reason"].startswith(f"unreadable record {index}: {cut} is damaged "
                                                                      "(DataLossError: ")
    kept = {0, 2, 3, 6, 7}  # before and after each fault, in the same unit
    rows = [r for s in manifest.shards for r in pq.read_table(target / s.path).to_pylist()]
    assert {r["source_episode_id"] for r in rows} == {droid_id(i) for i in kept}
    assert {s.unit: len([e for e in s.episodes if e.startswith("/")]) for s in manifest.shards} == {"0:4": 3, "4:8": 2}

    rerun = runner.invoke(app, command)  # nothing left to do: the output finishes as it is
    assert rerun.exit_code == 0, rerun.output
    assert Manifest.load(str(target)).rows == manifest.rows


# --- a fault that fails every unit alike ----------------------------------------------------------------------

@pytest.fixture
def vlm(monkeypatch):
    server = FakeOpenAI().start()
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "drill-key-0000")
    monkeypatch.setenv("LA_VLM_MODEL", "drill-units")
    monkeypatch.delenv("LA_VLM_CACHE", raising=False)
    yield server
    server.stop()


def test_a_rejected_key_stops_the_run_with_one_line_and_the_next_run_finishes(tmp_path, monkeypatch, vlm):
    corpus = make_rlds_fixture(tmp_path / "data", "droid", n_episodes=6, n_steps=20)
    good = Reply(halves_answer())
    # one request per episode, one unit at a time: unit 0:2 is answered, then the key is refused
    vlm.script("drill-units", [good, good, Reply("invalid api key", status=401)])
    monkeypatch.chdir(tmp_path)
    command = ["annotate", "droid", "--location", str(corpus), "--out", "outputs", "--episodes-per-shard", "2",
               "--workers", "1", "-o", "segmenter=vlm", "-o", json.dumps({"max_in_flight": 1}).join(["vlm=", ""]),
               "-o", "plots=0", "-o", "review=false"]  # --retries stays 2: a RunAbortError is never retried
    result = runner.invoke(app, command)
    assert result.exit_code == 1, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "HTTP 401" in errors[0] and "OPENAI_API_KEY" in errors[0], result.output
    assert "Traceback" not in result.output
    # Not retried (--retries 2 would ask 2 more times). Unit 4:6 sends nothing: the pool may have started
    # it as unit 2:4 ended, but it stops before its first episode (4 only if its request beat that).
    assert vlm.counts["drill-units"] in (3, 4)
    target = tmp_path / "outputs" / "la" / "droid"
    manifest = Manifest.load(str(target))
    assert not manifest.complete and [s.unit for s in manifest.shards] == ["0:2"]  # what finished is kept
    assert manifest.rows > 0 and (target / QUARANTINE_FILE).exists()
    assert sorted(p.name for p in (target / "shards").glob("*.parquet")) == ["shard-00000.parquet"]

    vlm.script("drill-units", [good])  # the key is fixed: the next run does only what is missing
    rerun = runner.invoke(app, command)
    assert rerun.exit_code == 0, rerun.output
    finished = Manifest.load(str(target))
    assert finished.complete and sorted(s.unit for s in finished.shards) == ["0:2", "2:4", "4:6"]
    assert finished.quarantined == 0 and finished.shards[0] == manifest.shards[0]  # unit 0:2 was not redone
