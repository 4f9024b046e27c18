"""Gaze boxes over an episode: best box per frame, temporal consistency, crop geometry (pure numpy).

A track is T×4 pixel boxes (xyxy) with NaN rows where there is no box. The
functions return copies and never guess: a frame without a reliable box is
flagged `no_box`, short gaps between reliable boxes are interpolated and
flagged `interpolated`, and boxes that jump implausibly are flagged
`rejected_jump` (and then treated as gaps).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from annotators.detection.core import Detections

DETECTED = "detected"
INTERPOLATED = "interpolated"
REJECTED_JUMP = "rejected_jump"
NO_BOX = "no_box"
LOW_SCORE = "low_score"
FLAGS = (DETECTED, INTERPOLATED, REJECTED_JUMP, NO_BOX, LOW_SCORE)
ROUNDING_SLACK = 1e-6  # pixels a crop side may exceed a whole number by before it rounds up


@dataclass
class GazeTrack:
    """Per-frame gaze boxes of one camera of one episode."""

    boxes: np.ndarray  # T×4 float32 xyxy pixels, NaN where no reliable box
    scores: np.ndarray  # T float32 detector score, NaN when interpolated or missing
    flags: list[list[str]]  # per frame, a subset of FLAGS

    @property
    def has_box(self) -> np.ndarray:
        return np.isfinite(self.boxes).all(axis=1)


def detections_to_track(detections: Sequence[Detections]) -> tuple[np.ndarray, np.ndarray]:
    """The highest-scoring box of each frame: (T×4 boxes, T scores), NaN where a frame has none."""
    boxes = np.full((len(detections), 4), np.nan, np.float32)
    scores = np.full(len(detections), np.nan, np.float32)
    for t, dets in enumerate(detections):
        if len(dets):
            best = dets.best()
            boxes[t], scores[t] = best.xyxy[0], best.confidence[0]
    return boxes, scores


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise IoU of two N×4 xyxy arrays (broadcasting); 0 where either box is empty or NaN."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    iw = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    ih = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = iw * ih
    area = lambda x: (x[..., 2] - x[..., 0]) * (x[..., 3] - x[..., 1])
    union = area(a) + area(b) - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, inter / union, 0.0)
    return np.nan_to_num(iou, nan=0.0)


def box_centres(boxes: np.ndarray) -> np.ndarray:
    boxes = np.asarray(boxes, np.float64)
    return np.stack([(boxes[..., 0] + boxes[..., 2]) / 2, (boxes[..., 1] + boxes[..., 3]) / 2], axis=-1)


def track_to_jumps(
    boxes: np.ndarray, fps: float, diagonal: float, jump_iou: float, max_centre_speed: float, neighbours: int
) -> np.ndarray:
    """T bool: boxes that jump away from most of their neighbouring detections.

    A box "jumps" from another when they overlap less than `jump_iou` AND its centre
    moves faster than `max_centre_speed` image diagonals per second between them.
    It is rejected when it jumps from more than half of the up to `neighbours`
    detected frames on each side, so one or two consecutive outliers inside a
    steady track go, while a track that really moves keeps its boxes.
    """
    present = np.flatnonzero(np.isfinite(boxes).all(axis=1))
    rejected = np.zeros(len(boxes), bool)
    if len(present) < 2:
        return rejected
    centres = box_centres(boxes)
    for k, t in enumerate(present):
        near = np.concatenate([present[max(0, k - neighbours) : k], present[k + 1 : k + 1 + neighbours]])
        iou = box_iou(boxes[t][None], boxes[near])
        speed = np.linalg.norm(centres[near] - centres[t], axis=1) / diagonal / (np.abs(near - t) / fps)
        jumps = (iou < jump_iou) & (speed > max_centre_speed)
        rejected[t] = jumps.sum() * 2 > len(near)
    return rejected


def track_to_filled(boxes: np.ndarray, max_gap: int) -> tuple[np.ndarray, np.ndarray]:
    """Linear interpolation of gaps of at most `max_gap` frames between two boxes.

    Returns (filled T×4 copy, T bool mask of the interpolated frames). Gaps at the
    ends of the track, and longer gaps, stay NaN.
    """
    filled = np.array(boxes, dtype=np.float32, copy=True)
    interpolated = np.zeros(len(filled), bool)
    present = np.flatnonzero(np.isfinite(filled).all(axis=1))
    for left, right in itertools.pairwise(present):
        gap = right - left - 1
        if 0 < gap <= max_gap:
            w = (np.arange(1, gap + 1) / (gap + 1))[:, None]
            filled[left + 1 : right] = (1 - w) * filled[left] + w * filled[right]
            interpolated[left + 1 : right] = True
    return filled, interpolated


def consistent_track(
    boxes: np.ndarray,
    scores: np.ndarray,
    fps: float,
    image_size: tuple[int, int],
    *,
    jump_iou: float,
    max_centre_speed: float,
    neighbours: int,
    max_gap: int,
    low_score: float,
) -> GazeTrack:
    """Best-per-frame boxes → a temporally consistent GazeTrack with flags (see module docstring).

    `image_size` is (width, height); speeds are in image diagonals per second.
    """
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    scores = np.asarray(scores, np.float32).reshape(-1)
    if len(scores) != len(boxes):
        raise ValueError(f"consistent_track got {len(boxes)} boxes and {len(scores)} scores")
    diagonal = float(np.hypot(*image_size))
    detected = np.isfinite(boxes).all(axis=1)
    rejected = track_to_jumps(boxes, fps, diagonal, jump_iou, max_centre_speed, neighbours)
    kept = np.where((detected & ~rejected)[:, None], boxes, np.nan).astype(np.float32)
    filled, interpolated = track_to_filled(kept, max_gap)
    flags: list[list[str]] = []
    for t in range(len(boxes)):
        f = []
        if detected[t] and not rejected[t]:
            f.append(DETECTED)
            if scores[t] < low_score:
                f.append(LOW_SCORE)
        if rejected[t]:
            f.append(REJECTED_JUMP)
        if interpolated[t]:
            f.append(INTERPOLATED)
        if not np.isfinite(filled[t]).all():
            f.append(NO_BOX)
        flags.append(f)
    out_scores = np.where(detected & ~rejected, scores, np.nan).astype(np.float32)
    return GazeTrack(filled, out_scores, flags)


def track_coverage(track: GazeTrack) -> dict[str, float | int]:
    """Frame counts per flag and the share of frames that have a box."""
    counts = {flag: sum(flag in f for f in track.flags) for flag in FLAGS}
    n = len(track.flags)
    return {"frames": n, **counts, "coverage": float(track.has_box.mean()) if n else 0.0}


def runs(values: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) index ranges of equal consecutive values."""
    values = np.asarray(values)
    if len(values) == 0:
        return []
    cuts = np.flatnonzero(values[1:] != values[:-1]) + 1
    bounds = np.concatenate([[0], cuts, [len(values)]])
    return [(int(a), int(b)) for a, b in itertools.pairwise(bounds)]


