"""One moto S3 server for the session; every test gets a fresh bucket-free prefix in one bucket."""

from __future__ import annotations

import os
import uuid

import pytest

from tests.servers.s3_server import s3_server

BUCKET = "robot-annotate-tests"


@pytest.fixture(scope="session")
def s3_env(tmp_path_factory) -> dict[str, str]:
    """The S3 server's env, also set in this process (s3fs reads it; subprocesses inherit it)."""
    with s3_server(tmp_path_factory.mktemp("moto")) as env:
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        import s3fs

        s3fs.S3FileSystem.clear_instance_cache()
        fs = s3fs.S3FileSystem()
        fs.mkdir(BUCKET)
        try:
            yield env
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
            s3fs.S3FileSystem.clear_instance_cache()


@pytest.fixture
def s3_prefix(s3_env) -> str:
    """A fresh s3:// folder on the test server."""
    return f"s3://{BUCKET}/{uuid.uuid4().hex[:10]}"
