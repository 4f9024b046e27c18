"""Visual prompts derived from an object mask (PixelVLA §4.2): points, lines, box.

Points are random mask pixels; lines are random segments whose every rasterised
pixel (cv2.line, 8-connected) lies in the mask; the box is the external bounding
box of the mask's contours. Coordinates are pixel indices as floats (x = column,
y = row), so mask[int(y), int(x)] is True; the box has exclusive max edges like
`geometry.mask_box`. Same mask and seed give byte-identical arrays.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import cv2
import numpy as np

LINE_ATTEMPTS = 50  # random endpoint pairs tried per line before shrinking one
SHRINK_STEPS = 6  # halvings of the last pair towards its first endpoint before (p, p)


@dataclass(frozen=True)
class VisualPrompts:
    """points N×2 (x, y), lines K×4 (x0, y0, x1, y1), box (4,) xyxy or None; float32."""

    points: np.ndarray
    lines: np.ndarray
    box: np.ndarray | None


def seed_from(*parts: str | int) -> int:
    """A seed stable across processes and runs: sha256 of the parts joined by "\\x1f", first 8 bytes, 63 bits.

    (Python's hash() is salted per process, so it cannot be used.)
    """
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") & (2**63 - 1)


def _segment_inside(mask: np.ndarray, p: np.ndarray, q: np.ndarray) -> bool:
    """Whether every pixel cv2.line draws from p to q is in the mask (drawn on a crop around the segment)."""
    x_lo, y_lo = np.minimum(p, q)
    x_hi, y_hi = np.maximum(p, q)
    canvas = np.zeros((y_hi - y_lo + 1, x_hi - x_lo + 1), dtype=np.uint8)
    start = (int(p[0] - x_lo), int(p[1] - y_lo))
    end = (int(q[0] - x_lo), int(q[1] - y_lo))
    cv2.line(canvas, start, end, 1, thickness=1, lineType=cv2.LINE_8)
    return bool(mask[y_lo : y_hi + 1, x_lo : x_hi + 1][canvas > 0].all())


def _random_line(mask: np.ndarray, pixels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One segment inside the mask: random pairs first, then the last pair shrunk towards p, then (p, p)."""
    p = q = pixels[0]
    for _ in range(LINE_ATTEMPTS):
        p, q = pixels[rng.integers(len(pixels), size=2)]
        if (p != q).any() and _segment_inside(mask, p, q):
            return np.concatenate([p, q])
    for step in range(1, SHRINK_STEPS + 1):
        r = np.rint(p + (q - p) / 2**step).astype(np.int64)
        if (r != p).any() and _segment_inside(mask, p, r):
            return np.concatenate([p, r])
    return np.concatenate([p, p])


def _contour_box(mask: np.ndarray) -> np.ndarray | None:
    """Union of cv2.boundingRect over the external contours, xyxy with exclusive max edges."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return None
    rects = np.array([cv2.boundingRect(c) for c in contours], dtype=np.int64)  # x, y, w, h
    x0, y0 = rects[:, 0].min(), rects[:, 1].min()
    x1, y1 = (rects[:, 0] + rects[:, 2]).max(), (rects[:, 1] + rects[:, 3]).max()
    return np.array([x0, y0, x1, y1], dtype=np.float32)


def visual_prompts(mask: np.ndarray, num_points: int, num_lines: int, seed: int) -> VisualPrompts:
    """Points, lines and box prompts for a boolean H×W mask; empty arrays and box None for an empty mask.

    Points are drawn without replacement unless the mask has fewer pixels than `num_points`.
    """
    mask = np.ascontiguousarray(mask, dtype=bool)
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        return VisualPrompts(np.zeros((0, 2), np.float32), np.zeros((0, 4), np.float32), None)
    pixels = np.stack([cols, rows], axis=1).astype(np.int64)  # (x, y), row-major order
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(pixels), size=num_points, replace=len(pixels) < num_points)
    points = pixels[chosen].astype(np.float32).reshape(-1, 2)
    lines = np.array([_random_line(mask, pixels, rng) for _ in range(num_lines)], dtype=np.float32).reshape(-1, 4)
    return VisualPrompts(points, lines, _contour_box(mask))
