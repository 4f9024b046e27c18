"""Keyframes on synthetic trajectories with known static phases and gripper steps."""

from __future__ import annotations

import numpy as np
import pytest

from annotators.keyframes import (
    GRIPPER_CLOSE,
    GRIPPER_OPEN,
    STATIC,
    Keyframe,
    MotionTrace,
    arm_state_to_motion,
    episode_to_keyframes,
    frames_at,
    gripper_to_transitions,
    keyframes_to_hints,
    mask_to_intervals,
    merge_close_intervals,
    motion_to_trace,
    trace_to_static_intervals,
)
from datasets_cards.params.la import KeyframeParams

FPS = 15.0
PARAMS = KeyframeParams()


def trajectory(phases: list[tuple[int, tuple[float, float, float]]], noise: float = 0.0, seed: int = 0) -> np.ndarray:
    """T×6 arm state: each phase is (frames, xyz velocity in m/s); orientation fixed near roll = π."""
    rng = np.random.default_rng(seed)
    velocity = np.concatenate([np.tile(v, (n, 1)) for n, v in phases])
    xyz = np.cumsum(velocity / FPS, axis=0) + [0.5, 0.0, 0.3]
    rpy = np.tile([np.pi - 1e-3, 0.0, 0.0], (len(xyz), 1))
    state = np.concatenate([xyz, rpy], axis=1)
    return state + rng.normal(0, noise, state.shape)


def steps(levels: list[tuple[int, float]]) -> np.ndarray:
    return np.concatenate([np.full(n, v) for n, v in levels])


@pytest.mark.parametrize(
    "mask, expected",
    [
        ([], []),
        ([False, False], []),
        ([True], [(0, 1)]),
        ([True, True, False, True], [(0, 2), (3, 4)]),
    ],
)
def test_mask_to_intervals_lists_true_runs(mask, expected):
    assert mask_to_intervals(np.array(mask, dtype=bool)) == expected


@pytest.mark.parametrize(
    "intervals, gap, expected",
    [
        ([], 3, []),
        ([(0, 4)], 3, [(0, 4)]),
        ([(0, 4), (6, 9)], 3, [(0, 9)]),  # 2 frames apart: one pause broken by a noise spike
        ([(0, 4), (8, 9)], 3, [(0, 4), (8, 9)]),  # 4 frames apart: two pauses
        ([(0, 4), (6, 9)], 0, [(0, 4), (6, 9)]),
    ],
)
def test_merge_close_intervals_joins_runs_split_by_a_few_frames(intervals, gap, expected):
    assert merge_close_intervals(intervals, gap) == expected


@pytest.mark.parametrize("frames, fps, odd, expected", [(9, 15, True, 9), (9, 30, True, 19), (9, 5, True, 3), (3, 5, False, 1)])
def test_frames_at_rescales_windows_to_the_source_rate(frames, fps, odd, expected):
    assert frames_at(frames, fps, 15.0, odd=odd) == expected


@pytest.mark.parametrize("length", [0, 1, 2, 4])
def test_short_or_empty_episodes_give_no_crash_and_few_keyframes(length):
    state = np.zeros((length, 6))
    motion = arm_state_to_motion(state, FPS, PARAMS)
    assert motion.shape == (length,)
    keyframes = episode_to_keyframes(state, np.zeros(length), FPS, PARAMS)
    assert all(k.kind == STATIC for k in keyframes)


def test_motion_is_normalised_and_ignores_angle_wrap():
    state = trajectory([(20, (0.1, 0, 0))])
    state[::2, 3] = -np.pi + 1e-3  # roll flips sign across ±π every frame: no real rotation
    motion = arm_state_to_motion(state, FPS, PARAMS)
    assert motion.min() >= 0 and motion.max() <= 1
    assert np.ptp(motion) < 0.05


@pytest.mark.parametrize(
    "phases, expected_midpoints",
    [
        # move, pause 15 frames at frames [30, 45), move
        ([(30, (0.1, 0, 0)), (15, (0, 0, 0)), (30, (0, 0.1, 0))], [37]),
        # two pauses
        ([(20, (0, 0, -0.1)), (12, (0, 0, 0)), (25, (0.1, 0, 0)), (12, (0, 0, 0)), (20, (0, 0, 0.1))], [25, 62]),
    ],
)
def test_static_keyframes_sit_in_the_middle_of_pauses(phases, expected_midpoints):
    state = trajectory(phases, noise=2e-4)
    found = [k.frame for k in episode_to_keyframes(state, None, FPS, PARAMS) if k.kind == STATIC]
    interior = [f for f in found if 5 < f < len(state) - 5]
    assert len(interior) == len(expected_midpoints)
    assert np.all(np.abs(np.array(interior) - expected_midpoints) <= 2)


@pytest.mark.parametrize(
    "levels, expected",
    [
        ([(20, 0.0)], []),
        ([(20, 0.0), (20, 1.0)], [(20, GRIPPER_CLOSE)]),
        ([(20, 0.0), (20, 0.6), (20, 0.0)], [(20, GRIPPER_CLOSE), (40, GRIPPER_OPEN)]),  # closes on an object at 0.6
        # a missed grasp closes fully; the real one after it stops at 0.45 and must still count
        ([(20, 0.0), (8, 1.0), (20, 0.0), (20, 0.45), (20, 0.0)],
         [(20, GRIPPER_CLOSE), (28, GRIPPER_OPEN), (48, GRIPPER_CLOSE), (68, GRIPPER_OPEN)]),
        ([(20, 1.0), (20, 0.0)], [(20, GRIPPER_OPEN)]),
        ([(20, 0.0), (2, 1.0), (20, 0.0)], []),  # a 2-frame blip is noise
        ([(20, 0.0), (20, 0.1)], []),  # below the minimum range: no transition
    ],
)
def test_gripper_transitions_are_labelled_by_direction(levels, expected):
    found = gripper_to_transitions(steps(levels), FPS, PARAMS)
    assert [k.kind for k in found] == [kind for _, kind in expected]
    assert all(abs(k.frame - frame) <= 1 for k, (frame, _) in zip(found, expected))


