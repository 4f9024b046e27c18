import cv2
import numpy as np

from annotators.pixel import Projection, fit_projection

K = np.array([[520.0, 0, 320], [0, 515.0, 240], [0, 0, 1]])
R, _ = cv2.Rodrigues(np.array([0.3, -0.4, 0.1]))
T = np.array([0.05, -0.1, 1.2])


def _camera_to_world(points_cam: np.ndarray) -> np.ndarray:
    return (points_cam - T) @ R  # R^T (X_c - t), row-wise


def _pinhole(xyz: np.ndarray) -> np.ndarray:
    cam = xyz @ R.T + T
    uv = cam @ K.T
    return uv[:, :2] / uv[:, 2:]


def _scene(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    cam = np.column_stack([rng.uniform(-0.4, 0.4, n), rng.uniform(-0.3, 0.3, n), rng.uniform(0.6, 1.5, n)])
    xyz = _camera_to_world(cam)
    return xyz, _pinhole(xyz)


def test_ransac_recovers_projection_with_outliers():
    xyz, pixels = _scene(60, seed=0)
    rng = np.random.default_rng(1)
    outliers = np.zeros(60, dtype=bool)
    outliers[rng.choice(60, 18, replace=False)] = True  # 30 %
    shift = rng.uniform(40, 120, (18, 2)) * rng.choice([-1, 1], (18, 2))
    noisy = pixels + rng.normal(0, 0.2, pixels.shape)
    noisy[outliers] += shift
    fit = fit_projection(xyz, noisy, tolerance_px=3.0, seed=0)
    assert isinstance(fit, Projection) and fit.matrix.shape == (3, 4)
    np.testing.assert_array_equal(fit.inliers, ~outliers)
    assert fit.error_px < 1.0
    assert np.all(fit.error(xyz[~outliers], pixels[~outliers]) < 1.0)  # against the clean pixels
    assert np.all(fit.error(xyz[outliers], noisy[outliers]) > 3.0)
    held_out, truth = _scene(20, seed=7)
    assert np.all(np.linalg.norm(fit.project(held_out) - truth, axis=1) < 1.0)


def test_points_behind_camera_project_to_nan():
    xyz, pixels = _scene(30, seed=2)
    fit = fit_projection(xyz, pixels, tolerance_px=1.0)
    behind = _camera_to_world(np.array([[0.1, 0.1, -1.0], [-0.3, 0.2, -0.05]]))
    projected = fit.project(behind)
    assert np.isnan(projected).all()
    assert np.isnan(fit.error(behind, np.zeros((2, 2)))).all()
    assert np.isfinite(fit.project(xyz)).all()


def test_too_few_points_gives_none():
    xyz, pixels = _scene(5, seed=3)
    assert fit_projection(xyz, pixels, tolerance_px=2.0) is None
    xyz, pixels = _scene(8, seed=3)
    xyz[:3] = np.nan  # unusable pairs do not count
    assert fit_projection(xyz, pixels, tolerance_px=2.0) is None


def test_non_finite_pairs_are_never_inliers():
    xyz, pixels = _scene(20, seed=4)
    pixels[[2, 5]] = np.nan
    fit = fit_projection(xyz, pixels, tolerance_px=1.0)
    assert fit is not None and not fit.inliers[[2, 5]].any() and fit.inliers.sum() == 18


def test_no_consensus_gives_none():
    rng = np.random.default_rng(5)
    xyz = rng.uniform(-1, 1, (40, 3))
    pixels = rng.uniform(0, 640, (40, 2))
    assert fit_projection(xyz, pixels, tolerance_px=2.0, iterations=200) is None


def test_deterministic_for_a_seed():
    xyz, pixels = _scene(40, seed=6)
    pixels[:10] += 80
    a = fit_projection(xyz, pixels, tolerance_px=2.0, seed=3)
    b = fit_projection(xyz, pixels, tolerance_px=2.0, seed=3)
    np.testing.assert_array_equal(a.matrix, b.matrix)
    np.testing.assert_array_equal(a.inliers, b.inliers)
