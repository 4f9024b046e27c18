"""prefect.yaml works against a real server: deploy, `prefect deployment run`, a process worker runs it."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import httpx
import pytest

from datasets_cards import list_sources
from tests.servers.prefect_server import VENV_BIN, stop_process, wait_until

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.server, pytest.mark.slow]


def prefect(env, *args, timeout=300):
    result = subprocess.run(
        [str(VENV_BIN / "prefect"), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, f"prefect {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.mark.skipif("sample-droid" not in list_sources(), reason="needs the embedded sample (sample-droid)")
def test_deployment_run_by_a_process_worker_writes_shards(prefect_api, tmp_path):
    env = {**os.environ, **prefect_api, "PYTHONPATH": str(ROOT)}
    out = tmp_path / "out"
    prefect(env, "work-pool", "create", "robot-annotate", "--type", "process", "--overwrite")
    prefect(env, "--no-prompt", "deploy", "--name", "la-sample-droid")
    run_out = prefect(
        env, "deployment", "run", "annotate/la-sample-droid",
        "--param", f"out={out}", "--param", "limit=2", "--param", "episodes_per_shard=1",
    )
    assert "Created flow run" in run_out
    run_id = re.search(r"UUID:\s*([0-9a-f-]{36})", run_out).group(1)

    log = open(tmp_path / "worker.log", "wb")
    worker = subprocess.Popen(
        [str(VENV_BIN / "prefect"), "worker", "start", "--pool", "robot-annotate", "--limit", "1"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    api = prefect_api["PREFECT_API_URL"]

    def finished_state():
        state = httpx.get(f"{api}/flow_runs/{run_id}", timeout=10).json()["state"]["type"]
        return state if state in {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"} else None

    try:
        state = wait_until(finished_state, 420, "flow run", interval=2)
    finally:
        stop_process(worker)
        log.close()
    assert state == "COMPLETED", (tmp_path / "worker.log").read_text()[-4000:]
    target = out / "la" / "sample-droid"
    manifest = json.loads((target / "manifest.json").read_text())
    assert manifest["complete"] and len(manifest["shards"]) == 2
    assert all((target / s["path"]).exists() for s in manifest["shards"])
    assert (target / "card.md").exists()
