"""Session-wide isolation: tools that write under $HOME write into a temp dir instead."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

_SESSION_HOME = Path(tempfile.mkdtemp(prefix="robot-annotate-tests-"))
for var, sub in {
    "PREFECT_HOME": "prefect",
    "LABEL_STUDIO_BASE_DATA_DIR": "label-studio",
    "KERAS_HOME": "keras",
    "MPLCONFIGDIR": "mpl",
    "HF_HOME": "hf",
    "TFDS_DATA_DIR": "tfds",
}.items():
    os.environ.setdefault(var, str(_SESSION_HOME / sub))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as pipelines/__init__.py sets it, before torch loads
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")  # load_dataset on output folders: never the Hub
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
# Prefect logs "stopping temporary server" after pytest closed its streams; keep tests quiet.
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
# The ephemeral API server starts slowly on 2 busy cores (default timeout 20 s).
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")


import multiprocessing  # noqa: E402

# Loader workers in tests start through the forkserver (fork is unsafe once TensorFlow or Prefect threads run). The
# server imports torch and the trainer once, here thread-free; each worker forked from it skips that (~3 s a worker).
multiprocessing.set_forkserver_preload(["__main__", "trainer.data"])

import pytest  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def prefect_harness():
    """Flows in this process run against one temporary Prefect API for the whole session.

    Tests that need a real server (deployments, a worker, SIGKILL) start their own in tests/servers.
    """
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(autouse=True)
def thread_keeps_its_scheduling_policy():
    """No test may leave the main thread real-time: threads it starts inherit that and can own every core.

    (SVT-AV1 did, as root; pipelines.io.video.keep_thread_scheduling puts it back.)
    """
    if not hasattr(os, "sched_getscheduler"):
        yield
        return
    before = os.sched_getscheduler(0), os.sched_getparam(0)
    yield
    after = os.sched_getscheduler(0), os.sched_getparam(0)
    if after != before:
        os.sched_setscheduler(0, *before)
        pytest.fail(f"the test changed the main thread's scheduling from {before} to {after}")


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory):
    """A real Prefect server for the whole session: env vars to point subprocesses at it. One for the pipelines
    and object-store tests (a SIGKILLed run must not take its API down with it); each start costs 10-20 s."""
    from tests.servers.prefect_server import prefect_server

    home = tmp_path_factory.mktemp("prefect-server")
    with prefect_server(home) as env:
        yield env


@dataclass(frozen=True)
class LabelStudio:
    url: str
    token: str
    document_root: Path  # media must lie below it
    username: str  # the first user, for tests that log in through the web page
    password: str


@pytest.fixture(scope="session")
def label_studio(tmp_path_factory):
    """A real Label Studio server from .venv-labelstudio, once per session (first start migrates): the review
    tests and the browser test share it."""
    from pipelines.labelstudio.server import DEFAULT_VENV, LabelStudioServer

    if not (DEFAULT_VENV / "bin" / "label-studio").exists():
        pytest.skip(f"Label Studio is not installed in {DEFAULT_VENV}: run `make labelstudio-venv`")
    root = tmp_path_factory.mktemp("label-studio")
    documents = root / "documents"
    documents.mkdir()
    server = LabelStudioServer(data_dir=root / "data", document_root=documents, token=f"test-{os.getpid()}")
    with server:
        yield LabelStudio(server.url, server.token, documents, server.username, server.password)
