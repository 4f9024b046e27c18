"""Camera projection fitted from end-effector positions and gripper pixels, to cross-check gripper masks.

As Embodied-CoT projects gripper points, a 3×4 matrix P maps the robot's
end-effector xyz (robot frame) to image pixels. It is fitted per camera by the
direct linear transform (Hartley-normalised, SVD) inside RANSAC, so wrong
gripper masks become outliers and the rest tell where the gripper should be.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_POINTS = 6  # DLT needs 5.5 correspondences; RANSAC samples 6


@dataclass
class Projection:
    """Fitted 3×4 camera matrix, which input pairs agreed with it, and their median error in pixels."""

    matrix: np.ndarray
    inliers: np.ndarray
    error_px: float

    def project(self, xyz: np.ndarray) -> np.ndarray:
        """N×3 points → N×2 pixels (x, y); NaN for points on or behind the camera (w <= 0)."""
        return _project(self.matrix, xyz)

    def error(self, xyz: np.ndarray, pixels: np.ndarray) -> np.ndarray:
        """Reprojection distance in pixels per pair; NaN where the point is behind the camera."""
        return np.linalg.norm(self.project(xyz) - np.asarray(pixels, dtype=np.float64), axis=1)


def _project(matrix: np.ndarray, xyz: np.ndarray) -> np.ndarray:
    xyz = np.asarray(xyz, dtype=np.float64).reshape(-1, 3)
    homogeneous = np.hstack([xyz, np.ones((len(xyz), 1))]) @ matrix.T
    w = homogeneous[:, 2:3]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(w > 0, homogeneous[:, :2] / w, np.nan)


def _normaliser(points: np.ndarray) -> np.ndarray:
    """Hartley similarity: centroid to the origin, mean distance sqrt(dim)."""
    dim = points.shape[1]
    centre = points.mean(axis=0)
    spread = np.linalg.norm(points - centre, axis=1).mean()
    scale = np.sqrt(dim) / spread if spread > 0 else 1.0
    transform = np.eye(dim + 1)
    transform[:dim, :dim] *= scale
    transform[:dim, dim] = -scale * centre
    return transform


def _dlt(xyz: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """Homogeneous least-squares P (unit Frobenius norm) with most points in front (w > 0)."""
    t3, t2 = _normaliser(xyz), _normaliser(pixels)
    X = np.hstack([xyz, np.ones((len(xyz), 1))]) @ t3.T
    uv = (np.hstack([pixels, np.ones((len(pixels), 1))]) @ t2.T)[:, :2]
    zeros = np.zeros_like(X)
    rows_u = np.hstack([X, zeros, -uv[:, :1] * X])
    rows_v = np.hstack([zeros, X, -uv[:, 1:] * X])
    _, _, vt = np.linalg.svd(np.vstack([rows_u, rows_v]))
    matrix = np.linalg.inv(t2) @ vt[-1].reshape(3, 4) @ t3
    matrix /= np.linalg.norm(matrix)
    w = np.hstack([xyz, np.ones((len(xyz), 1))]) @ matrix[2]
    return -matrix if np.median(w) < 0 else matrix


def _errors(matrix: np.ndarray, xyz: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """Reprojection distances with behind-camera points as +inf (never inliers)."""
    distance = np.linalg.norm(_project(matrix, xyz) - pixels, axis=1)
    return np.where(np.isnan(distance), np.inf, distance)


def fit_projection(
    xyz: np.ndarray, pixels: np.ndarray, tolerance_px: float, seed: int = 0, iterations: int = 500
) -> Projection | None:
    """RANSAC-DLT camera matrix from xyz ↔ pixel pairs; None without a consensus.

    Pairs with a non-finite value (e.g. no gripper mask) never count. Needs at least
    6 finite pairs and, after refitting on the best sample's inliers, at least
    max(6, half the finite pairs) inliers (error < `tolerance_px`).
    """
    xyz = np.asarray(xyz, dtype=np.float64).reshape(-1, 3)
    pixels = np.asarray(pixels, dtype=np.float64).reshape(-1, 2)
    usable = np.flatnonzero(np.isfinite(xyz).all(axis=1) & np.isfinite(pixels).all(axis=1))
    if len(usable) < MIN_POINTS:
        return None
    P, uv = xyz[usable], pixels[usable]
    rng = np.random.default_rng(seed)
    best, best_count = None, -1
    for _ in range(iterations):
        sample = rng.choice(len(P), size=MIN_POINTS, replace=False)
        inliers = _errors(_dlt(P[sample], uv[sample]), P, uv) < tolerance_px
        if inliers.sum() > best_count:
            best, best_count = inliers, int(inliers.sum())
    if best_count < MIN_POINTS:
        return None
    matrix = _dlt(P[best], uv[best])
    errors = _errors(matrix, P, uv)
    inliers = errors < tolerance_px
    if inliers.sum() < max(MIN_POINTS, 0.5 * len(P)):
        return None
    flags = np.zeros(len(xyz), dtype=bool)
    flags[usable[inliers]] = True
    return Projection(matrix=matrix, inliers=flags, error_px=float(np.median(errors[inliers])))
