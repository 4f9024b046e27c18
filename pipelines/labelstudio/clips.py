"""Short MP4 clips of candidate segments, playable in a browser (H.264, yuv420p)."""

from __future__ import annotations

import os
import tempfile

import numpy as np

from pipelines.io import write_bytes_atomic
from pipelines.io.video import VideoEncoder

CLIP_CODEC = "libx264"  # what every browser plays inside Label Studio's <Video>


def frames_to_even(frames: np.ndarray) -> np.ndarray:
    """T×H×W×3 → a copy padded by edge pixels to even H and W (yuv420p needs even sizes)."""
    frames = np.asarray(frames, dtype=np.uint8)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be T×H×W×3, got shape {frames.shape}")
    pad_h, pad_w = frames.shape[1] % 2, frames.shape[2] % 2
    return np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")


def write_clip(frames: np.ndarray, fps: float, path: str) -> None:
    """Encode T×H×W×3 uint8 frames as an MP4 at `path` (any fsspec URL), atomically."""
    frames = frames_to_even(frames)
    if len(frames) == 0:
        raise ValueError(f"no frames to write to {path}")
    fd, tmp = tempfile.mkstemp(suffix=".mp4")
    os.close(fd)
    try:
        with VideoEncoder(tmp, fps=fps, height=frames.shape[1], width=frames.shape[2], codec=CLIP_CODEC) as encoder:
            encoder.write(frames)
        with open(tmp, "rb") as f:
            write_bytes_atomic(path, f.read())
    finally:
        os.remove(tmp)