def test_gripper_noise_around_a_step_gives_one_event():
    rng = np.random.default_rng(1)
    g = np.clip(steps([(30, 0.0), (30, 1.0)]) + rng.normal(0, 0.05, 60), 0, 1)
    g[29], g[30], g[31] = 0.6, 0.4, 0.7  # chatter at the edge
    found = gripper_to_transitions(g, FPS, PARAMS)
    assert [k.kind for k in found] == [GRIPPER_CLOSE]
    assert abs(found[0].frame - 30) <= 2


@pytest.mark.parametrize(
    "keyframes, expected",
    [
        ([], []),
        ([Keyframe(18, STATIC, 1.2, (15, 22))], ["1.20s: static"]),
        ([Keyframe(27, GRIPPER_CLOSE, 1.8, (26, 29)), Keyframe(51, GRIPPER_OPEN, 3.4, (50, 53))],
         ["1.80s: gripper_close", "3.40s: gripper_open"]),
    ],
)
def test_hints_use_the_papers_timestamp_format(keyframes, expected):
    assert keyframes_to_hints(keyframes, FPS) == expected


def test_keyframes_are_sorted_and_timed_in_seconds():
    state = trajectory([(30, (0.1, 0, 0)), (15, (0, 0, 0)), (30, (0, 0, 0.1))], noise=2e-4)
    gripper = steps([(37, 0.0), (38, 1.0)])
    keyframes = episode_to_keyframes(state, gripper, FPS, PARAMS)
    assert [k.frame for k in keyframes] == sorted(k.frame for k in keyframes)
    assert all(k.time_s == pytest.approx(k.frame / FPS) for k in keyframes)
    assert GRIPPER_CLOSE in {k.kind for k in keyframes}


def min_jerk_move(rest_before: int, move: int, rest_after: int, distance: float, noise: float, seed: int) -> np.ndarray:
    """T×6 state that rests, makes one smooth (min-jerk) move along x, and rests again."""
    rng = np.random.default_rng(seed)
    s = np.linspace(0, 1, move)
    x = np.concatenate([np.zeros(rest_before), distance * (10 * s**3 - 15 * s**4 + 6 * s**5), np.full(rest_after, distance)])
    state = np.zeros((len(x), 6))
    state[:, 0], state[:, 3] = 0.5 + x, np.pi - 1e-3
    state[:, :3] += rng.normal(0, noise, (len(x), 3))
    state[:, 3:] += rng.normal(0, noise * 2.5, (len(x), 3))
    return state


@pytest.mark.parametrize("rest_before, move, rest_after", [(40, 30, 40), (120, 30, 140), (200, 15, 85)])
def test_a_mostly_resting_episode_gives_one_keyframe_per_rest(rest_before, move, rest_after):
    # The adaptive quantile then lies in sensor noise; the rest floor keeps each rest whole.
    state = min_jerk_move(rest_before, move, rest_after, 0.25, noise=8e-4, seed=rest_before)
    static = [k for k in episode_to_keyframes(state, None, FPS, PARAMS) if k.kind == STATIC]
    assert len(static) == 2
    (s0, e0), (s1, e1) = static[0].interval, static[1].interval
    assert s0 <= 4 and abs(e0 - rest_before) <= 4
    assert e1 >= len(state) - 4 and abs(s1 - (rest_before + move)) <= 4


def test_without_the_rest_floor_a_resting_episode_falls_apart():
    state = min_jerk_move(200, 15, 85, 0.25, noise=8e-4, seed=3)
    adaptive_only = PARAMS.model_copy(update={"rest_scale": 0.0})
    static = [k for k in episode_to_keyframes(state, None, FPS, adaptive_only) if k.kind == STATIC]
    assert len(static) != 2  # the case the floor exists for


def test_a_short_pause_that_ends_the_recording_is_found():
    # 5 resting frames after a fast move: the filter's edge handling must not smear the move over them
    state = min_jerk_move(20, 30, 5, 0.2, noise=2e-4, seed=0)
    last = [k for k in episode_to_keyframes(state, None, FPS, PARAMS) if k.kind == STATIC][-1]
    assert abs(last.frame - (len(state) - 3)) <= 2


def test_a_static_interval_needs_two_samples_even_at_low_rates():
    # at 3 Hz the rescaled minimum (2 frames at 15 Hz) would be 0.4 of a frame: one slow sample
    # between two moves would be a pause. Rest shows as two samples at (nearly) the same pose.
    static = np.zeros(12, dtype=bool)
    static[3] = True  # a single slow sample
    static[7:9] = True  # two
    trace = MotionTrace(np.zeros(12), 0.0, static)
    assert trace_to_static_intervals(trace, 3.0, PARAMS.model_copy(update={"merge_gap": 0})) == [(7, 9)]
    assert trace_to_static_intervals(trace, 15.0, PARAMS.model_copy(update={"merge_gap": 0})) == [(7, 9)]
