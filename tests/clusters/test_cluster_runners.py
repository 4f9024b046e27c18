"""The annotate command on a real Dask or Ray cluster writes the same rows as on local threads."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from datasets_cards import list_sources
from datasets_cards.manifest import Manifest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.server, pytest.mark.slow]
SOURCE = "sample-droid"


def annotate(out: Path, env: dict[str, str], *runner: str) -> Path:
    command = [sys.executable, "-m", "pipelines", "annotate", SOURCE, "--pipeline", "la", "--out", str(out),
               "--limit", "4", "--episodes-per-shard", "2", "-o", "review=false", "-o", "plots=0", *runner]
    done = subprocess.run(command, env={**os.environ, **env}, cwd=ROOT, capture_output=True, text=True, timeout=300,
                          check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out / "la" / SOURCE


def rows(target: Path) -> pa.Table:
    """The shards the manifest lists, in its order (a shard not listed is not part of the output)."""
    manifest = Manifest.load(str(target))
    assert manifest.complete
    return pa.concat_tables([pq.read_table(target / s.path) for s in sorted(manifest.shards, key=lambda s: s.path)])


@pytest.fixture(scope="module")
def threads(tmp_path_factory, cluster_prefect_api) -> pa.Table:
    """The reference: the same run on local threads."""
    return rows(annotate(tmp_path_factory.mktemp("threads"), cluster_prefect_api))


@pytest.mark.skipif(SOURCE not in list_sources(), reason="needs the embedded sample (sample-droid)")
@pytest.mark.parametrize("engine", ["dask", "ray"])
def test_la_on_a_cluster_equals_the_threads_run_row_for_row(request, tmp_path, cluster_prefect_api, threads, engine):
    address = request.getfixturevalue(f"{engine}_address")
    remote = rows(annotate(tmp_path / engine, cluster_prefect_api, "--task-runner", engine, "--address", address))
    assert threads.num_rows > 4 and remote.equals(threads)
