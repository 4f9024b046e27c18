import numpy as np
import pytest

from annotators.gripper import first_close_frame


def test_blip_shorter_than_min_hold_is_ignored():
    gripper = np.array([0, 0, 1, 0, 0, 0.9, 1, 1, 0], dtype=float)
    assert first_close_frame(gripper, min_hold=2) == 5
    assert first_close_frame(gripper, min_hold=1) == 2
    assert first_close_frame(gripper, min_hold=3) == 5
    assert first_close_frame(gripper, min_hold=4) is None


def test_a_grasp_that_stops_on_a_wide_object_is_a_close():
    # Holding reads 0.39 (the object stops the fingers): G is the first frame past the midpoint 0.195.
    gripper = np.array([0, 0.01, 0, 0.17, 0.39, 0.39, 0.40, 0.39, 0.38, 0.13, 0])
    assert first_close_frame(gripper) == 4
    # A slower close: G is still the first frame past the midpoint of open and settled.
    assert first_close_frame(np.array([0, 0, 0.17, 0.34, 0.39, 0.39, 0.39])) == 3


def test_never_closes():
    assert first_close_frame(np.full(20, 0.2)) is None
    assert first_close_frame(np.zeros(0)) is None
    assert first_close_frame(np.random.default_rng(0).normal(0, 0.02, 50)) is None  # sensor noise


def test_a_gripper_that_starts_closed_has_not_closed():
    assert first_close_frame(np.array([1.0, 1.0, 1.0, 1.0])) is None
    # ... until it opens and closes again
    assert first_close_frame(np.array([1.0, 1.0, 0.0, 0.0, 0.8, 0.8])) == 4


def test_min_rise_is_inclusive():
    assert first_close_frame(np.array([0.0, 0.5, 0.5, 0.0]), min_rise=0.5) == 1
    assert first_close_frame(np.array([0.0, 0.5, 0.5, 0.0]), min_rise=0.51) is None


def test_nan_counts_as_open():
    gripper = np.array([0, 1, np.nan, 1, 1, 0], dtype=float)
    assert first_close_frame(gripper, min_hold=2) == 3
    assert first_close_frame(np.full(5, np.nan)) is None


def test_run_cut_by_episode_end_needs_min_hold():
    assert first_close_frame(np.array([0, 0, 0, 1.0]), min_hold=2) is None
    assert first_close_frame(np.array([0, 0, 1, 1.0]), min_hold=2) == 2


def test_min_hold_must_be_positive():
    with pytest.raises(ValueError):
        first_close_frame(np.ones(3), min_hold=0)
