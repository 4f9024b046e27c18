"""One result type for every detector backend, in the shape of supervision's Detections."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Detections:
    """N detections of one image: boxes in pixel xyxy, confidences, class ids and per-row extras.

    Indexing with an int, slice, index array or boolean mask returns a new
    Detections holding copies of the selected rows.
    """

    xyxy: np.ndarray  # N×4 float32, pixels, x0 y0 x1 y1
    confidence: np.ndarray  # N float32
    class_id: np.ndarray  # N int64 (index of the phrase in the prompt; 0 for a single phrase)
    data: dict[str, np.ndarray] = field(default_factory=dict)  # extra N-row arrays, e.g. "phrase"

    def __post_init__(self) -> None:
        self.xyxy = np.asarray(self.xyxy, dtype=np.float32).reshape(-1, 4)
        n = len(self.xyxy)
        self.confidence = np.asarray(self.confidence, dtype=np.float32).reshape(-1)
        self.class_id = np.asarray(self.class_id, dtype=np.int64).reshape(-1)
        if self.confidence.shape != (n,) or self.class_id.shape != (n,):
            raise ValueError(
                f"Detections of {n} boxes got {self.confidence.shape[0]} confidences and {self.class_id.shape[0]} class ids"
            )
        for key, values in self.data.items():
            if len(values) != n:
                raise ValueError(f"Detections.data[{key!r}] has {len(values)} rows, expected {n}")
        if n and not np.all(self.xyxy[:, 2:] >= self.xyxy[:, :2]):
            raise ValueError("Detections boxes must have x1 ≥ x0 and y1 ≥ y0")

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))

    def __len__(self) -> int:
        return len(self.xyxy)

    def __getitem__(self, index: Any) -> Detections:
        if isinstance(index, (int, np.integer)):
            index = [int(index)]
        return Detections(
            self.xyxy[index].copy(),
            self.confidence[index].copy(),
            self.class_id[index].copy(),
            {k: np.asarray(v)[index].copy() for k, v in self.data.items()},
        )

    def best(self) -> Detections:
        """The highest-confidence detection (empty stays empty)."""
        return self if len(self) == 0 else self[int(np.argmax(self.confidence))]
