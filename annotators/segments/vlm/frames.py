"""Frame choice, windows and timestamped JPEG contact sheets (pure numpy/opencv, no I/O)."""

from __future__ import annotations

import base64
import math
from collections.abc import Sequence

import cv2
import numpy as np

from datasets_cards.codecs import encode_jpeg

_LABEL_SCALE = 0.4  # cv2 font scale of the timestamp drawn on each tile
_LABEL_PAD = 2  # pixels around the label box


def keyframes_to_frame_indices(
    num_frames: int,
    fps: float,
    keyframes: Sequence[int],
    *,
    vlm_fps: float,
    uniform_fps: float,
    keyframe_offset_s: float,
    start: int = 0,
    end: int | None = None,
) -> np.ndarray:
    """Frames worth showing in [start, end): keyframes and their neighbours first, then sparse uniform.

    Candidates are accepted in priority order (keyframes, window ends, keyframe ± offset,
    uniform grid) and dropped when closer than 1/vlm_fps s to one already taken, so frames
    cluster where the robot state changes and stay sparse elsewhere.
    """
    end = num_frames if end is None else min(end, num_frames)
    if end <= start:
        return np.zeros(0, dtype=np.int64)
    min_gap = max(1, int(round(fps / vlm_fps)))
    offset = int(round(keyframe_offset_s * fps))
    inside = [int(k) for k in keyframes if start <= int(k) < end]
    stride = max(1, int(round(fps / uniform_fps)))
    priority = (
        inside
        + [start, end - 1]
        + [k + d for k in inside for d in (-offset, offset) if offset]
        + list(range(start, end, stride))
    )
    taken: list[int] = []
    for idx in priority:
        if start <= idx < end and all(abs(idx - t) >= min_gap for t in taken):
            taken.append(idx)
    return np.array(sorted(taken), dtype=np.int64)


def episode_to_windows(num_frames: int, fps: float, window_s: float, overlap_s: float) -> list[tuple[int, int]]:
    """Frame ranges [start, end) of overlapping windows that cover the episode."""
    if num_frames <= 0:
        return []
    size = max(1, int(round(window_s * fps)))
    if num_frames <= size:
        return [(0, num_frames)]
    step = max(1, size - int(round(overlap_s * fps)))
    windows = []
    start = 0
    while True:
        end = min(start + size, num_frames)
        windows.append((start, end))
        if end == num_frames:
            return windows
        start += step


def frame_to_tile(frame: np.ndarray, size: tuple[int, int], label: str) -> np.ndarray:
    """Resize an H×W×3 uint8 RGB frame to (width, height) and stamp `label` in its top-left corner."""
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"frames must be H×W×3 uint8, got shape {frame.shape} dtype {frame.dtype}")
    tile = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)  # a new array: the input is untouched
    (w, h), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, _LABEL_SCALE, 1)
    cv2.rectangle(tile, (0, 0), (w + 2 * _LABEL_PAD, h + base + 2 * _LABEL_PAD), (0, 0, 0), -1)
    cv2.putText(tile, label, (_LABEL_PAD, h + _LABEL_PAD), cv2.FONT_HERSHEY_SIMPLEX, _LABEL_SCALE,
                (255, 255, 255), 1, cv2.LINE_AA)
    return tile


def tiles_to_sheet(tiles: Sequence[np.ndarray], columns: int, gutter: int = 0) -> np.ndarray:
    """Pack equally sized tiles row by row into one image, `gutter` px of white between them."""
    if not tiles:
        raise ValueError("a contact sheet needs at least one tile")
    columns = min(columns, len(tiles))
    rows = math.ceil(len(tiles) / columns)
    h, w, c = tiles[0].shape
    sheet = np.full((rows * h + (rows - 1) * gutter, columns * w + (columns - 1) * gutter, c), 255, np.uint8)
    for i, tile in enumerate(tiles):
        r, col = divmod(i, columns)
        y, x = r * (h + gutter), col * (w + gutter)
        sheet[y:y + h, x:x + w] = tile
    if len(tiles) % columns:  # the unused end of the last row stays black, not a white slab
        y, x = (rows - 1) * (h + gutter), (len(tiles) % columns) * (w + gutter)
        sheet[y:, x:] = 0
    return sheet


def image_to_data_url(image: np.ndarray, quality: int) -> str:
    """RGB uint8 image → 'data:image/jpeg;base64,…' for an OpenAI image_url part."""
    return "data:image/jpeg;base64," + base64.b64encode(encode_jpeg(image, quality)).decode("ascii")
