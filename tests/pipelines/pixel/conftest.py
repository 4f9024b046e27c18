import pytest

from tests.annotators.detection.tiny_grounding_dino import save_tiny_grounding_dino
from tests.annotators.segmentation.tiny_sam import tiny_sam2_video


@pytest.fixture(scope="session")
def tiny_grounding_dino_path(tmp_path_factory):
    """A saved tiny random-weight Grounding DINO (128 px keeps the stride-64 level above 1×1 on small crops)."""
    return save_tiny_grounding_dino(tmp_path_factory.mktemp("grounding-dino-tiny"), image_edge=128)


@pytest.fixture(scope="session")
def tiny_sam2_path(tmp_path_factory) -> str:
    """A saved tiny random-weight SAM 2 checkpoint: the video tracker and the box-prompted masks load it."""
    return tiny_sam2_video(tmp_path_factory.mktemp("sam2-tiny"))
