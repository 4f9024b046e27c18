"""Box and mask geometry for region proposals (PixelVLA §4.2).

Boxes are float32 xyxy in pixel-edge coordinates with EXCLUSIVE max edges: a
mask whose last column is c has x1 = c + 1, so width = x1 - x0 counts pixels.
"""

from __future__ import annotations

import numpy as np


def mask_box(mask: np.ndarray) -> np.ndarray | None:
    """Tightest xyxy box of a boolean mask (exclusive max edges); None when empty."""
    mask = np.asarray(mask, dtype=bool)
    cols = np.flatnonzero(mask.any(axis=0))
    if cols.size == 0:
        return None
    rows = np.flatnonzero(mask.any(axis=1))
    return np.array([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1], dtype=np.float32)


def scale_box(box: np.ndarray, scale: float, width: int, height: int) -> np.ndarray:
    """Box with side lengths × `scale` about its centre, clipped to the image: the paper's margin."""
    x0, y0, x1, y1 = np.asarray(box, dtype=np.float64)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    half_w, half_h = (x1 - x0) * scale / 2, (y1 - y0) * scale / 2
    scaled = np.array([cx - half_w, cy - half_h, cx + half_w, cy + half_h])
    return np.clip(scaled, 0, [width, height, width, height]).astype(np.float32)


def box_area(box: np.ndarray) -> float:
    """Area of an xyxy box; 0 for a degenerate (inverted or flat) box."""
    x0, y0, x1, y1 = np.asarray(box, dtype=np.float64)
    return float(max(0.0, x1 - x0) * max(0.0, y1 - y0))


def box_contains(outer: np.ndarray, inner: np.ndarray, tolerance: float = 0.0) -> bool:
    """Whether `inner` lies within `outer` grown by `tolerance` pixels on every side."""
    ox0, oy0, ox1, oy1 = np.asarray(outer, dtype=np.float64)
    ix0, iy0, ix1, iy1 = np.asarray(inner, dtype=np.float64)
    t = float(tolerance)
    return bool(ix0 >= ox0 - t and iy0 >= oy0 - t and ix1 <= ox1 + t and iy1 <= oy1 + t)


def mask_centroid(mask: np.ndarray) -> np.ndarray | None:
    """Mean (x, y) pixel index of the mask (column, row; not +0.5); None when empty."""
    rows, cols = np.nonzero(np.asarray(mask, dtype=bool))
    if rows.size == 0:
        return None
    return np.array([cols.mean(), rows.mean()], dtype=np.float64)
