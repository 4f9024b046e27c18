import pytest

from tests.servers.prefect_server import prefect_server


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory):
    """A real Prefect server for the whole session: env vars to point subprocesses at it."""
    home = tmp_path_factory.mktemp("prefect-server")
    with prefect_server(home) as env:
        yield env
