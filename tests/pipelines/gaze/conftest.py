import pytest

from tests.annotators.detection.tiny_grounding_dino import save_tiny_grounding_dino


@pytest.fixture(scope="session")
def tiny_grounding_dino_path(tmp_path_factory):
    """A saved tiny random-weight Grounding DINO, loaded by the pipeline through its real loading path."""
    # 128 px: on square 256×256 sample frames the stride-64 level must keep more than 1×1 for GroupNorm.
    return save_tiny_grounding_dino(tmp_path_factory.mktemp("grounding-dino-tiny"), image_edge=128)
