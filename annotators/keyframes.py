"""Keyframes from robot state (LA4VLA Appendix 7.1): static intervals and gripper transitions.

Static keyframes
    drop the gripper (the Episode keeps it apart already) → adjacent-frame arm-state
    differences (angles wrapped to (-π, π]) → Savitzky–Golay smoothing → symmetric
    min-max normalisation per dim (divide by the largest |value|, floored so noise
    is not stretched) → weighted mean of absolute values = motion magnitude →
    adaptive threshold (a quantile of the episode's own magnitude times a factor,
    floored at a multiple of its resting level so an episode that mostly rests is
    not cut up by sensor noise) → low-motion frames whose centred window is mostly
    low-motion too → consecutive candidates merged, also across gaps of a frame or
    two → the midpoint of each merged interval is the keyframe.

Gripper transitions
    gripper (min-max normalised per episode as in the paper when `gripper_minmax`; the
    card already maps it to 0 = open, 1 = closed) → for every frame the mean of `w` frames before and
    `w` frames after → the means straddle the threshold: rising = close, falling =
    open (the canonical Episode is 0 = open, 1 = closed) → a run of flagged frames
    is one event at its midpoint → same-kind events closer than the minimum
    separation are merged; an opposite pair that close is a blip and both go.

Pure numpy/scipy: arrays in, dataclasses out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import uniform_filter1d
from scipy.signal import savgol_filter

from datasets_cards.params.la import KeyframeParams

STATIC = "static"
GRIPPER_OPEN = "gripper_open"
GRIPPER_CLOSE = "gripper_close"


@dataclass(frozen=True)
class Keyframe:
    """One event: `frame` is the keyframe, `interval` [start, end) the frames that produced it."""

    frame: int
    kind: str  # static | gripper_open | gripper_close
    time_s: float
    interval: tuple[int, int]


@dataclass(frozen=True)
class MotionTrace:
    """The static detector's intermediate signals (for plots and diagnostics)."""

    motion: np.ndarray  # T, motion magnitude in [0, 1]
    threshold: float
    static: np.ndarray  # T bool, frames that passed both the threshold and the window condition


def frames_at(frames: int, fps: float, reference_fps: float, *, odd: bool = False, minimum: int = 1) -> int:
    """A frame count given at `reference_fps`, rescaled to `fps` (rounded; odd when asked)."""
    n = max(minimum, int(round(frames * fps / reference_fps)))
    if odd and n % 2 == 0:
        n += 1
    return n


def _wrap_angles(values: np.ndarray) -> np.ndarray:
    return (values + np.pi) % (2 * np.pi) - np.pi


def arm_state_to_motion(arm_state: np.ndarray, fps: float, params: KeyframeParams) -> np.ndarray:
    """T×D arm state (position dims first, then angles in rad) → T motion magnitude in [0, 1]."""
    state = np.asarray(arm_state, dtype=np.float64)
    if state.ndim != 2:
        raise ValueError(f"arm_state must be T×D, got shape {state.shape}")
    t, d = state.shape
    if t < 2 or d == 0:
        return np.zeros(t)
    n_pos = min(params.position_dims, d)
    diffs = np.diff(state, axis=0) * fps  # per second, so the floors are physical speeds
    diffs[:, n_pos:] = _wrap_angles(diffs[:, n_pos:] / fps) * fps
    window = min(frames_at(params.savgol_window, fps, params.reference_fps, odd=True, minimum=3), len(diffs))
    if window % 2 == 0:
        window -= 1
    if window > params.savgol_order:
        diffs = savgol_filter(diffs, window, params.savgol_order, axis=0, mode=params.savgol_mode)
    floors = np.array([params.position_floor] * n_pos + [params.rotation_floor] * (d - n_pos))
    scale = np.maximum(np.abs(diffs).max(axis=0), floors)
    weights = np.array([params.position_weight] * n_pos + [params.rotation_weight] * (d - n_pos))
    if weights.sum() <= 0:
        raise ValueError("position_weight and rotation_weight must not both be zero")
    magnitude = (np.abs(diffs) / scale) @ weights / weights.sum()
    # difference i lies between frames i and i+1; frame 0 repeats the first one
    return np.concatenate([magnitude[:1], magnitude])


def motion_to_trace(motion: np.ndarray, fps: float, params: KeyframeParams) -> MotionTrace:
    """Adaptive threshold and the windowed proportion condition on a motion magnitude."""
    motion = np.asarray(motion, dtype=np.float64)
    if motion.size == 0:
        return MotionTrace(motion, 0.0, np.zeros(0, dtype=bool))
    adaptive = params.threshold_scale * np.quantile(motion, params.threshold_quantile)
    # In an episode that mostly rests the quantile above lies in sensor noise: never go below
    # a multiple of the resting level (a low quantile: every recording rests somewhere).
    rest = params.rest_scale * np.quantile(motion, params.rest_quantile)
    threshold = float(max(adaptive, rest))
    low = motion <= threshold
    window = frames_at(params.window, fps, params.reference_fps, odd=True, minimum=1)
    proportion = uniform_filter1d(low.astype(np.float64), size=window, mode="nearest")
    return MotionTrace(motion, threshold, low & (proportion >= params.min_static_proportion - 1e-9))


