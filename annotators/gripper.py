"""Gripper closes in the normalised channel (0 open, 1 closed), shared by pixel and gaze.

Pixel needs the first frame where the gripper closes (PixelVLA §4.2, G_η). Gaze needs the frames where
it holds the object (ReconVLA's phase-aware target). A gripper that closes on an object stops where the
object stops it: on the sample and on real grippers the normalised reading while holding is anywhere
from about 0.3 to 1, so a fixed "closed" level misses grasps of wide objects. A close is therefore a *rise*:

- the open level is the lowest reading so far (a gripper that starts closed has not closed);
- a close is a run of at least `min_hold` frames at least `min_rise` above that level
  (a shorter run is a sensor blip; a run cut by the episode end needs as many frames);
- the close settles at the run's 90th percentile (robust to a late overshoot); its span is the frames
  past the midpoint between the open level and that settled level, around the run: the ground truth's
  own definition of a transition, applied to both the close and the release.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage

SETTLED_PERCENTILE = 90  # the level a close settles at, robust to a late overshoot


@dataclass(frozen=True)
class Close:
    """One close of the gripper: frames [start, stop) past the midpoint, and the levels that place it."""

    start: int
    stop: int
    open_level: float  # the lowest reading before the close
    settled: float  # the level the close settles at: 1 = fully closed, less when an object stops the fingers


def _as_values(gripper: np.ndarray) -> np.ndarray:
    values = np.asarray(gripper, dtype=np.float64).reshape(-1)
    return np.where(np.isfinite(values), values, -np.inf)  # NaN: open, and never the open level


def _span(values: np.ndarray, start: int, stop: int, midpoint: float) -> tuple[int, int]:
    """The contiguous frames above `midpoint` around the first frame of [start, stop) above it."""
    first = start + int(np.argmax(values[start:stop] > midpoint))
    if values[start] > midpoint:  # the rise passed the midpoint before the run began: walk back to it
        while first > 0 and values[first - 1] > midpoint:
            first -= 1
    last = first
    while last + 1 < len(values) and values[last + 1] > midpoint:
        last += 1
    return first, last + 1


def gripper_to_closes(gripper: np.ndarray, min_rise: float = 0.15, min_hold: int = 2) -> list[Close]:
    """Every close of an episode's gripper, in order (see the module docstring).

    `gripper` is the canonical normalised channel (0 open, 1 closed); NaN counts as open.
    """
    if min_hold < 1:
        raise ValueError(f"min_hold must be >= 1, got {min_hold}")
    if min_rise <= 0:
        raise ValueError(f"min_rise must be > 0, got {min_rise}")
    values = _as_values(gripper)
    if values.size == 0:
        return []
    open_level = np.minimum.accumulate(np.where(np.isfinite(values), values, np.inf))
    labels, _ = ndimage.label(values >= open_level + min_rise)
    closes: list[Close] = []
    for run in ndimage.find_objects(labels):
        start, stop = run[0].start, run[0].stop
        if stop - start < min_hold:
            continue
        level, settled = float(open_level[start]), float(np.percentile(values[start:stop], SETTLED_PERCENTILE))
        first, end = _span(values, start, stop, (level + settled) / 2)
        if closes and first < closes[-1].stop:  # a dip that stays above the midpoint: still one close
            closes[-1] = replace(closes[-1], stop=max(closes[-1].stop, end))
            continue
        closes.append(Close(first, end, level, settled))
    return closes


def first_close_frame(gripper: np.ndarray, min_rise: float = 0.15, min_hold: int = 2) -> int | None:
    """Index of the episode's first gripper-close frame (the first close's start), or None."""
    closes = gripper_to_closes(gripper, min_rise, min_hold)
    return closes[0].start if closes else None


def gripper_to_holding(
    gripper: np.ndarray, min_rise: float = 0.15, min_hold: int = 2, empty_close: float | None = 0.9
) -> np.ndarray:
    """T bool: the frames of closes that hold something.

    A close that settles at `empty_close` or above closed on nothing (a missed grasp: the fingers met);
    None counts every close as holding, for a commanded gripper whose reading says nothing about an object.
    """
    holding = np.zeros(np.asarray(gripper).size, bool)
    for close in gripper_to_closes(gripper, min_rise, min_hold):
        if empty_close is None or close.settled < empty_close:
            holding[close.start : close.stop] = True
    return holding
