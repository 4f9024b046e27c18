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
    skip: Sequence[tuple[int, int]] = (),
) -> np.ndarray:
    """Frames worth showing in [start, end): keyframes and their neighbours first, then sparse uniform.

    Candidates are accepted in priority order (keyframes, window ends, keyframe ± offset,
    uniform grid) and dropped when closer than 1/vlm_fps s to one already taken, so frames
    cluster where the robot state changes and stay sparse elsewhere. Uniform frames strictly
    inside a `skip` range [s, e) (a stretch where the arm rests) are not taken: its ends are
    keyframes or their neighbours already, and frames of a resting arm all look the same.
    """
    end = num_frames if end is None else min(end, num_frames)
    if end <= start:
        return np.zeros(0, dtype=np.int64)
    min_gap = max(1, int(round(fps / vlm_fps)))
    offset = int(round(keyframe_offset_s * fps))
    inside = [int(k) for k in keyframes if start <= int(k) < end]
    stride = max(1, int(round(fps / uniform_fps)))
    resting = np.zeros(max(end, 0), dtype=bool)
    for s, e in skip:
        resting[max(s + 1, 0):max(e - 1, 0)] = True  # the range's own ends stay eligible
    priority = (
        inside
        + [start, end - 1]
        + [k + d for k in inside for d in (-offset, offset) if offset]
        + [i for i in range(start, end, stride) if not resting[i]]
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


def patch_aligned_tile_size(frame_size: tuple[int, int], scale: float, gutter: int, patch_px: int) -> tuple[int, int]:
    """(width, height) of a tile whose cell (the tile plus one gutter) is a whole number of
    `patch_px` patches, the nearest to frame_size × scale (at least one patch each way).

    A vision encoder that pays per patch (Qwen3-VL: 32×32 px per token, Qwen2.5-VL: 28×28)
    then never bills a patch row or column that straddles two frames or pads a frame's edge.
    """
    if patch_px < 1:
        raise ValueError(f"patch_px must be ≥ 1, got {patch_px}")
    cells = [max(1, round((side * scale + gutter) / patch_px)) for side in frame_size]
    return cells[0] * patch_px - gutter, cells[1] * patch_px - gutter


def sheet_layout(count: int, columns: int, rows: int) -> list[tuple[int, int]]:
    """(first index, tile count) of each sheet for `count` frames, at most columns × rows a sheet,
    spread evenly (13 frames at 12 a sheet are 7 + 6, not 12 + 1: a nearly empty sheet is
    still enlarged to the encoder's minimum image size and billed for it)."""
    if count <= 0:
        return []
    per_sheet = columns * rows
    sheets = math.ceil(count / per_sheet)
    sizes = [count // sheets + (1 if k < count % sheets else 0) for k in range(sheets)]
    firsts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(int)
    return [(int(f), int(n)) for f, n in zip(firsts, sizes)]


def frame_to_tile(frame: np.ndarray, size: tuple[int, int], label: str, *, keep_aspect: bool = False) -> np.ndarray:
    """Resize an H×W×3 uint8 RGB frame to (width, height) and stamp `label` in its top-left corner.

    `keep_aspect`: the frame is scaled to fit inside (width, height) and centred on black
    (letterboxed) instead of stretched to it.
    """
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"frames must be H×W×3 uint8, got shape {frame.shape} dtype {frame.dtype}")
    if keep_aspect:
        scale = min(size[0] / frame.shape[1], size[1] / frame.shape[0])
        inner = (max(1, min(size[0], round(frame.shape[1] * scale))), max(1, min(size[1], round(frame.shape[0] * scale))))
        tile = np.zeros((size[1], size[0], 3), np.uint8)
        x, y = (size[0] - inner[0]) // 2, (size[1] - inner[1]) // 2
        tile[y:y + inner[1], x:x + inner[0]] = cv2.resize(frame, inner, interpolation=cv2.INTER_AREA)
    else:
        tile = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)  # a new array: the input is untouched
    (w, h), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, _LABEL_SCALE, 1)
    cv2.rectangle(tile, (0, 0), (w + 2 * _LABEL_PAD, h + base + 2 * _LABEL_PAD), (0, 0, 0), -1)
    cv2.putText(tile, label, (_LABEL_PAD, h + _LABEL_PAD), cv2.FONT_HERSHEY_SIMPLEX, _LABEL_SCALE,
                (255, 255, 255), 1, cv2.LINE_AA)
    return tile


def tiles_to_sheet(tiles: Sequence[np.ndarray], columns: int, gutter: int = 0, *, trailing_gutter: bool = False) -> np.ndarray:
    """Pack equally sized tiles row by row into one image, `gutter` px of white between them.

    `trailing_gutter`: every tile owns the gutter to its right and below (the last row and
    column too), so the sheet is a whole number of (tile + gutter) cells.
    """
    if not tiles:
        raise ValueError("a contact sheet needs at least one tile")
    columns = min(columns, len(tiles))
    rows = math.ceil(len(tiles) / columns)
    h, w, c = tiles[0].shape
    extra = gutter if trailing_gutter else 0
    sheet = np.full((rows * h + (rows - 1) * gutter + extra, columns * w + (columns - 1) * gutter + extra, c), 255,
                    np.uint8)
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
