import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from tests.annotators.vision.tiny_models import save_tiny_qwen


@pytest.fixture(scope="session")
def tiny_qwen_path(tmp_path_factory):
    """A saved tiny random-weight Qwen2.5-VL (whole model), loaded by the pipeline through its real loading path."""
    return save_tiny_qwen(tmp_path_factory.mktemp("qwen2_5_vl-tiny"))
