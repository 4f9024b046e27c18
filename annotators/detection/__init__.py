"""Open-vocabulary detection: one result type, backends behind one Protocol, a factory by name.

Backends: `transformers` (Grounding DINO, default), `ultralytics` (YOLO / YOLO-World
weights, `official` extra), `stub` (canned answers). Heavy modules load on first use.
"""

from annotators.detection.base import (
    DETECTORS,
    Detector,
    DetectorConfig,
    StubDetector,
    make_detector,
)
from annotators.detection.core import Detections

__all__ = ["DETECTORS", "Detections", "Detector", "DetectorConfig", "StubDetector", "make_detector"]
