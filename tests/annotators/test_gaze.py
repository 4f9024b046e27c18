"""Gaze-box logic on synthetic tracks with known outliers and gaps, and crop geometry."""

import numpy as np
import pytest

from annotators.detection import Detections
from annotators.gaze import (
    DETECTED,
    INTERPOLATED,
    LOW_SCORE,
    NO_BOX,
    REJECTED_JUMP,
    box_iou,
    box_to_crop_box,
    consistent_track,
    crop_image,
    crop_side,
    detections_to_track,
    runs,
    track_coverage,
    track_to_filled,
    track_to_jumps,
)

SIZE = (200, 100)  # width, height
SETTINGS = {"jump_iou": 0.1, "max_centre_speed": 1.0, "neighbours": 2, "max_gap": 3, "low_score": 0.35}


def steady_track(t: int, speed: float = 1.0) -> np.ndarray:
    """A 20×20 box sliding right by `speed` pixels per frame."""
    x = 50 + speed * np.arange(t, dtype=np.float32)
    return np.stack([x, np.full(t, 40), x + 20, np.full(t, 60)], axis=1).astype(np.float32)


def far_box() -> np.ndarray:
    return np.array([170, 0, 190, 20], np.float32)


def test_detections_to_track_takes_the_best_box_and_nan_for_none():
    two = Detections(np.array([[0, 0, 1, 1], [5, 5, 9, 9]], np.float32), [0.4, 0.8], [0, 0])
    boxes, scores = detections_to_track([Detections.empty(), two])
    assert np.isnan(boxes[0]).all() and np.isnan(scores[0])
    assert boxes[1].tolist() == [5, 5, 9, 9] and scores[1] == pytest.approx(0.8)


@pytest.mark.parametrize(
    "a, b, iou",
    [
        ([0, 0, 10, 10], [0, 0, 10, 10], 1.0),
        ([0, 0, 10, 10], [5, 0, 15, 10], 1 / 3),
        ([0, 0, 10, 10], [20, 20, 30, 30], 0.0),
        ([0, 0, 0, 0], [0, 0, 0, 0], 0.0),
        ([np.nan] * 4, [0, 0, 1, 1], 0.0),
    ],
)
def test_box_iou(a, b, iou):
    assert box_iou(np.array([a], float), np.array([b], float))[0] == pytest.approx(iou)


@pytest.mark.parametrize(
    "outliers",
    [[], [5], [0], [19], [5, 6], [3, 12]],
    ids=["none", "single", "first", "last", "two-in-a-row", "two-apart"],
)
def test_jumps_flag_exactly_the_planted_outliers(outliers):
    boxes = steady_track(20)
    boxes[outliers] = far_box()
    rejected = track_to_jumps(boxes, fps=5.0, diagonal=float(np.hypot(*SIZE)), jump_iou=0.1,
                              max_centre_speed=1.0, neighbours=2)
    assert np.flatnonzero(rejected).tolist() == outliers


def test_a_fast_but_continuous_track_is_not_a_jump():
    boxes = steady_track(20, speed=15.0)  # 15 px/frame: IoU with the next frame is still > 0.1
    rejected = track_to_jumps(boxes, 30.0, float(np.hypot(*SIZE)), 0.1, 1.0, 2)
    assert not rejected.any()


@pytest.mark.parametrize(
    "missing, max_gap, interpolated, still_missing",
    [
        ([], 3, [], []),
        ([4], 3, [4], []),
        ([4, 5, 6], 3, [4, 5, 6], []),
        ([4, 5, 6, 7], 3, [], [4, 5, 6, 7]),
        ([0, 1], 3, [], [0, 1]),  # no box before: never extrapolated
        ([18, 19], 3, [], [18, 19]),
    ],
)
def test_gaps_up_to_max_gap_are_interpolated_and_longer_ones_stay_empty(missing, max_gap, interpolated, still_missing):
    truth = steady_track(20)
    boxes = truth.copy()
    boxes[missing] = np.nan
    filled, mask = track_to_filled(boxes, max_gap)
    assert np.flatnonzero(mask).tolist() == interpolated
    assert np.flatnonzero(np.isnan(filled).any(axis=1)).tolist() == still_missing
    np.testing.assert_allclose(filled[interpolated], truth[interpolated], atol=1e-4)  # linear motion
    assert np.isnan(boxes[missing]).all()  # input untouched


