import numpy as np
import pytest

from annotators.pixel import MASK_REJECTIONS, mask_problem, rejection_code

LIMITS = {"min_pixels": 30, "max_of_proposal": 0.9, "max_of_image": 0.5, "min_inside_proposal": 0.8}
PROPOSAL = np.array([20, 20, 60, 60], dtype=np.float32)  # 1600 px


def _mask(rows: slice, cols: slice, shape=(100, 100)) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[rows, cols] = True
    return mask


def test_good_mask_passes():
    assert mask_problem(_mask(slice(30, 50), slice(30, 50)), PROPOSAL, **LIMITS) is None


@pytest.mark.parametrize(
    ("mask", "proposal", "code"),
    [
        (np.zeros((100, 100), dtype=bool), PROPOSAL, "empty_mask"),
        (_mask(slice(30, 33), slice(30, 34)), PROPOSAL, "small_mask"),  # 12 px
        (_mask(slice(20, 60), slice(20, 60)), PROPOSAL, "mask_fills_proposal"),  # covers 1600 > 0.9 × 1600
        # a mask spilling past the proposal still fills it when it covers it: what matters is the share covered
        (_mask(slice(15, 65), slice(15, 65)), PROPOSAL, "mask_fills_proposal"),
        (_mask(slice(0, 80), slice(0, 80)), np.array([0, 0, 100, 100]), "mask_fills_image"),  # 6400 > 5000
        (_mask(slice(30, 50), slice(50, 70)), PROPOSAL, "mask_outside_proposal"),  # half inside
    ],
)
def test_each_rejection_code(mask, proposal, code):
    reason = mask_problem(mask, proposal, **LIMITS)
    assert reason is not None and reason.startswith(f"{code}: ")
    assert rejection_code(reason) == code
    assert code in MASK_REJECTIONS


def test_reason_explains_numbers():
    reason = mask_problem(_mask(slice(30, 33), slice(30, 34)), PROPOSAL, **LIMITS)
    assert reason == "small_mask: 12 pixels < 30"
    reason = mask_problem(_mask(slice(30, 50), slice(50, 70)), PROPOSAL, **LIMITS)
    assert "0.500" in reason


def test_inside_fraction_uses_pixel_centres_and_exclusive_edges():
    mask = _mask(slice(30, 50), slice(40, 60))  # columns 40..59, all inside [20, 60)
    assert mask_problem(mask, PROPOSAL, **{**LIMITS, "min_inside_proposal": 1.0}) is None
    shifted = np.array([20, 20, 59.6, 60], dtype=np.float32)  # column 59's centre 59.5 is still inside
    assert mask_problem(mask, shifted, **{**LIMITS, "min_inside_proposal": 1.0}) is None
    cut = np.array([20, 20, 59.4, 60], dtype=np.float32)  # column 59 is now outside: 19/20 inside
    reason = mask_problem(mask, cut, **{**LIMITS, "min_inside_proposal": 1.0})
    assert rejection_code(reason) == "mask_outside_proposal" and "0.950" in reason


def test_a_mask_larger_than_the_proposal_that_covers_little_of_it_is_outside_not_filling():
    # 2500 px (more than the proposal's 1600) overlapping a corner of it: 400 covered, 0.16 inside
    reason = mask_problem(_mask(slice(0, 50), slice(50, 100)), np.array([20, 30, 60, 60]), **LIMITS)
    assert rejection_code(reason) == "mask_outside_proposal"


def test_no_proposal_skips_proposal_checks():
    assert mask_problem(_mask(slice(0, 10), slice(0, 10)), None, **LIMITS) is None


def test_rejection_code_parses():
    assert rejection_code("mask_fills_image: 6400 pixels > 0.5 × image 10000") == "mask_fills_image"
    assert rejection_code("empty_mask") == "empty_mask"
    assert len(set(MASK_REJECTIONS)) == 5
