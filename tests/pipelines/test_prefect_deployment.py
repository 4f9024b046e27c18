"""prefect.yaml works against a real server: deploy, `prefect deployment run`, a process worker runs it.

One worker serves three runs: the sample on the threads runner (its units named and counted in the log, the
output and card named at the end, images inlined in the artifact), DROID where it is not (one line naming the
`location` parameter and the sample deployment), and a task runner whose extra is missing (one line)."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
from pathlib import Path

import httpx
import pytest
import yaml

from datasets_cards import list_sources, load_source_card
from datasets_cards.constants import SAMPLE_PREFIX
from tests.servers.prefect_server import VENV_BIN, stop_process, wait_until

ROOT = Path(__file__).resolve().parents[2]
DEPLOYMENTS = yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]


def prefect(env, *args, timeout=300):
    result = subprocess.run(
        [str(VENV_BIN / "prefect"), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, f"prefect {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def test_deployments_are_named_pipeline_source_and_each_corpus_has_its_sample():
    """The unreachable-corpus message names `annotate/<pipeline>-sample-<source>`: it must exist."""
    annotate = [d for d in DEPLOYMENTS if d["entrypoint"].endswith(":annotate_deployment")]
    names = {d["name"] for d in annotate}
    for d in annotate:
        source, pipeline = d["parameters"]["source"], d["parameters"]["pipeline"]
        assert d["name"] == f"{pipeline}-{source}"
        sample = f"{SAMPLE_PREFIX}{source}"
        if not source.startswith(SAMPLE_PREFIX) and sample in list_sources() \
                and pipeline in load_source_card(sample).pipelines:
            assert f"{pipeline}-{sample}" in names


def _post(api: str, path: str, body: dict) -> list[dict]:
    reply = httpx.post(f"{api}/{path}", json=body, timeout=10)
    reply.raise_for_status()
    return reply.json()


def _run(env, deployment: str, *params: str) -> str:
    out = prefect(env, "deployment", "run", deployment, *[a for p in params for a in ("--param", p)])
    return re.search(r"UUID:\s*([0-9a-f-]{36})", out).group(1)


@pytest.mark.server
@pytest.mark.slow
@pytest.mark.skipif("sample-droid" not in list_sources(), reason="needs the embedded sample (sample-droid)")
def test_deployment_runs_by_a_process_worker(prefect_api, tmp_path):
    env = {**os.environ, **prefect_api, "PYTHONPATH": str(ROOT), "PREFECT_LOGGING_LEVEL": "INFO"}  # the runs log INFO
    api = prefect_api["PREFECT_API_URL"]
    out = tmp_path / "out"
    prefect(env, "work-pool", "create", "robot-annotate", "--type", "process", "--overwrite")
    prefect(env, "--no-prompt", "deploy", "--name", "la-sample-droid", "--name", "la-droid")
    sample = _run(env, "annotate/la-sample-droid", f"out={out}", "limit=2", "episodes_per_shard=1",
                  "task_runner=threads", "workers=2")
    droid = _run(env, "annotate/la-droid", f"location={tmp_path / 'no-droid'}", f"out={out}")
    runner = "dask" if importlib.util.find_spec("prefect_dask") is None else "slurm"
    no_runner = _run(env, "annotate/la-sample-droid", f"out={out}", f"task_runner={runner}")

    log = open(tmp_path / "worker.log", "wb")
    # The worker asks for the next run every second, not every 10 s: it serves the three one after another.
    worker = subprocess.Popen(
        [str(VENV_BIN / "prefect"), "worker", "start", "--pool", "robot-annotate", "--limit", "1"],
        cwd=ROOT, env={**env, "PREFECT_WORKER_QUERY_SECONDS": "1"}, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )

    def state(run_id: str) -> dict:
        return httpx.get(f"{api}/flow_runs/{run_id}", timeout=10).json()["state"]

    def all_finished():
        states = [state(r) for r in (sample, droid, no_runner)]
        return states if all(s["type"] in {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"} for s in states) else None

    try:
        done, refused, unknown = wait_until(all_finished, 600, "flow runs", interval=2)
    finally:
        stop_process(worker)
        log.close()
    worker_log = (tmp_path / "worker.log").read_text()
    assert done["type"] == "COMPLETED", worker_log[-4000:]
    target = out / "la" / "sample-droid"
    manifest = json.loads((target / "manifest.json").read_text())
    assert manifest["complete"] and len(manifest["shards"]) == 2
    assert all((target / s["path"]).exists() for s in manifest["shards"])
    assert (target / "card.md").exists()

    # The annotate flow ran as a subflow on the chosen runner; its runs carry sensible names.
    [child] = _post(api, "flow_runs/filter", {"flow_runs": {"parent_flow_run_id": {"any_": [sample]}}})
    assert child["name"] == "la-sample-droid" and child["state"]["type"] == "COMPLETED"
    units = _post(api, "task_runs/filter", {"flow_runs": {"id": {"any_": [child["id"]]}}})
    assert sorted(t["name"] for t in units if t["name"].startswith("unit-")) == ["unit-00000 [0:1]",
                                                                                 "unit-00001 [1:2]"]
    lines = [entry["message"] for entry in _post(api, "logs/filter", {
        "logs": {"flow_run_id": {"any_": [child["id"]]}}, "sort": "TIMESTAMP_ASC", "limit": 200})]
    assert any(re.match(r"shard shards/shard-0000\d\.parquet: unit [12] of 2 \[\d:\d\], \d+ rows in", m) for m in lines)
    ours = [m for m in lines if not m.startswith("Finished in state")]  # Prefect's own last words
    assert ours[-1] == f"output: {target}; card: {target}/card.md", ours[-5:]
    artifacts = _post(api, "artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [child["id"]]}}})
    assert sorted(a["type"] for a in artifacts) == ["markdown", "progress"]  # the card and the unit progress
    [artifact] = [a for a in artifacts if a["type"] == "markdown"]
    assert "](data:image/png;base64," in artifact["data"] or "](data:image/jpeg;base64," in artifact["data"]

    # DROID unreachable: one line naming the parameter and the sample deployment, before TensorFlow loads.
    assert refused["type"] == "FAILED"
    assert refused["message"].endswith(
        f"droid is not reachable at {tmp_path / 'no-droid'}: nothing is there. Set --param location=/path/to/droid "
        "to where the corpus is, or run the deployment annotate/la-sample-droid on the embedded sample"), refused
    runs = [droid] + [r["id"] for r in _post(api, "flow_runs/filter",
                                             {"flow_runs": {"parent_flow_run_id": {"any_": [droid]}}})]
    refused_log = " ".join(e["message"] for e in _post(api, "logs/filter", {"logs": {"flow_run_id": {"any_": runs}}}))
    assert "not reachable" in refused_log  # the run logged its failure ...
    assert "site-packages/tensorflow" not in refused_log and "googleapis" not in refused_log  # ... before a reader
    assert not (out / "la" / "droid").exists()

    assert unknown["type"] == "FAILED" and "\n" not in unknown["message"]
    assert ("pip install -e '.[dask]'" if runner == "dask" else "unknown task runner 'slurm'") in unknown["message"]