def test_consistent_track_on_an_empty_episode():
    track = consistent_track(np.zeros((0, 4)), np.zeros(0), 5.0, SIZE, **SETTINGS)
    assert track.boxes.shape == (0, 4) and track.flags == [] and track_coverage(track)["coverage"] == 0.0


def test_consistent_track_flags_outliers_gaps_and_missing_frames():
    boxes = steady_track(20)
    scores = np.full(20, 0.9, np.float32)
    boxes[5] = far_box()  # outlier → rejected, then interpolated from 4 and 6
    boxes[10:12] = np.nan  # short gap → interpolated
    boxes[14:19] = np.nan  # 5 frames > max_gap 3 → no_box
    scores[2] = 0.31  # kept, flagged low_score
    track = consistent_track(boxes, scores, 5.0, SIZE, **SETTINGS)
    flags = {t: f for t, f in enumerate(track.flags)}
    assert flags[5] == [REJECTED_JUMP, INTERPOLATED] and np.isnan(track.scores[5])
    assert flags[10] == flags[11] == [INTERPOLATED]
    assert all(flags[t] == [NO_BOX] for t in range(14, 19)) and np.isnan(track.boxes[14:19]).all()
    assert flags[2] == [DETECTED, LOW_SCORE] and flags[0] == [DETECTED]
    np.testing.assert_allclose(track.boxes[5], steady_track(20)[5], atol=1e-4)
    cov = track_coverage(track)
    assert cov["frames"] == 20 and cov[NO_BOX] == 5 and cov["coverage"] == pytest.approx(15 / 20)


def test_consistent_track_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="3 boxes and 2 scores"):
        consistent_track(np.zeros((3, 4)), np.zeros(2), 5.0, SIZE, **SETTINGS)


@pytest.mark.parametrize(
    "values, expected", [([], []), ([0], [(0, 1)]), ([0, 0, 1, 1, 0], [(0, 2), (2, 4), (4, 5)])]
)
def test_runs_split_at_changes(values, expected):
    assert runs(np.array(values)) == expected


W, H = 200, 100


@pytest.mark.parametrize(
    "box, margin, min_size, square, expected",
    [
        ([90, 40, 110, 60], 0.0, 1, False, [90, 40, 110, 60]),  # exact
        ([90, 40, 110, 60], 0.5, 1, False, [80, 30, 120, 70]),  # margin: half the size on each side
        ([95, 45, 105, 55], 0.0, 40, False, [80, 30, 120, 70]),  # minimum size around the centre
        ([90, 45, 130, 55], 0.0, 1, True, [90, 30, 130, 70]),  # square: the short side grows
        ([0, 0, 20, 20], 0.5, 1, False, [0, 0, 40, 40]),  # at the corner: slid inside, size kept
        ([190, 90, 200, 100], 0.0, 40, False, [160, 60, 200, 100]),
        ([0, 0, 200, 100], 0.2, 1, False, [0, 0, 200, 100]),  # larger than the image: clipped
        ([0, 0, 200, 100], 0.0, 1, True, [0, 0, 200, 100]),  # square window taller than the image: clipped
    ],
)
def test_crop_box_geometry(box, margin, min_size, square, expected):
    crop = box_to_crop_box(np.array(box, np.float32), W, H, margin=margin, min_size=min_size, square=square)
    assert crop.tolist() == expected and crop.dtype == np.int32


def test_crop_box_of_nan_box_raises():
    with pytest.raises(ValueError, match="non-finite"):
        box_to_crop_box(np.full(4, np.nan), W, H, margin=0.1, min_size=8, square=False)


