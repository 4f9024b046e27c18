import pytest

from tests.annotators.detection.tiny_grounding_dino import save_tiny_grounding_dino


@pytest.fixture(scope="session")
def tiny_grounding_dino(tmp_path_factory):
    """Path of a saved tiny random-weight Grounding DINO (built once per session)."""
    return save_tiny_grounding_dino(tmp_path_factory.mktemp("grounding-dino-tiny"))
