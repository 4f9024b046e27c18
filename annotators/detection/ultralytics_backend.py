"""Optional ultralytics backend: YOLO-World (open vocabulary) or a YOLO the user fine-tuned on named classes.

ReconVLA's released CALVIN code detects with a fine-tuned YOLOv8s; this backend
runs such weights. It needs the `official` extra and is imported only when asked for.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from annotators.detection.base import DETECTORS, DetectorConfig
from annotators.detection.core import Detections

INSTALL_HINT = "the ultralytics backend needs the `official` extra: pip install -e '.[official]' (it pulls torchvision)"


def require_ultralytics() -> Any:
    try:
        import ultralytics
    except ImportError as e:
        raise ImportError(INSTALL_HINT) from e
    return ultralytics


@DETECTORS.register("ultralytics")
class UltralyticsDetector:
    """`config.model` is a weights file (.pt). YOLO-World gets the phrase as its class; a plain YOLO keeps
    the boxes whose class name equals the phrase."""

    def __init__(self, config: DetectorConfig | None = None, model: Any = None):
        self.config = config or DetectorConfig()
        if model is None:
            ultralytics = require_ultralytics()
            model = ultralytics.YOLO(self.config.model)
        self.model = model
        self._classes: list[str] | None = None  # YOLO-World's current vocabulary
        self.open_vocabulary = hasattr(model, "set_classes") and "world" in type(getattr(model, "model", model)).__name__.lower()

    def detect(self, images: Sequence[np.ndarray], phrases: Sequence[str]) -> list[Detections]:
        if len(images) != len(phrases):
            raise ValueError(f"detect() got {len(images)} images and {len(phrases)} phrases")
        names = [p.rstrip(".").strip() for p in phrases]
        out: list[Detections] = []
        start = 0
        while start < len(images):  # consecutive images with one phrase go through predict() together
            stop = start + 1
            while stop < len(images) and names[stop] == names[start] and stop - start < self.config.batch_size:
                stop += 1
            out.extend(self._predict([im[..., ::-1] for im in images[start:stop]], names[start]))  # ultralytics wants BGR
            start = stop
        return out

    def _predict(self, images: list[np.ndarray], name: str) -> list[Detections]:
        if self.open_vocabulary and self._classes != [name]:
            self.model.set_classes([name])
            self._classes = [name]
        results = self.model.predict(images, conf=self.config.box_threshold, max_det=self.config.max_detections, verbose=False)
        out = []
        for result in results:
            xyxy = result.boxes.xyxy.cpu().numpy()
            conf = result.boxes.conf.cpu().numpy()
            cls = result.boxes.cls.cpu().numpy().astype(np.int64)
            keep = np.ones(len(xyxy), bool) if self.open_vocabulary else np.array(
                [result.names[int(c)] == name for c in cls], bool).reshape(-1)
            out.append(Detections(xyxy[keep], conf[keep], np.zeros(int(keep.sum()), np.int64)))
        return out
