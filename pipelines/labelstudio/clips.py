"""Short MP4 clips of candidate segments, playable in a browser (H.264, yuv420p)."""

from __future__ import annotations

import os
import tempfile

import numpy as np

from pipelines.io import write_bytes_atomic
from pipelines.io.video import VideoEncoder

CLIP_CODEC = "libx264"  # what every browser plays inside Label Studio's <Video>
CONTEXT_COLOR = (255, 140, 0)  # orange: the outline of the context frames around a segment


def frames_to_even(frames: np.ndarray) -> np.ndarray:
    """T×H×W×3 → a copy padded by edge pixels to even H and W (yuv420p needs even sizes)."""
    frames = np.asarray(frames, dtype=np.uint8)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be T×H×W×3, got shape {frames.shape}")
    pad_h, pad_w = frames.shape[1] % 2, frames.shape[2] % 2
    return np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")


def outline_context(frames: np.ndarray, segment: tuple[int, int]) -> np.ndarray:
    """A copy of T×H×W×3 `frames` whose frames outside `segment` [first, end) carry an orange outline,
    so a verifier sees where the segment starts and stops inside a clip with context around it."""
    marked = np.array(frames, dtype=np.uint8, copy=True)
    width = 2 * max(1, min(marked.shape[1:3]) // 32)  # even: yuv420p keeps a colour per 2×2 block
    context = np.ones(len(marked), dtype=bool)
    context[segment[0]:segment[1]] = False
    for edge in (np.s_[:width, :], np.s_[-width:, :], np.s_[:, :width], np.s_[:, -width:]):
        marked[(context, *edge)] = CONTEXT_COLOR
    return marked


def write_clip(frames: np.ndarray, fps: float, path: str, segment: tuple[int, int] | None = None) -> None:
    """Encode T×H×W×3 uint8 frames as an MP4 at `path` (any fsspec URL), atomically; with `segment`
    [first, end), the frames outside it are outlined as context."""
    frames = frames_to_even(frames)
    if len(frames) == 0:
        raise ValueError(f"no frames to write to {path}")
    if segment is not None:
        frames = outline_context(frames, segment)
    fd, tmp = tempfile.mkstemp(suffix=".mp4")
    os.close(fd)
    try:
        with VideoEncoder(tmp, fps=fps, height=frames.shape[1], width=frames.shape[2], codec=CLIP_CODEC) as encoder:
            encoder.write(frames)
        with open(tmp, "rb") as f:
            write_bytes_atomic(path, f.read())
    finally:
        os.remove(tmp)
