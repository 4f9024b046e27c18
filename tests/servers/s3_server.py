"""A moto S3 server (`moto_server`) on 127.0.0.1, started once per test session."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.servers.prefect_server import VENV_BIN, free_port, stop_process, wait_until

# What every client of the server needs (s3fs/botocore read these; AWS_ENDPOINT_URL since botocore 1.31).
S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@contextmanager
def s3_server(logdir: Path) -> Iterator[dict[str, str]]:
    """Start moto's S3 server; yield the env (credentials and AWS_ENDPOINT_URL) a client needs."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with open(logdir / "moto.log", "wb") as log:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen([str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def healthy() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"moto server exited: {(logdir / 'moto.log').read_text()[-2000:]}")
        try:
            return httpx.get(f"{url}/moto-api/", timeout=2).status_code < 500
        except httpx.HTTPError:
            return False

    try:
        wait_until(healthy, 60, "moto server", interval=0.2)
        yield {**S3_ENV, "AWS_ENDPOINT_URL": url}
    finally:
        stop_process(proc)
