import numpy as np

from annotators.pixel import box_area, box_contains, mask_box, mask_centroid, scale_box


def test_mask_box_has_exclusive_max_edges():
    mask = np.zeros((10, 12), dtype=bool)
    mask[2:5, 3:9] = True  # rows 2..4, columns 3..8
    box = mask_box(mask)
    assert box.dtype == np.float32
    np.testing.assert_array_equal(box, [3, 2, 9, 5])
    assert box_area(box) == mask.sum()


def test_mask_box_single_pixel_and_full_image():
    mask = np.zeros((4, 4), dtype=bool)
    mask[3, 0] = True
    np.testing.assert_array_equal(mask_box(mask), [0, 3, 1, 4])
    np.testing.assert_array_equal(mask_box(np.ones((4, 6), dtype=bool)), [0, 0, 6, 4])


def test_empty_mask_gives_none():
    assert mask_box(np.zeros((5, 5), dtype=bool)) is None
    assert mask_centroid(np.zeros((5, 5), dtype=bool)) is None


def test_scale_about_centre():
    box = np.array([40, 20, 60, 40], dtype=np.float32)
    scaled = scale_box(box, 1.5, width=100, height=100)
    assert scaled.dtype == np.float32
    np.testing.assert_allclose(scaled, [35, 15, 65, 45])
    np.testing.assert_allclose(scale_box(box, 1.0, 100, 100), box)


def test_scale_clips_at_image_borders():
    box = np.array([0, 80, 20, 100], dtype=np.float32)
    np.testing.assert_allclose(scale_box(box, 2.0, width=120, height=100), [0, 70, 30, 100])
    np.testing.assert_allclose(scale_box(np.array([10, 10, 90, 50]), 3.0, 100, 60), [0, 0, 100, 60])


def test_box_area_and_degenerate_box():
    assert box_area(np.array([1, 2, 4, 6])) == 12.0
    assert box_area(np.array([5, 5, 3, 9])) == 0.0


def test_box_contains_with_tolerance():
    outer = np.array([10, 10, 50, 50])
    assert box_contains(outer, np.array([10, 10, 50, 50]))
    assert box_contains(outer, np.array([20, 20, 30, 30]))
    assert not box_contains(outer, np.array([8, 20, 30, 30]))
    assert box_contains(outer, np.array([8, 20, 30, 52]), tolerance=2)
    assert not box_contains(outer, np.array([8, 20, 30, 53]), tolerance=2)


def test_mask_centroid_is_mean_pixel_index():
    mask = np.zeros((10, 10), dtype=bool)
    mask[2, 3] = mask[4, 7] = True
    np.testing.assert_allclose(mask_centroid(mask), [5.0, 3.0])
