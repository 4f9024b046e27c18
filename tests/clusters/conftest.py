import tempfile
from pathlib import Path

import pytest

from tests.servers.dask_cluster import dask_cluster
from tests.servers.prefect_server import prefect_server
from tests.servers.ray_cluster import ray_cluster


@pytest.fixture(scope="session")
def cluster_prefect_api(tmp_path_factory):
    """A real Prefect server: task runs on cluster workers report to it (the test harness's lives in-process)."""
    with prefect_server(tmp_path_factory.mktemp("prefect-server")) as env:
        yield env


@pytest.fixture(scope="session")
def dask_address(tmp_path_factory, cluster_prefect_api):
    """A scheduler and two single-threaded worker processes on 127.0.0.1, for the whole session."""
    pytest.importorskip("prefect_dask")
    with dask_cluster(tmp_path_factory.mktemp("dask"), cluster_prefect_api) as address:
        yield address


@pytest.fixture(scope="session")
def ray_address(cluster_prefect_api):
    """A head and a second node, one CPU each, on 127.0.0.1, for the whole session."""
    pytest.importorskip("prefect_ray")
    # A short folder: Ray's socket paths are limited in length.
    with tempfile.TemporaryDirectory(prefix="ray-", dir="/tmp") as temp, ray_cluster(Path(temp), cluster_prefect_api) as address:
        yield address
