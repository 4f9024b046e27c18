"""The annotate command on a real Dask or Ray cluster writes the same rows as on local threads, and each worker
process builds the pipeline (loads its models) once, not once per unit. (gaze on both clusters, with a worker
killed mid-run, is in test_worker_kill.py.)"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from datasets_cards import list_sources
from datasets_cards.manifest import Manifest, ShardRecord
from tests.clusters.worker_records import assert_built_once_per_worker

ROOT = Path(__file__).resolve().parents[2]
SOURCE, UNITS = "sample-droid", 4  # one episode a unit: more units than the clusters' two worker processes
pytestmark = [pytest.mark.server, pytest.mark.slow,
              pytest.mark.skipif(SOURCE not in list_sources(), reason=f"needs the embedded sample ({SOURCE})")]


def annotate(out: Path, env: dict[str, str], *runner: str) -> tuple[Path, int]:
    """Run the CLI; (the output folder, the flow process's pid)."""
    command = [sys.executable, "-m", "pipelines", "annotate", SOURCE, "--pipeline", "la", "--out", str(out),
               "--limit", str(UNITS), "--episodes-per-shard", "1", "-o", "review=false", "-o", "plots=0", *runner]
    with subprocess.Popen(command, env={**os.environ, **env}, cwd=ROOT, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True) as run:
        log, _ = run.communicate(timeout=600)
    assert run.returncode == 0, log[-6000:]
    return out / "la" / SOURCE, run.pid


def shards(target: Path) -> list[ShardRecord]:
    manifest = Manifest.load(str(target))
    assert manifest.complete and len(manifest.shards) == UNITS
    return sorted(manifest.shards, key=lambda s: s.path)


def rows(target: Path) -> pa.Table:
    """The shards the manifest lists, in its order (a shard not listed is not part of the output)."""
    return pa.concat_tables([pq.read_table(target / s.path) for s in shards(target)])


@pytest.fixture(scope="module")
def threads(tmp_path_factory, cluster_prefect_api) -> Path:
    """The reference: the same run on local threads, every unit in the flow's own process."""
    target, flow_pid = annotate(tmp_path_factory.mktemp("threads"), cluster_prefect_api)
    assert {s.worker.rsplit(":", 1)[1] for s in shards(target)} == {str(flow_pid)}
    return target


@pytest.mark.parametrize("engine", ["dask", "ray"])
def test_la_on_a_cluster_equals_the_threads_run_and_loads_once_per_worker(request, tmp_path, cluster_prefect_api,
                                                                          threads, engine):
    address = request.getfixturevalue(f"{engine}_address")
    target, flow_pid = annotate(tmp_path / engine, cluster_prefect_api, "--task-runner", engine, "--address", address)
    remote, local = rows(target), rows(threads)
    assert local.num_rows > UNITS and remote.equals(local)
    assert_built_once_per_worker(shards(target), flow_pid)
