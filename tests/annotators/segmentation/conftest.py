import pytest
import torch

from tests.annotators.segmentation.tiny_sam import tiny_sam, tiny_sam2_video


@pytest.fixture(scope="session")
def tiny_sam2_video_path(tmp_path_factory) -> str:
    """Folder of a saved tiny random-weight SAM 2 video checkpoint (built once per session)."""
    return tiny_sam2_video(tmp_path_factory.mktemp("sam2-video-tiny"))


@pytest.fixture(scope="session")
def tiny_sam2_path(tiny_sam2_video_path) -> str:
    """Folder of a tiny SAM 2 image checkpoint: the video folder, which Sam2Model loads as the hub's do."""
    return tiny_sam2_video_path


@pytest.fixture(scope="session")
def tiny_sam_path(tmp_path_factory) -> str:
    """Folder of a saved tiny random-weight SAM 1 checkpoint."""
    return tiny_sam(tmp_path_factory.mktemp("sam-tiny"))


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """The tiny models' ops are too small to split: one thread is several times faster, and immune to
    other processes contending for the cores. Restored after each module."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
