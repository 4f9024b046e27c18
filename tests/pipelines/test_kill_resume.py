"""A run killed with SIGKILL at random points resumes to exactly the rows of an uninterrupted run."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from datasets_cards import list_sources, load_output_card

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.server, pytest.mark.slow]
SOURCE, PIPELINE, EPISODES = "sample-droid", "la", 8


def command(out: Path) -> list[str]:
    return [
        sys.executable, "-m", "pipelines", "annotate", SOURCE, "--pipeline", PIPELINE,
        "--out", str(out), "--limit", str(EPISODES), "--episodes-per-shard", "1", "--workers", "1",
    ]


def rows(out: Path) -> list[tuple]:
    """Every row of the finished output (via the manifest), as sorted comparable tuples."""
    target = out / PIPELINE / SOURCE
    manifest = json.loads((target / "manifest.json").read_text())
    assert manifest["complete"]
    card = load_output_card(PIPELINE)
    got = []
    for shard in manifest["shards"]:
        table = pq.read_table(target / shard["path"])
        got += [tuple(json.dumps(r[c], sort_keys=True) for c in card.key + ["instruction", "start", "end"])
                for r in table.to_pylist()]
    return sorted(got)


@pytest.mark.skipif(f"{SOURCE}" not in list_sources(), reason="needs the embedded sample (sample-droid)")
def test_sigkill_at_random_points_then_resume_matches_uninterrupted_run(prefect_api, tmp_path):
    env = {**os.environ, **prefect_api}
    started = time.monotonic()
    subprocess.run(command(tmp_path / "reference"), env=env, check=True, capture_output=True, timeout=600)
    duration = time.monotonic() - started
    expected = rows(tmp_path / "reference")
    assert len(expected) > EPISODES  # several segments per episode

    out = tmp_path / "killed"
    rng = random.Random(0)
    kills = 0
    for _ in range(4):
        proc = subprocess.Popen(command(out), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        time.sleep(rng.uniform(0.3, 0.9) * duration)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait(30)
    assert kills >= 2, "the run finished before it could be killed; the test proves nothing"
    subprocess.run(command(out), env=env, check=True, capture_output=True, timeout=600)
    assert rows(out) == expected
    shards = sorted(p.name for p in (out / PIPELINE / SOURCE / "shards").iterdir())
    assert shards == [f"shard-{i:05d}.parquet" for i in range(EPISODES)]  # no temp files, no extras
