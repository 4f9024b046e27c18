"""The kinematic segmenter on synthetic trajectories with known phases."""

from __future__ import annotations

import numpy as np
import pytest

from annotators.segments.base import VOCABULARY, SegmentationInput
from annotators.segments.kinematic import KinematicSegmenter, absorb_short_runs, split_short_pauses
from annotators.segments.templates import displacement_to_directions, instruction_for
from datasets_cards.params.la import KinematicParams
from tests.annotators.segments.segment_factories import FPS, HELD, PICK_AND_PLACE, phase_trajectory

SEGMENTER = KinematicSegmenter()


def cover_ok(segments, t):
    return segments[0].start == 0 and segments[-1].end == t and all(a.end == b.start for a, b in zip(segments, segments[1:]))


@pytest.mark.parametrize("length", [0, 1, 2, 5])
def test_empty_and_tiny_episodes_are_covered(length):
    item = SegmentationInput("e", "task", FPS, np.zeros((length, 6), np.float32), np.zeros(length, np.float32))
    segments = SEGMENTER.segment(item)
    assert segments == [] if length == 0 else cover_ok(segments, length)


@pytest.mark.parametrize(
    "phases, expected",
    [
        (PICK_AND_PLACE, ["move", "grasp", "lift", "transport", "lower", "place", "move"]),
        ([("move", 25, (0.1, 0, 0), 0.0), ("wait", 30, (0, 0, 0), 0.0), ("move", 25, (0, -0.1, 0), 0.0)],
         ["move", "wait", "move"]),
        ([("move", 20, (0, 0, -0.1), 0.0), ("grasp", 8, (0, 0, 0), HELD), ("wrist_rotate", 25, (0, 0, 0), HELD),
          ("place", 8, (0, 0, 0), 0.0)], ["move", "grasp", "wrist_rotate", "place"]),
        ([("move", 20, (0, 0, 0.1), 0.0), ("rotate", 25, (0, 0, 0), 0.0)], ["move", "rotate"]),
    ],
)
def test_primitives_and_boundaries_follow_the_phases(phases, expected):
    item, truth = phase_trajectory(phases, yaw_rate={"wrist_rotate": 1.0, "rotate": -1.0})
    segments = SEGMENTER.segment(item)
    assert cover_ok(segments, item.num_frames)
    assert [s.subaction for s in segments] == expected
    assert all(abs(s.start - t[0]) <= 3 for s, t in zip(segments, truth))


@pytest.mark.parametrize(
    "direction, grip, contact_level, expected",
    [
        ((0.1, 0, 0), 1.0, None, "transport"),  # closed gripper = holding when no contact level is set
        ((0.1, 0, 0), HELD, 0.9, "transport"),  # fingers stopped by an object: holding
        ((0.1, 0, 0), 1.0, 0.9, "push"),  # fully closed on nothing, moving at table height
        ((0, 0.1, 0), 1.0, 0.9, "push"),  # sideways is a push too
        ((-0.1, 0, 0), 1.0, 0.9, "pull"),  # toward the base
        ((0, 0, -0.025), 1.0, 0.9, "press"),  # short downward contact (2 cm)
    ],
)
def test_contact_primitives_need_a_gripper_closed_on_nothing(direction, grip, contact_level, expected):
    phases = [("grasp", 8, (0, 0, 0), grip), ("x", 12 if direction[2] else 30, direction, grip)]
    item, _ = phase_trajectory(phases)
    segmenter = KinematicSegmenter(KinematicParams(contact_closed_level=contact_level))
    assert segmenter.segment(item)[-1].subaction == expected


def test_every_segment_has_a_vocabulary_primitive_and_template_instruction():
    item, _ = phase_trajectory(PICK_AND_PLACE, noise=1e-3, seed=3)
    segments = SEGMENTER.segment(item)
    assert {s.subaction for s in segments} <= set(VOCABULARY)
    assert segments[0].instruction == "move the gripper forward and down toward the object while holding nothing"
    lift = next(s for s in segments if s.subaction == "lift")
    assert lift.instruction == "lift the object upward while holding it"


def test_a_place_needs_something_held_before():
    # closing fully on nothing then reopening is a failed grasp, not a place
    phases = [("move", 20, (0, 0, -0.1), 0.0), ("grasp", 8, (0, 0, 0), 1.0), ("grasp", 8, (0, 0, 0), 0.0),
              ("move", 20, (0, 0, 0.1), 0.0)]
    item, _ = phase_trajectory(phases)
    assert [s.subaction for s in SEGMENTER.segment(item)] == ["move", "grasp", "move"]


@pytest.mark.parametrize(
    "runs, min_frames, expected",
    [
        ([[0, 10, "up"]], 3, [[0, 10, "up"]]),
        ([[0, 10, "up"], [10, 11, "down"], [11, 20, "up"]], 3, [[0, 20, "up"]]),
        ([[0, 10, "up"], [10, 12, "static"], [12, 18, "close"]], 3, [[0, 10, "up"], [10, 18, "close"]]),
    ],
)
def test_short_runs_are_absorbed(runs, min_frames, expected):
    assert absorb_short_runs(runs, min_frames) == expected