def mask_to_intervals(mask: np.ndarray) -> list[tuple[int, int]]:
    """Runs of True as [start, end) intervals."""
    padded = np.concatenate([[False], np.asarray(mask, dtype=bool), [False]])
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    return [(int(s), int(e)) for s, e in zip(edges[::2], edges[1::2])]


def merge_close_intervals(intervals: Sequence[tuple[int, int]], max_gap: int) -> list[tuple[int, int]]:
    """[start, end) intervals (sorted) whose gap is at most `max_gap` frames become one."""
    merged: list[tuple[int, int]] = []
    for start, end in intervals:
        if merged and start - merged[-1][1] <= max_gap:
            merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def trace_to_static_intervals(trace: MotionTrace, fps: float, params: KeyframeParams) -> list[tuple[int, int]]:
    """Runs of static frames, with gaps of a frame or two (noise spikes) merged, shortest dropped."""
    max_gap = frames_at(params.merge_gap, fps, params.reference_fps, minimum=0)
    min_frames = frames_at(params.min_static_frames, fps, params.reference_fps, minimum=2)
    intervals = merge_close_intervals(mask_to_intervals(trace.static), max_gap)
    return [(start, end) for start, end in intervals if end - start >= min_frames]


def arm_state_to_static_keyframes(arm_state: np.ndarray, fps: float, params: KeyframeParams) -> list[Keyframe]:
    """Static keyframes: midpoints of merged low-motion intervals."""
    trace = motion_to_trace(arm_state_to_motion(arm_state, fps, params), fps, params)
    keyframes = []
    for start, end in trace_to_static_intervals(trace, fps, params):
        mid = (start + end - 1) // 2
        keyframes.append(Keyframe(mid, STATIC, mid / fps, (start, end)))
    return keyframes


def gripper_to_transitions(gripper: np.ndarray, fps: float, params: KeyframeParams) -> list[Keyframe]:
    """Gripper open/close keyframes from a gripper channel (0 = open, 1 = closed)."""
    g = np.asarray(gripper, dtype=np.float64).reshape(-1)
    w = frames_at(params.gripper_window, fps, params.reference_fps)
    if g.size < 2 or np.ptp(g) < params.gripper_min_range:
        return []
    if params.gripper_minmax:
        g = (g - g.min()) / np.ptp(g)
    # before[t] = mean(g[t-w:t]), after[t] = mean(g[t:t+w]), for t in [w, T-w]
    csum = np.concatenate([[0.0], np.cumsum(g)])
    frames = np.arange(w, g.size - w + 1) if g.size >= 2 * w else np.arange(0)
    before = (csum[frames] - csum[frames - w]) / w
    after = (csum[frames + w] - csum[frames]) / w
    theta = params.gripper_threshold
    closing = frames[(before < theta) & (after >= theta)]
    opening = frames[(before >= theta) & (after < theta)]
    events = []
    for kind, flagged in ((GRIPPER_CLOSE, closing), (GRIPPER_OPEN, opening)):
        mask = np.zeros(g.size, dtype=bool)
        mask[flagged] = True
        events += [(s, e, kind) for s, e in mask_to_intervals(mask)]
    events.sort()
    return [Keyframe((s + e - 1) // 2, k, ((s + e - 1) // 2) / fps, (s, e)) for s, e, k in _merge_events(events, fps, params)]


def _merge_events(events: list[tuple[int, int, str]], fps: float, params: KeyframeParams) -> list[tuple[int, int, str]]:
    """Same-kind events closer than the minimum separation merge; an opposite pair that close is noise."""
    min_sep = frames_at(params.gripper_min_separation, fps, params.reference_fps)
    merged: list[tuple[int, int, str]] = []
    for start, end, kind in events:
        if merged:
            p_start, p_end, p_kind = merged[-1]
            mid, p_mid = (start + end - 1) // 2, (p_start + p_end - 1) // 2
            if mid - p_mid < min_sep:
                if kind == p_kind:
                    merged[-1] = (p_start, max(end, p_end), kind)
                else:
                    merged.pop()  # closed and reopened (or vice versa) within noise: no transition
                continue
        merged.append((start, end, kind))
    return merged


def episode_to_keyframes(
    arm_state: np.ndarray, gripper: np.ndarray | None, fps: float, params: KeyframeParams | None = None
) -> list[Keyframe]:
    """All keyframes of one episode, sorted by frame (static first on ties)."""
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    params = params or KeyframeParams()
    keyframes = arm_state_to_static_keyframes(arm_state, fps, params)
    if gripper is not None:
        keyframes += gripper_to_transitions(gripper, fps, params)
    return sorted(keyframes, key=lambda k: (k.frame, k.kind != STATIC))


def keyframes_to_hints(keyframes: Sequence[Keyframe], fps: float) -> list[str]:
    """Timestamped prompt hints as in the paper: "1.20s: static", "1.80s: gripper_close"."""
    return [f"{k.frame / fps:.2f}s: {k.kind}" for k in keyframes]