def test_crop_is_a_copy_and_square_pads_centred():
    image = np.arange(H * W * 3, dtype=np.uint32).reshape(H, W, 3).astype(np.uint8)
    crop = crop_image(image, np.array([0, 0, 200, 100]), square=True)
    assert crop.shape == (200, 200, 3)
    assert (crop[:50] == 0).all() and (crop[150:] == 0).all() and np.array_equal(crop[50:150], image)
    plain = crop_image(image, np.array([10, 20, 30, 60]))
    plain[:] = 0
    assert plain.shape == (40, 20, 3) and image[20:60, 10:30].any()


def test_empty_crop_window_raises():
    with pytest.raises(ValueError, match="empty crop"):
        crop_image(np.zeros((4, 4, 3), np.uint8), np.array([2, 2, 2, 3]))


def random_boxes(rng: np.random.Generator, n: int):
    """(box, width, height, margin, min_size): fractional boxes inside images of many sizes, some tiny, some huge."""
    for _ in range(n):
        width, height = (int(v) for v in rng.integers(8, 400, 2))
        bw, bh = rng.uniform(0.5, width), rng.uniform(0.5, height)
        x0, y0 = rng.uniform(0, width - bw), rng.uniform(0, height - bh)
        margin = float(rng.choice([0.0, 0.15, rng.uniform(0, 0.6)]))
        yield np.array([x0, y0, x0 + bw, y0 + bh], np.float32), width, height, margin, int(rng.integers(1, 160))


@pytest.mark.parametrize("square", [False, True])
def test_crop_sizes_are_exact_for_random_boxes(square):
    rng = np.random.default_rng(19)
    for box, width, height, margin, min_size in random_boxes(rng, 3000):
        crop_box = box_to_crop_box(box, width, height, margin=margin, min_size=min_size, square=square)
        x0, y0, x1, y1 = crop_box.tolist()
        want_w = crop_side(float(box[2]) - float(box[0]), margin, min_size)
        want_h = crop_side(float(box[3]) - float(box[1]), margin, min_size)
        assert want_w >= (box[2] - box[0]) * (1 + 2 * margin) - 1e-3 and want_w >= min_size
        if square:
            want_w = want_h = max(want_w, want_h)
        case = (box.tolist(), width, height, margin, min_size)
        assert (x1 - x0, y1 - y0) == (min(want_w, width), min(want_h, height)), case
        assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height, case
        if x1 - x0 >= np.ceil(box[2]) - np.floor(box[0]):  # room for the box's pixels: all of them inside
            assert x0 <= box[0] and box[2] <= x1, case
        if y1 - y0 >= np.ceil(box[3]) - np.floor(box[1]):
            assert y0 <= box[1] and box[3] <= y1, case
        crop = crop_image(np.zeros((height, width, 3), np.uint8), crop_box, square)
        if square:
            side = max(min(want_w, width), min(want_h, height))
            assert crop.shape[:2] == (side, side), case
        else:
            assert crop.shape[:2] == (y1 - y0, x1 - x0), case


@pytest.mark.parametrize("offset", np.linspace(0, 1, 11))
def test_min_crop_64_is_64_by_64_wherever_the_box_sits(offset):
    # Small boxes at fractional positions once gave 64×64, 64×65, 65×64 and 65×65 crops.
    box = np.array([100.3 + offset, 40.7 + offset, 110.1 + offset, 52.9 + offset], np.float32)
    crop_box = box_to_crop_box(box, 256, 256, margin=0.15, min_size=64, square=False)
    assert (crop_box[2] - crop_box[0], crop_box[3] - crop_box[1]) == (64, 64)


def test_a_square_window_is_square_and_one_that_would_be_96_is_96():
    # Once 96×97: the two axes rounded their fractional ends apart.
    box = np.array([80.4, 60.6, 150.2, 120.1], np.float32)  # 69.8 × 59.5: 69.8 × 1.3 = 90.74 → 91
    crop_box = box_to_crop_box(box, 256, 256, margin=0.15, min_size=96, square=True)
    assert (crop_box[2] - crop_box[0], crop_box[3] - crop_box[1]) == (96, 96)


def test_a_side_of_box_plus_margins_is_not_rounded_up_by_floating_point_error():
    assert crop_side(20.0, 0.15, 1) == 26  # 20 × 1.3 = 26.000000000000004
    assert crop_side(20.01, 0.15, 1) == 27