@pytest.mark.parametrize(
    "runs, expected",
    [
        ([], []),
        ([[0, 10, "up"], [10, 14, "static"], [14, 30, "horizontal"]], [[0, 14, "up"], [14, 30, "horizontal"]]),
        ([[0, 10, "up"], [10, 14, "static"], [14, 20, "close"]], [[0, 10, "up"], [10, 20, "close"]]),
        ([[0, 4, "static"], [4, 20, "up"], [20, 24, "static"]], [[0, 4, "static"], [4, 20, "up"], [20, 24, "static"]]),
        ([[0, 10, "up"], [10, 30, "static"], [30, 40, "down"]], [[0, 10, "up"], [10, 30, "static"], [30, 40, "down"]]),
    ],
)
def test_short_interior_pause_ends_the_motion_before_it_edges_stay(runs, expected):
    assert split_short_pauses(runs, 15) == expected


@pytest.mark.parametrize(
    "displacement, expected",
    [
        ((0, 0, 0), []),
        ((0.1, 0, -0.06), ["forward", "down"]),
        ((0, -0.2, 0.01), ["right"]),
        ((0.005, 0, 0), []),
    ],
)
def test_directions_follow_the_base_frame_convention(displacement, expected):
    assert displacement_to_directions(displacement) == expected


def test_unknown_primitive_has_no_template():
    with pytest.raises(ValueError, match="no instruction template"):
        instruction_for("dance")


@pytest.mark.parametrize(("fps", "expected"), [(15.0, 4), (5.0, 1), (3.0, 1), (30.0, 9)])
def test_the_shortest_segment_is_a_duration_not_a_frame_count(fps, expected):
    # min_segment_s = 0.3 s: a whole number of frames no longer than it, at least one; a fixed
    # floor of 3 frames made every segment last at least 1 s at Fractal's 3 Hz
    assert KinematicSegmenter().min_frames(fps) == expected
    assert KinematicSegmenter(min_segment_frames=3).min_frames(fps) == max(3, expected)


@pytest.mark.parametrize("fps", [15.0, 5.0])
def test_a_short_pause_that_ends_the_recording_is_a_wait(fps):
    # rest, a minimum-jerk move of 1.5 s, then 0.4 s at rest: the velocity filter must not carry
    # the decelerating move into the final pause (savgol's default edge mode extrapolates it)
    n_start, n_move, n_rest = int(0.6 * fps), int(1.5 * fps), max(2, int(round(0.4 * fps)))
    u = np.arange(1, n_move + 1) / n_move
    progress = np.concatenate([np.zeros(n_start), 10 * u**3 - 15 * u**4 + 6 * u**5, np.ones(n_rest)])
    t = len(progress)
    state = np.zeros((t, 6))
    state[:, 0], state[:, 2], state[:, 3] = 0.45 + 0.2 * progress, 0.3, np.pi
    item = SegmentationInput("e", "task", fps, state, np.zeros(t))
    segments = SEGMENTER.segment(item)
    assert cover_ok(segments, t)
    assert [s.subaction for s in segments] == ["wait", "move", "wait"]
    assert abs(segments[-1].start - (n_start + n_move)) <= 2


def test_a_press_at_3_hz_is_found_without_a_pause_between_approach_and_press():
    # at 3 Hz the approach and the press are one downward run (no speed dip is sampled): the
    # contact band (contact_band_m above the lowest point) splits them
    fps, fist = 3.0, 1.0
    phases = [("wait", 3, (0, 0, 0), fist), ("move", 3, (0, 0, -0.12), fist), ("press", 2, (0, 0, -0.04), fist),
              ("press", 2, (0, 0, 0.04), fist), ("move", 3, (0, 0, 0.12), fist), ("wait", 2, (0, 0, 0), fist)]
    item, truth = phase_trajectory(phases, fps=fps)
    item.gripper[:] = fist
    segments = SEGMENTER.segment(item)
    labels = [s.subaction for s in segments]
    assert "press" in labels, labels
    press = segments[labels.index("press")]
    assert abs(press.start - truth[2][0]) <= 1 and abs(press.end - truth[3][1]) <= 1


def test_the_descent_before_a_push_is_no_press():
    fist = 1.0
    phases = [("wait", 8, (0, 0, 0), fist), ("move", 20, (0, 0, -0.1), fist), ("push", 30, (0, 0.1, 0), fist),
              ("move", 20, (0, 0, 0.1), fist)]
    item, _ = phase_trajectory(phases)
    item.gripper[:] = fist
    labels = [s.subaction for s in SEGMENTER.segment(item)]
    assert "push" in labels and "press" not in labels, labels
