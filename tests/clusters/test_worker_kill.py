"""gaze (a tiny random-weight Grounding DINO) on a real Dask or Ray cluster with a worker process SIGKILLed in the
middle of a unit: the run still finishes, with exactly the rows of an uninterrupted run on local threads, no
half-written shard is part of the output, and no worker built its pipeline (loaded the model) twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from datasets_cards import list_sources
from datasets_cards.manifest import Manifest
from tests.clusters.worker_records import assert_built_once_per_worker

ROOT = Path(__file__).resolve().parents[2]
SOURCE, UNITS = "sample-bridge", 6
pytestmark = [pytest.mark.server, pytest.mark.slow,
              pytest.mark.skipif(SOURCE not in list_sources(), reason=f"needs the embedded sample ({SOURCE})")]


def command(out: Path, model: Path, *runner: str) -> list[str]:
    return [sys.executable, "-m", "pipelines", "annotate", SOURCE, "--pipeline", "gaze", "--out", str(out),
            "--limit", str(UNITS), "--episodes-per-shard", "1", "-o", f"model={model}", "-o", "device=cpu",
            "-o", "batch_size=4", "-o", "montage=0", *runner]


def listed_rows(target: Path) -> pa.Table:
    manifest = Manifest.load(str(target))
    assert manifest.complete and len(manifest.shards) == UNITS
    return pa.concat_tables([pq.read_table(target / s.path) for s in sorted(manifest.shards, key=lambda s: s.path)])


def busy_dask_worker(address: str) -> int | None:
    """The pid of a Dask worker process that is running a task right now (None when none is)."""
    from distributed import Client

    with Client(address, timeout=10) as client:
        busy = [w for w, tasks in client.processing().items() if tasks]
        return client.run(os.getpid, workers=busy[:1])[busy[0]] if busy else None


def busy_ray_worker(address: str) -> int | None:
    """The pid of a Ray worker process running a unit now: Ray titles it `ray::<task name>` while it runs."""
    import psutil

    for process in psutil.process_iter(["cmdline"]):
        if (process.info["cmdline"] or [""])[0].startswith("ray::annotate-unit"):
            return process.pid
    return None


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    from tests.annotators.detection.tiny_grounding_dino import save_tiny_grounding_dino

    return save_tiny_grounding_dino(tmp_path_factory.mktemp("grounding-dino-tiny"), image_edge=128)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, cluster_prefect_api, model) -> pa.Table:
    """The uninterrupted run, on local threads."""
    out = tmp_path_factory.mktemp("reference")
    done = subprocess.run(command(out, model), env={**os.environ, **cluster_prefect_api}, cwd=ROOT,
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return listed_rows(out / "gaze" / SOURCE)


@pytest.mark.parametrize("engine", ["dask", "ray"])
def test_worker_killed_mid_unit_loses_and_repeats_no_row(request, tmp_path, cluster_prefect_api, model, reference,
                                                         engine):
    address = request.getfixturevalue(f"{engine}_address")
    busy_worker = {"dask": busy_dask_worker, "ray": busy_ray_worker}[engine]
    env = {**os.environ, **cluster_prefect_api}
    out = tmp_path / "killed"
    target = out / "gaze" / SOURCE
    with subprocess.Popen(command(out, model, "--task-runner", engine, "--address", address), env=env,
                          cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as run:
        # Mid-run: after the first shard is committed, kill the worker that is running a unit then.
        killed = None
        deadline = time.monotonic() + 300
        while killed is None and run.poll() is None and time.monotonic() < deadline:
            if (target / "manifest.json").exists() and Manifest.load(str(target)).shards:
                pid = busy_worker(address)
                if pid is not None:
                    os.kill(pid, signal.SIGKILL)
                    killed = pid
            time.sleep(0.2)
        log, _ = run.communicate(timeout=600)
    assert killed is not None, "the run ended before a worker could be killed mid-unit:\n" + log[-3000:]
    assert run.returncode == 0, log[-6000:]

    assert listed_rows(target).equals(reference)
    manifest = Manifest.load(str(target))
    assert_built_once_per_worker(manifest.shards, run.pid)
    listed = {Path(s.path).name for s in manifest.shards}
    stray = [p.name for p in (target / "shards").iterdir() if p.name not in listed]
    assert all(name.startswith(".tmp-") for name in stray), stray  # at most the killed unit's unfinished temp file
