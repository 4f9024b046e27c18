"""Promptable segmentation (SAM 2 / SAM from a box) and SAM 2 video tracking over long frame streams.

Backends of `Segmenter`: `transformers` (SamSegmenter: SAM 2 or SAM 1 checkpoints, default),
`stub` (canned answers). Trackers (`make_tracker`): `StreamingTracker` (video.py, `transformers`)
tracks one object through an unbounded stream with bounded state and checkpoints; `StubTracker`
(`stub`) keeps its seed's mask. Heavy modules (torch, transformers) load on first use.
"""

from typing import Any

from annotators.segmentation.base import (
    SEGMENTERS,
    TRACKERS,
    MaskResult,
    Segmenter,
    SegmenterConfig,
    StubSegmenter,
    StubTracker,
    Tracker,
    make_segmenter,
    make_tracker,
)

__all__ = ["SEGMENTERS", "TRACKERS", "MaskResult", "SamSegmenter", "Segmenter", "SegmenterConfig",
           "StreamingTracker", "StubSegmenter", "StubTracker", "Tracker", "make_segmenter", "make_tracker"]

_LAZY = {"SamSegmenter": "annotators.segmentation.sam", "StreamingTracker": "annotators.segmentation.video"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
