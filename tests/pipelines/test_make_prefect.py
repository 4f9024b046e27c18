"""The Makefile's Prefect targets agree on one PREFECT_HOME and one PREFECT_API_URL, and deploy/worker stop
with one line when no server answers there (not a temporary server of prefect's own).

The targets run for real against a stand-in virtualenv whose `prefect` records its arguments and environment
(its `python` is the real one), so nothing is installed and no work pool is created."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.servers.prefect_server import free_port

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")


@pytest.fixture
def venv(tmp_path):
    """VENV for make: bin/python is this interpreter, bin/prefect prints what it was run with."""
    bin_dir = tmp_path / "venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python").write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    (bin_dir / "prefect").write_text('#!/bin/sh\necho "prefect $* | API=${PREFECT_API_URL-unset} HOME=$PREFECT_HOME"\n')
    for exe in bin_dir.iterdir():
        exe.chmod(0o755)
    return tmp_path / "venv"


def make(venv: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_") and not k.startswith("MAKE")}
    return subprocess.run(["make", "--no-print-directory", "-o", "install", *args, f"VENV={venv}"], cwd=ROOT,
                          env={**base, **(env or {})}, capture_output=True, text=True, timeout=60, check=False)


def test_deploy_and_worker_stop_with_one_line_when_no_server_answers(venv):
    port = free_port()  # nothing listens there
    for target in ("deploy", "worker"):
        result = make(venv, target, f"PREFECT_PORT={port}")
        assert result.returncode != 0
        assert "prefect " not in result.stdout  # neither the work pool nor a deploy was tried
        errors = [line for line in result.stderr.splitlines() if not line.startswith("make")]
        expected = (f"error: no Prefect server answers at PREFECT_API_URL=http://127.0.0.1:{port}/api (ConnectError): "
                    "start one with `make prefect-server` (PREFECT_PORT=... for another port) or set PREFECT_API_URL "
                    "to yours")
        assert errors == [expected], result.stderr


@pytest.mark.server
def test_server_deploy_and_worker_share_one_home_and_url(venv, prefect_api):
    port = prefect_api["PREFECT_API_URL"].split(":")[-1].split("/")[0]
    url = f"http://127.0.0.1:{port}/api"
    home = str(ROOT / ".prefect")
    server = make(venv, "prefect-server", f"PREFECT_PORT={port}")
    assert server.returncode == 0, server.stderr
    assert f"PREFECT_API_URL={url}, PREFECT_HOME={home}" in server.stdout  # printed once, for the other shells
    assert f"prefect server start --host 127.0.0.1 --port {port} | API={url} HOME={home}" in server.stdout
    for target in ("deploy", "worker"):  # the test server answers at that URL: the real commands follow
        result = make(venv, target, f"PREFECT_PORT={port}")
        assert result.returncode == 0, result.stderr
        commands = [line for line in result.stdout.splitlines() if line.startswith("prefect ")]
        assert commands and all(line.endswith(f"| API={url} HOME={home}") for line in commands), result.stdout
    # A URL given in the environment wins; a server start that contradicts it is refused.
    given = make(venv, "worker", env={"PREFECT_API_URL": url})
    assert given.returncode == 0 and f"API={url}" in given.stdout
    clash = make(venv, "prefect-server", env={"PREFECT_API_URL": url})
    assert clash.returncode != 0 and "is not this server's http://127.0.0.1:4200/api" in clash.stderr


def test_other_targets_keep_prefect_local(venv):
    """`make annotate` runs with Prefect's temporary server: no PREFECT_API_URL is exported to it."""
    (venv / "bin" / "python").write_text('#!/bin/sh\necho "python $* | API=${PREFECT_API_URL-unset}"\n')
    result = make(venv, "annotate", "DATASET=sample-droid")
    assert result.returncode == 0, result.stderr
    assert "-m pipelines annotate sample-droid --out outputs | API=unset" in result.stdout


def test_a_url_without_api_is_not_taken_for_the_api(prefect_api):
    """The server's web UI answers /health too (its page, 200): only the API's JSON counts."""
    from pipelines.prefect_server import server_problem

    api = prefect_api["PREFECT_API_URL"]
    assert server_problem(api) is None
    problem = server_problem(api.removesuffix("/api"))
    assert problem is not None and "ends in /api" in problem
