"""A run killed with SIGKILL mid-run, again and again, resumes to exactly the rows of an uninterrupted run.

Each kill lands once the run has written a given number of shards, plus a random delay, so it always
lands mid-run (a fraction of the reference duration did not: resumed runs skip finished units).
"""

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


def shards_written(out: Path) -> int:
    shards = out / PIPELINE / SOURCE / "shards"
    return len(list(shards.glob("shard-*.parquet"))) if shards.exists() else 0


def kill_after_shards(out: Path, env: dict, shards: int, jitter_s: float, deadline_s: float = 300) -> bool:
    """Start a run, SIGKILL it `jitter_s` after it has `shards` shards; False if it finished first."""
    proc = subprocess.Popen(command(out), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + deadline_s
    while proc.poll() is None and shards_written(out) < shards and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(jitter_s)
    killed = proc.poll() is None
    if killed:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(30)
    return killed


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
    # The uninterrupted reference runs beside the killed runs (its own folder; the second core is idle otherwise).
    log = tmp_path / "reference.log"
    with open(log, "wb") as stderr:
        reference = subprocess.Popen(command(tmp_path / "reference"), env=env, stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        out = tmp_path / "killed"
        rng = random.Random(0)
        # Before the first shard (start-up or the first unit), then after 2 and 5 shards, each mid-unit.
        kills = [kill_after_shards(out, env, shards, rng.uniform(0.0, 0.5)) for shards in (0, 2, 5)]
        assert all(kills), f"a run finished before it could be killed ({kills}); the test proves nothing"
        assert reference.wait(600) == 0, log.read_text()[-4000:]
    finally:
        if reference.poll() is None:
            reference.kill()
            reference.wait(30)
    expected = rows(tmp_path / "reference")
    assert len(expected) > EPISODES  # several segments per episode
    assert shards_written(out) < EPISODES
    subprocess.run(command(out), env=env, check=True, capture_output=True, timeout=600)
    assert rows(out) == expected
    shards = sorted(p.name for p in (out / PIPELINE / SOURCE / "shards").iterdir())
    assert shards == [f"shard-{i:05d}.parquet" for i in range(EPISODES)]  # no temp files, no extras
