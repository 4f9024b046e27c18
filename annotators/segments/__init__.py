"""Atomic segmentation of episodes into LA-vocabulary primitives (kinematic or VLM)."""

from annotators.segments.base import (
    SEGMENTERS,
    VOCABULARY,
    Segment,
    SegmentationInput,
    Segmenter,
)

__all__ = ["SEGMENTERS", "VOCABULARY", "Segment", "SegmentationInput", "Segmenter"]
