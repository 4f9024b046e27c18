"""The first gripper-close frame of an episode (PixelVLA §4.2, G_η).

The proposal stage runs SAM 2 on the frame where the gripper first closes, so the gripper is on
the object there. A gripper that closes on an object stops where the object stops it: on the
sample and on real grippers the normalised reading while holding is anywhere from about 0.3 to 1,
so a fixed "closed" level misses grasps of wide objects. A close is therefore a *rise*:

- the open level is the lowest reading so far (a gripper that starts closed has not closed);
- a close is the first run of at least `min_hold` frames at least `min_rise` above that level
  (a shorter run is a sensor blip; a run cut by the episode end needs as many frames);
- G is the first frame of that close past the midpoint between the open level and the level the
  close settles at (the run's 90th percentile): the first frame that has passed it, the ground truth's
  own definition of a transition.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

SETTLED_PERCENTILE = 90  # the level a close settles at, robust to a late overshoot


def first_close_frame(gripper: np.ndarray, min_rise: float = 0.15, min_hold: int = 2) -> int | None:
    """Index of the episode's first gripper-close frame (see the module docstring), or None.

    `gripper` is the canonical normalised channel (0 open, 1 closed); NaN counts as open.
    """
    if min_hold < 1:
        raise ValueError(f"min_hold must be >= 1, got {min_hold}")
    values = np.asarray(gripper, dtype=np.float64).reshape(-1)
    if values.size == 0:
        return None
    values = np.where(np.isfinite(values), values, -np.inf)  # NaN: open, and never the open level
    open_level = np.minimum.accumulate(np.where(np.isfinite(values), values, np.inf))
    closed = values >= open_level + min_rise
    labels, _ = ndimage.label(closed)
    lengths = np.bincount(labels)[1:]  # run k (label k + 1) has lengths[k] frames
    held = np.flatnonzero(lengths >= min_hold)
    if held.size == 0:
        return None
    run = np.flatnonzero(labels == held[0] + 1)
    start, stop = int(run[0]), int(run[-1]) + 1
    level = float(open_level[start])
    midpoint = (level + float(np.percentile(values[start:stop], SETTLED_PERCENTILE))) / 2
    if values[start] > midpoint:  # the rise passed the midpoint before the run began: walk back to it
        while start > 0 and values[start - 1] > midpoint:
            start -= 1
        return start
    return start + int(np.argmax(values[start:stop] > midpoint))
