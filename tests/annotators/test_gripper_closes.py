"""Closes and holding in the normalised gripper (annotators/gripper.py), on shapes taken from the sample."""

import numpy as np
import pytest

from annotators.gripper import gripper_to_closes, gripper_to_holding

# Sample-bridge episode 1 (rounded): a missed grasp closes fully (1.0) and reopens, the second grasp
# stops on the object at 0.44.
MISSED_THEN_HELD = np.array([0, 0, 0.07, 0.61, 1.0, 1.0, 0.9, 0.27, 0, 0, 0.02, 0.22, 0.41, 0.44, 0.44, 0.44, 0.35, 0.1, 0])


def test_a_grasp_stopped_by_the_object_holds_and_a_missed_grasp_does_not():
    closes = gripper_to_closes(MISSED_THEN_HELD)
    assert [(c.start, c.stop) for c in closes] == [(3, 7), (12, 17)]  # past the midpoints 0.5 and 0.22
    assert closes[0].settled == pytest.approx(1.0) and closes[1].settled == pytest.approx(0.44)
    assert np.flatnonzero(gripper_to_holding(MISSED_THEN_HELD)).tolist() == list(range(12, 17))


def test_without_the_empty_close_check_every_close_holds():
    # A commanded gripper (LIBERO/CALVIN actions) reads fully closed whether or not it holds something.
    commanded = np.array([0, 0, 1, 1, 1, 1, 0, 0], np.float32)
    assert not gripper_to_holding(commanded).any()
    assert np.flatnonzero(gripper_to_holding(commanded, empty_close=None)).tolist() == [2, 3, 4, 5]


def test_a_gripper_closed_from_the_start_never_holds():
    # The sample's push, pull and press episodes keep the gripper closed throughout.
    assert not gripper_to_holding(np.full(30, 0.99)).any()
    assert not gripper_to_holding(np.full(30, 0.40)).any()


def test_a_blip_shorter_than_min_hold_is_not_a_close():
    blip = np.array([0, 0, 0.4, 0, 0, 0, 0.4, 0.4, 0], np.float32)
    assert np.flatnonzero(gripper_to_holding(blip, min_hold=2)).tolist() == [6, 7]
    assert np.flatnonzero(gripper_to_holding(blip, min_hold=1)).tolist() == [2, 6, 7]


def test_a_dip_that_stays_above_the_midpoint_does_not_split_the_close():
    # Open 0, settled 0.2: the dip to 0.12 falls below the rise of 0.15 but stays above the midpoint 0.1.
    dip = np.array([0, 0, 0.2, 0.2, 0.12, 0.2, 0.2, 0, 0])
    closes = gripper_to_closes(dip)
    assert [(c.start, c.stop) for c in closes] == [(2, 7)]


@pytest.mark.parametrize("kwargs", [{"min_hold": 0}, {"min_rise": 0.0}])
def test_invalid_settings_raise(kwargs):
    with pytest.raises(ValueError):
        gripper_to_closes(np.zeros(4), **kwargs)
