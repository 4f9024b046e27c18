"""The annotate command on a real Dask or Ray cluster writes the same rows as on local threads, and each worker
process builds the pipeline (loads its models) once, not once per unit."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from datasets_cards import list_sources
from datasets_cards.manifest import Manifest, ShardRecord

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.server, pytest.mark.slow]
UNITS = 4  # one episode a unit: more units than the clusters' two worker processes
SOURCES = {"la": "sample-droid", "gaze": "sample-bridge"}


def annotate(out: Path, env: dict[str, str], pipeline: str, options: list[str], *runner: str) -> tuple[Path, int]:
    """Run the CLI; (the output folder, the flow process's pid)."""
    source = SOURCES[pipeline]
    command = [sys.executable, "-m", "pipelines", "annotate", source, "--pipeline", pipeline, "--out", str(out),
               "--limit", str(UNITS), "--episodes-per-shard", "1", *options, *runner]
    with subprocess.Popen(command, env={**os.environ, **env}, cwd=ROOT, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True) as run:
        log, _ = run.communicate(timeout=600)
    assert run.returncode == 0, log[-6000:]
    return out / pipeline / source, run.pid


def shards(target: Path) -> list[ShardRecord]:
    manifest = Manifest.load(str(target))
    assert manifest.complete and len(manifest.shards) == UNITS
    return sorted(manifest.shards, key=lambda s: s.path)


def rows(target: Path) -> pa.Table:
    """The shards the manifest lists, in its order (a shard not listed is not part of the output)."""
    return pa.concat_tables([pq.read_table(target / s.path) for s in shards(target)])


@pytest.fixture(scope="module")
def options(tmp_path_factory) -> dict[str, list[str]]:
    from tests.annotators.detection.tiny_grounding_dino import save_tiny_grounding_dino

    model = save_tiny_grounding_dino(tmp_path_factory.mktemp("grounding-dino-tiny"), image_edge=128)
    return {"la": ["-o", "review=false", "-o", "plots=0"],
            "gaze": ["-o", f"model={model}", "-o", "device=cpu", "-o", "batch_size=4", "-o", "montage=0"]}


@pytest.fixture(scope="module")
def threads(tmp_path_factory, cluster_prefect_api, options) -> dict[str, tuple[Path, int]]:
    """The references: each pipeline on local threads."""
    return {p: annotate(tmp_path_factory.mktemp(f"threads-{p}"), cluster_prefect_api, p, options[p])
            for p in SOURCES if SOURCES[p] in list_sources()}


@pytest.mark.parametrize("pipeline", list(SOURCES))
@pytest.mark.parametrize("engine", ["dask", "ray"])
def test_cluster_run_equals_the_threads_run_and_loads_models_once_per_worker(
        request, tmp_path, cluster_prefect_api, threads, options, engine, pipeline):
    if pipeline not in threads:
        pytest.skip(f"needs the embedded sample ({SOURCES[pipeline]})")
    address = request.getfixturevalue(f"{engine}_address")
    reference, flow_pid = threads[pipeline]
    assert {s.worker.rsplit(":", 1)[1] for s in shards(reference)} == {str(flow_pid)}  # threads: the flow's process

    target, flow_pid = annotate(tmp_path / engine, cluster_prefect_api, pipeline, options[pipeline],
                                "--task-runner", engine, "--address", address)
    remote, local = rows(target), rows(reference)
    assert local.num_rows > UNITS and remote.equals(local)

    by_worker: dict[str, list[int]] = defaultdict(list)
    for shard in shards(target):
        by_worker[shard.worker].append(shard.pipelines_built)
    assert str(flow_pid) not in {w.rsplit(":", 1)[1] for w in by_worker}  # the units ran on the cluster
    # Some worker ran several units, and no worker built a pipeline between two of its units (a worker that
    # served an earlier test has built that test's pipeline too, hence "unchanged" rather than "one").
    assert max(len(built) for built in by_worker.values()) > 1
    assert all(len(set(built)) == 1 and built[0] >= 1 for built in by_worker.values())
