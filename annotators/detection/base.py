"""The detector contract, a stub for tests, and the factory by backend name."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from annotators.detection.core import Detections
from datasets_cards.registry import Registry


@dataclass(frozen=True)
class DetectorConfig:
    """Settings shared by every backend (thresholds come from the source card's params.gaze)."""

    model: str = "IDEA-Research/grounding-dino-tiny"  # hub id (looked up in the local cache) or a local folder
    device: str = "auto"  # auto = cuda when available, else cpu
    dtype: str = "bfloat16"  # autocast dtype on CUDA; CPU always runs fp32
    box_threshold: float = 0.3  # Grounding DINO `threshold`: minimum box confidence
    text_threshold: float = 0.25  # minimum token score for a phrase token to count as matched
    max_detections: int = 10  # boxes kept per image, best first (bounds post-processing work)
    batch_size: int = 16  # images per forward pass

    def __post_init__(self) -> None:
        for name in ("box_threshold", "text_threshold"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {value}")
        if self.max_detections < 1 or self.batch_size < 1:
            raise ValueError(f"max_detections and batch_size must be ≥ 1, got {self.max_detections}, {self.batch_size}")


# Backend name → a class or factory taking (config=DetectorConfig, **options); heavy modules load on first use.
DETECTORS: Registry[Callable[..., Detector]] = Registry("detector backend", builtins={
    "transformers": "annotators.detection.grounding_dino",
    "ultralytics": "annotators.detection.ultralytics_backend",
})


class Detector(Protocol):
    """Open-vocabulary detection: one phrase per image, one Detections per image."""

    config: DetectorConfig

    def detect(self, images: Sequence[np.ndarray], phrases: Sequence[str]) -> list[Detections]:
        """`images`: uint8 H×W×3 RGB; `phrases`: one detector prompt per image ("red block.")."""
        ...


class StubDetector:
    """Canned answers: `answers(image_index, phrase)` for each image seen so far, else no box (tests, ground truth)."""

    def __init__(self, answers: Callable[[int, str], Detections] | None = None, config: DetectorConfig | None = None):
        self.config = config or DetectorConfig()
        self.answers = answers
        self.calls = 0

    def detect(self, images: Sequence[np.ndarray], phrases: Sequence[str]) -> list[Detections]:
        out = []
        for _image, phrase in zip(images, phrases, strict=True):
            out.append(self.answers(self.calls, phrase) if self.answers else Detections.empty())
            self.calls += 1
        return out


DETECTORS.add("stub", StubDetector)


class CentreBoxDetector:
    """One box over the central `fraction` of every image, confidence 1: a model-free backend that always
    answers, for offline dry runs of a whole flow (the pipeline contract) where `stub` would find nothing."""

    def __init__(self, config: DetectorConfig | None = None, fraction: float = 0.5):
        self.config = config or DetectorConfig()
        self.fraction = fraction

    def detect(self, images: Sequence[np.ndarray], phrases: Sequence[str]) -> list[Detections]:
        out = []
        for image, _phrase in zip(images, phrases, strict=True):
            height, width = image.shape[:2]
            margin = (1 - self.fraction) / 2
            box = [margin * width, margin * height, (1 - margin) * width, (1 - margin) * height]
            out.append(Detections(np.array([box], np.float32), np.ones(1, np.float32), np.zeros(1, np.int64)))
        return out


DETECTORS.add("centre", CentreBoxDetector)


def make_detector(backend: str, config: DetectorConfig | None = None, **options: Any) -> Detector:
    """The detector of `backend` (transformers | ultralytics | stub | centre) built from `config`."""
    return DETECTORS.get(backend)(config=config or DetectorConfig(), **options)

