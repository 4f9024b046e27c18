"""Atomic segmentation of episodes into LA-vocabulary primitives (kinematic or VLM)."""

from annotators.segments.base import VOCABULARY, Segment, SegmentationInput, Segmenter

__all__ = ["VOCABULARY", "Segment", "SegmentationInput", "Segmenter"]
