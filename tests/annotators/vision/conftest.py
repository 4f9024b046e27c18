import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from tests.annotators.vision.tiny_models import (
    save_tiny_dinov2,
    save_tiny_qwen,
    save_tiny_siglip,
)


@pytest.fixture(scope="session")
def tiny_qwen(tmp_path_factory):
    return save_tiny_qwen(tmp_path_factory.mktemp("qwen2_5_vl-tiny"))


@pytest.fixture(scope="session")
def tiny_siglip(tmp_path_factory):
    return save_tiny_siglip(tmp_path_factory.mktemp("siglip-tiny"))


@pytest.fixture(scope="session")
def tiny_dinov2(tmp_path_factory):
    return save_tiny_dinov2(tmp_path_factory.mktemp("dinov2-tiny"))
