"""The segmenter contract (one box prompt → one mask per image), a stub for tests, and the factory by backend name."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from datasets_cards.registry import Registry


@dataclass(frozen=True)
class SegmenterConfig:
    """Settings shared by the SAM backends and the SAM 2 video tracker."""

    model: str = "facebook/sam2.1-hiera-tiny"  # hub id (looked up in the local cache) or a local folder
    device: str = "auto"  # auto = cuda when available, else cpu
    dtype: str = "bfloat16"  # autocast dtype on CUDA; CPU always runs fp32
    batch_size: int = 16  # images per forward pass (SamSegmenter)

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be ≥ 1, got {self.batch_size}")


@dataclass
class MaskResult:
    """One object mask at the image's full resolution and its score.

    `score` is the model's predicted IoU of the mask for `Segmenter.segment`, and the
    object-presence probability (sigmoid of SAM 2's object score logit) for the video tracker.
    """

    mask: np.ndarray  # bool H×W
    score: float


# Backend name → a class or factory taking (config=SegmenterConfig, **options); heavy modules load on first use.
SEGMENTERS: Registry[Callable[..., Segmenter]] = Registry("segmenter backend", builtins={
    "transformers": "annotators.segmentation.sam",
})


class Segmenter(Protocol):
    """Promptable segmentation: one xyxy pixel box per image, one mask per image."""

    config: SegmenterConfig

    def segment(self, images: Sequence[np.ndarray], boxes: Sequence[np.ndarray]) -> list[MaskResult]:
        """`images`: uint8 H×W×3 RGB; `boxes`: one float xyxy box in that image's pixels per image."""
        ...


def box_mask(shape: tuple[int, int], box: np.ndarray) -> np.ndarray:
    """bool H×W mask of the pixels whose centres lie inside the xyxy `box` (clipped to the image)."""
    height, width = shape
    x0, y0, x1, y1 = (float(v) for v in np.asarray(box, dtype=np.float64).reshape(4))
    cols = (np.arange(width) + 0.5 >= x0) & (np.arange(width) + 0.5 <= x1)
    rows = (np.arange(height) + 0.5 >= y0) & (np.arange(height) + 0.5 <= y1)
    return rows[:, None] & cols[None, :]


class StubSegmenter:
    """Canned answers: `answers(call_index, image)` for each image seen so far; default: the box filled, score 1."""

    def __init__(self, answers: Callable[[int, np.ndarray], MaskResult] | None = None,
                 config: SegmenterConfig | None = None):
        self.config = config or SegmenterConfig()
        self.answers = answers
        self.calls = 0

    def segment(self, images: Sequence[np.ndarray], boxes: Sequence[np.ndarray]) -> list[MaskResult]:
        if len(images) != len(boxes):
            raise ValueError(f"segment() got {len(images)} images and {len(boxes)} boxes")
        out = []
        for image, box in zip(images, boxes, strict=True):
            if self.answers is not None:
                out.append(self.answers(self.calls, image))
            else:
                out.append(MaskResult(box_mask(image.shape[:2], box), 1.0))
            self.calls += 1
        return out


SEGMENTERS.add("stub", StubSegmenter)


def make_segmenter(backend: str, config: SegmenterConfig | None = None, **options: Any) -> Segmenter:
    """The segmenter of `backend` (transformers | stub) built from `config`."""
    return SEGMENTERS.get(backend)(config=config or SegmenterConfig(), **options)


class Tracker(Protocol):
    """One object through a stream of frames (see video.StreamingTracker for the SAM 2 backend)."""

    def seed(self, frame: np.ndarray, box: np.ndarray | None = None, mask: np.ndarray | None = None) -> MaskResult: ...

    def step(self, frame: np.ndarray) -> MaskResult: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...

    def propagate(self, frames: np.ndarray, start: int, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


class StubTracker:
    """A model-free tracker: the seed's mask (a box prompt filled) stays where it is, score 1 (offline dry runs)."""

    def __init__(self, config: SegmenterConfig | None = None):
        self.config = config or SegmenterConfig()
        self.mask: np.ndarray | None = None

    def seed(self, frame: np.ndarray, box: np.ndarray | None = None, mask: np.ndarray | None = None) -> MaskResult:
        self.mask = np.asarray(mask, bool) if mask is not None else box_mask(frame.shape[:2], box)
        return MaskResult(self.mask.copy(), 1.0)

    def step(self, frame: np.ndarray) -> MaskResult:
        if self.mask is None:
            raise RuntimeError("seed() the tracker before step()")
        return MaskResult(self.mask.copy(), 1.0)

    def state_dict(self) -> dict[str, Any]:
        import torch

        return {} if self.mask is None else {"mask": torch.from_numpy(self.mask.copy())}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.mask = state["mask"].numpy() if "mask" in state else None

    def propagate(self, frames: np.ndarray, start: int, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.repeat(np.asarray(mask, bool)[None], len(frames), axis=0), np.ones(len(frames), np.float32)


# Backend name → the video tracker the same segmenter backend name selects.
TRACKERS: Registry[Callable[..., Tracker]] = Registry("tracker backend", builtins={
    "transformers": "annotators.segmentation.video",
})
TRACKERS.add("stub", StubTracker)


def make_tracker(backend: str, config: SegmenterConfig | None = None, **options: Any) -> Tracker:
    """The video tracker of `backend` (transformers: SAM 2 video | stub) built from `config`."""
    return TRACKERS.get(backend)(config=config or SegmenterConfig(), **options)
