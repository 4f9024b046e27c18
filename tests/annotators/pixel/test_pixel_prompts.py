import hashlib

import cv2
import numpy as np
import pytest

from annotators.pixel import VisualPrompts, mask_box, seed_from, visual_prompts

H, W = 96, 128


def _blob(rng: np.random.Generator) -> np.ndarray:
    canvas = np.zeros((H, W), dtype=np.uint8)
    for _ in range(rng.integers(1, 4)):
        centre = (int(rng.integers(10, W - 10)), int(rng.integers(10, H - 10)))
        axes = (int(rng.integers(3, 30)), int(rng.integers(3, 30)))
        cv2.ellipse(canvas, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1, thickness=-1)
    return canvas.astype(bool)


def _stripe() -> np.ndarray:
    canvas = np.zeros((H, W), dtype=np.uint8)
    cv2.line(canvas, (5, 3), (100, 90), 1, thickness=1)
    return canvas.astype(bool)


def _ring() -> np.ndarray:
    canvas = np.zeros((H, W), dtype=np.uint8)
    cv2.circle(canvas, (64, 48), 30, 1, thickness=4)
    return canvas.astype(bool)


def _two_blobs() -> np.ndarray:
    canvas = np.zeros((H, W), dtype=np.uint8)
    cv2.circle(canvas, (20, 20), 8, 1, thickness=-1)
    cv2.circle(canvas, (100, 70), 12, 1, thickness=-1)
    return canvas.astype(bool)


def _single_pixel() -> np.ndarray:
    mask = np.zeros((H, W), dtype=bool)
    mask[H - 1, 7] = True
    return mask


def _masks() -> list[np.ndarray]:
    rng = np.random.default_rng(1234)
    return [_blob(rng) for _ in range(25)] + [_stripe(), _ring(), _two_blobs(), _single_pixel()]


def _line_pixels(shape: tuple[int, int], line: np.ndarray) -> np.ndarray:
    """Rasterise independently on a full canvas, as the drawing code does."""
    canvas = np.zeros(shape, dtype=np.uint8)
    x0, y0, x1, y1 = (int(v) for v in line)
    cv2.line(canvas, (x0, y0), (x1, y1), 1, thickness=1, lineType=cv2.LINE_8)
    return canvas.astype(bool)


@pytest.mark.parametrize("index", range(len(_masks())))
def test_prompts_lie_inside_every_mask(index):
    mask = _masks()[index]
    prompts = visual_prompts(mask, num_points=8, num_lines=4, seed=index)
    assert isinstance(prompts, VisualPrompts)
    assert prompts.points.shape == (8, 2) and prompts.points.dtype == np.float32
    assert prompts.lines.shape == (4, 4) and prompts.lines.dtype == np.float32
    for x, y in prompts.points:
        assert mask[int(y), int(x)]
    for line in prompts.lines:
        drawn = _line_pixels(mask.shape, line)
        assert drawn.any() and mask[drawn].all()
    assert prompts.box.dtype == np.float32
    np.testing.assert_array_equal(prompts.box, mask_box(mask))


def test_points_without_replacement_unless_too_few_pixels():
    mask = _two_blobs()
    points = visual_prompts(mask, num_points=50, num_lines=0, seed=3).points
    assert len({tuple(p) for p in points}) == 50
    small = np.zeros((10, 10), dtype=bool)
    small[2, 2:5] = True  # 3 pixels
    points = visual_prompts(small, num_points=7, num_lines=1, seed=3).points
    assert points.shape == (7, 2) and all(small[int(y), int(x)] for x, y in points)


def test_lines_are_mostly_real_segments_on_a_large_blob():
    mask = np.zeros((H, W), dtype=bool)
    mask[10:80, 10:110] = True
    lines = visual_prompts(mask, num_points=1, num_lines=10, seed=0).lines
    lengths = np.hypot(lines[:, 2] - lines[:, 0], lines[:, 3] - lines[:, 1])
    assert (lengths > 0).all()


def test_single_pixel_mask_gives_degenerate_lines():
    mask = _single_pixel()
    prompts = visual_prompts(mask, num_points=3, num_lines=2, seed=0)
    np.testing.assert_array_equal(prompts.lines, [[7, H - 1, 7, H - 1]] * 2)
    np.testing.assert_array_equal(prompts.points, [[7, H - 1]] * 3)


def test_box_is_union_over_disjoint_contours():
    mask = _two_blobs()
    box = visual_prompts(mask, 1, 1, seed=0).box
    np.testing.assert_array_equal(box, [12, 12, 113, 83])


def test_empty_mask():
    prompts = visual_prompts(np.zeros((H, W), dtype=bool), num_points=5, num_lines=3, seed=0)
    assert prompts.points.shape == (0, 2) and prompts.lines.shape == (0, 4) and prompts.box is None


def test_deterministic_for_a_seed_and_different_across_seeds():
    mask = _ring()
    a = visual_prompts(mask, 10, 5, seed=seed_from("ep", 1))
    b = visual_prompts(mask.copy(), 10, 5, seed=seed_from("ep", 1))
    assert a.points.tobytes() == b.points.tobytes()
    assert a.lines.tobytes() == b.lines.tobytes()
    assert a.box.tobytes() == b.box.tobytes()
    c = visual_prompts(mask, 10, 5, seed=seed_from("ep", 2))
    assert a.points.tobytes() != c.points.tobytes()


def test_seed_from_is_sha256_of_joined_parts():
    digest = hashlib.sha256(b"bridge\x1fepisode_000042\x1f3").digest()
    expected = int.from_bytes(digest[:8], "big") & (2**63 - 1)
    assert seed_from("bridge", "episode_000042", 3) == expected
    assert seed_from("a", "b") != seed_from("b", "a")
    assert 0 <= seed_from() < 2**63