def crop_side(extent: float, margin: float, min_size: int) -> int:
    """Whole pixels of a crop along one axis: the box's extent plus `margin` of it on each side, at least `min_size`."""
    # Rounded up, so the window never falls short of box + margins; the slack keeps 20 × 1.3
    # (26.000000000000004 in floating point) at 26 pixels rather than 27.
    return max(int(min_size), math.ceil(extent * (1 + 2 * margin) - ROUNDING_SLACK))


def box_to_crop_box(
    box: np.ndarray, width: int, height: int, *, margin: float, min_size: int, square: bool
) -> np.ndarray:
    """The crop window (int32 xyxy) around a box, of an exact size.

    Each side is `crop_side` (with `square`, both are the larger one), clipped to the image where the
    image is smaller (`crop_image` pads a clipped square window back to a square). The window is centred
    on the box (halves rounded up), moved to hold the box's whole pixels when its size allows, and slid
    inside the image.
    """
    x0, y0, x1, y1 = (float(v) for v in box)
    if not np.isfinite([x0, y0, x1, y1]).all():
        raise ValueError(f"crop of a box with non-finite coordinates: {box}")
    w, h = crop_side(x1 - x0, margin, min_size), crop_side(y1 - y0, margin, min_size)
    if square:
        w = h = max(w, h)
    out = []
    for lo, hi, size, limit in ((x0, x1, w, width), (y0, y1, h, height)):
        size = min(size, limit)
        start = math.floor((lo + hi - size) / 2 + 0.5)
        if size >= math.ceil(hi) - math.floor(lo):  # a fractional box would otherwise lose its edge pixel
            start = min(max(start, math.ceil(hi) - size), math.floor(lo))
        start = min(max(start, 0), limit - size)
        out.append((start, start + size))
    (ax, bx), (ay, by) = out
    return np.array([ax, ay, bx, by], np.int32)


def crop_image(image: np.ndarray, crop_box: np.ndarray, square: bool = False) -> np.ndarray:
    """A copy of the crop window; with `square`, zero-padded (centred) to a square when clipping left it oblong:
    its side is then the window's longer one (a square window larger than the image keeps the image's longer side)."""
    x0, y0, x1, y1 = (int(v) for v in crop_box)
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"empty crop window {crop_box.tolist()}")
    crop = np.array(image[y0:y1, x0:x1], copy=True)
    if not square or crop.shape[0] == crop.shape[1]:
        return crop
    side = max(crop.shape[:2])
    padded = np.zeros((side, side, *crop.shape[2:]), crop.dtype)
    oy, ox = (side - crop.shape[0]) // 2, (side - crop.shape[1]) // 2
    padded[oy : oy + crop.shape[0], ox : ox + crop.shape[1]] = crop
    return padded
