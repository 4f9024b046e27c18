"""A Dask worker process SIGKILLed in the middle of a unit: the run still finishes, with exactly the rows of an
uninterrupted run, and no half-written shard is part of the output."""

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


def busy_worker_pid(address: str) -> int | None:
    """The pid of a worker process that is running a task right now (None when none is)."""
    from distributed import Client

    with Client(address, timeout=10) as client:
        busy = [w for w, tasks in client.processing().items() if tasks]
        return client.run(os.getpid, workers=busy[:1])[busy[0]] if busy else None


def test_worker_killed_mid_unit_loses_and_repeats_no_row(tmp_path, cluster_prefect_api, dask_address):
    from tests.annotators.detection.tiny_grounding_dino import save_tiny_grounding_dino

    model = save_tiny_grounding_dino(tmp_path / "grounding-dino-tiny", image_edge=128)
    env = {**os.environ, **cluster_prefect_api}
    reference = subprocess.run(command(tmp_path / "reference", model), env=env, cwd=ROOT, capture_output=True,
                               text=True, timeout=600, check=False)
    assert reference.returncode == 0, reference.stdout[-3000:] + reference.stderr[-3000:]

    out = tmp_path / "killed"
    target = out / "gaze" / SOURCE
    with subprocess.Popen(command(out, model, "--task-runner", "dask", "--address", dask_address), env=env,
                          cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as run:
        # Mid-run: after the first shard is committed, kill the worker that is running a unit then.
        killed = None
        deadline = time.monotonic() + 300
        while killed is None and run.poll() is None and time.monotonic() < deadline:
            if (target / "manifest.json").exists() and Manifest.load(str(target)).shards:
                pid = busy_worker_pid(dask_address)
                if pid is not None:
                    os.kill(pid, signal.SIGKILL)
                    killed = pid
            time.sleep(0.2)
        log, _ = run.communicate(timeout=600)
    assert killed is not None, "the run ended before a worker could be killed mid-unit:\n" + log[-3000:]
    assert run.returncode == 0, log[-6000:]

    assert listed_rows(target).equals(listed_rows(tmp_path / "reference" / "gaze" / SOURCE))
    listed = {Path(s.path).name for s in Manifest.load(str(target)).shards}
    stray = [p.name for p in (target / "shards").iterdir() if p.name not in listed]
    assert all(name.startswith(".tmp-") for name in stray), stray  # at most the killed unit's unfinished temp file
