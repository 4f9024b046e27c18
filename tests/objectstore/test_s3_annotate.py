"""`annotate --out s3://...` on a moto S3 server: the same rows as a local run; a SIGKILLed run resumes there."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import fsspec
import pyarrow.parquet as pq
import pytest

from datasets_cards import list_sources

pytestmark = [pytest.mark.server, pytest.mark.skipif("sample-droid" not in list_sources(),
                                                     reason="needs the embedded sample (sample-droid)")]
SOURCE, PIPELINE, EPISODES = "sample-droid", "la", 8
ROOT = Path(__file__).resolve().parents[2]
VOLATILE = {"source_location"}  # where the source was read from: not a property of the rows


def command(out: str) -> list[str]:
    return [sys.executable, "-m", "pipelines", "annotate", SOURCE, "--pipeline", PIPELINE, "--out", out,
            "--limit", str(EPISODES), "--episodes-per-shard", "1", "--workers", "1",
            "-o", "review=false", "-o", "plots=0"]


def run(out: str, env: dict) -> None:
    done = subprocess.run(command(out), check=False, env=env, cwd=env["RUN_CWD"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def manifest(target: str) -> dict | None:
    fs, p = fsspec.core.url_to_fs(f"{target}/manifest.json")
    fs.invalidate_cache()
    return json.loads(fs.cat(p)) if fs.exists(p) else None


def rows(out: str) -> list[str]:
    """Every row the finished output's manifest lists, as sorted JSON (minus volatile columns)."""
    target = f"{out}/{PIPELINE}/{SOURCE}"
    m = manifest(target)
    assert m is not None and m["complete"]
    got = []
    for shard in m["shards"]:
        with fsspec.open(f"{target}/{shard['path']}", "rb") as f:
            table = pq.read_table(f)
        got += [json.dumps({k: v for k, v in r.items() if k not in VOLATILE}, sort_keys=True, default=str)
                for r in table.to_pylist()]
    return sorted(got)


@pytest.fixture(scope="module")
def env(prefect_api, s3_env, tmp_path_factory) -> dict:
    """Runs start in a temp folder (a remote OUT's run log goes to ./logs/), importing this checkout's code."""
    return {**os.environ, **s3_env, **prefect_api, "PYTHONPATH": str(ROOT),
            "RUN_CWD": str(tmp_path_factory.mktemp("cwd"))}


@pytest.fixture(scope="module")
def local_rows(env, tmp_path_factory) -> list[str]:
    out = str(tmp_path_factory.mktemp("local"))
    run(out, env)
    return rows(out)


def test_annotate_to_s3_writes_the_rows_of_a_local_run(env, local_rows, s3_prefix):
    run(s3_prefix, env)
    assert rows(s3_prefix) == local_rows
    fs, root = fsspec.core.url_to_fs(s3_prefix)
    fs.invalidate_cache()
    names = [p.rsplit("/", 1)[-1] for p in fs.find(root)]
    assert "card.md" in names and "manifest.json" in names
    leftovers = [n for n in names if n.startswith(".tmp-") or n == ".lease.json"]
    assert not leftovers, leftovers  # temp objects removed, lease released
    m = manifest(f"{s3_prefix}/{PIPELINE}/{SOURCE}")
    listed = {s["path"] for s in m["shards"]}
    on_s3 = {p.split(f"{PIPELINE}/{SOURCE}/", 1)[1] for p in fs.find(f"{root}/{PIPELINE}/{SOURCE}/shards")}
    assert listed == on_s3 and len(listed) == EPISODES


def test_sigkill_then_resume_on_s3_matches_uninterrupted_run(env, local_rows, s3_prefix):
    target = f"{s3_prefix}/{PIPELINE}/{SOURCE}"
    proc = subprocess.Popen(command(s3_prefix), env=env, cwd=env["RUN_CWD"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 240
    while proc.poll() is None and time.monotonic() < deadline:
        m = manifest(target)
        if m and m["shards"]:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed: the test proves nothing"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(30)
    m = manifest(target)
    assert m is not None and not m["complete"] and len(m["shards"]) < EPISODES
    fs, lease = fsspec.core.url_to_fs(f"{target}/.lease.json")
    fs.invalidate_cache()
    assert fs.exists(lease)  # the killed run's lease: same host, dead pid → taken over at once below

    run(s3_prefix, env)
    assert rows(s3_prefix) == local_rows  # no lost, no duplicated rows


def test_two_runs_started_at_once_on_one_s3_out_one_writes(env, local_rows, s3_prefix):
    """Two workers handed the same OUT: the lease lets one write; the other stops before writing, saying why."""
    runs = [subprocess.Popen(command(s3_prefix), env=env, cwd=env["RUN_CWD"], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    logs = [r.communicate(timeout=300)[0] for r in runs]
    codes = sorted(r.returncode for r in runs)
    loser = logs[[r.returncode for r in runs].index(codes[1])]
    assert codes[0] == 0 and codes[1] != 0, logs
    assert "lease" in loser.lower() and "Traceback" not in loser, loser[-3000:]
    assert rows(s3_prefix) == local_rows  # the winner's output, whole, with no row of the other run
