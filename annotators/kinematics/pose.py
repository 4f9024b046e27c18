"""The canonical end-effector pose every motion annotator reads: T×6 [x, y, z, roll, pitch, yaw].

Position in metres in the card's base frame, orientation as extrinsic xyz Euler angles
(scipy "xyz"), unwrapped over time so finite differences never jump by 2π. A card
declares how its state stores orientation (`state.rotation`):

- `euler_<seq>`: dims 3:6 are Euler angles in scipy's sequence `seq` (`xyz` extrinsic,
  `XYZ` intrinsic; DROID and Bridge store extrinsic xyz);
- `quat_xyzw` / `quat_wxyz`: dims 3:7 are a unit quaternion, scalar last / first (Fractal: xyzw);
- `rotvec`: dims 3:6 are an axis-angle vector;
- `none`: position only (orientation reads as constant).
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from datasets_cards.source import EULER_ROTATION, ROTATIONS, validate_rotation

POSE_NAMES = ["x", "y", "z", "roll", "pitch", "yaw"]
CANONICAL_EULER = "xyz"
_WIDTH = {"quat_xyzw": 7, "quat_wxyz": 7, "rotvec": 6, "none": 3}
__all__ = ["POSE_NAMES", "ROTATIONS", "PoseError", "matrix_to_rot6d", "pose_to_rot6d", "state_to_pose", "validate_rotation"]


class PoseError(ValueError):
    """The state cannot be read as the declared pose (too few dims, a zero quaternion)."""


def _rotations(arm_state: np.ndarray, rotation: str) -> Rotation | None:
    if rotation == "none":
        return None
    if rotation == "rotvec":
        return Rotation.from_rotvec(arm_state[:, 3:6])
    if rotation.startswith("quat_"):
        quaternions = arm_state[:, 3:7]
        if np.any(np.linalg.norm(quaternions, axis=1) < 1e-6):
            raise PoseError("a zero quaternion in the state")
        return Rotation.from_quat(quaternions, scalar_first=rotation == "quat_wxyz")
    return Rotation.from_euler(EULER_ROTATION.match(rotation).group(1), arm_state[:, 3:6])


def state_to_pose(arm_state: np.ndarray, rotation: str) -> np.ndarray:
    """T×D arm state in the declared representation → T×6 canonical pose (float64)."""
    state = np.asarray(arm_state, dtype=np.float64)
    width = _WIDTH.get(validate_rotation(rotation), 6)
    if state.ndim != 2 or state.shape[1] < width:
        raise PoseError(f"rotation {rotation!r} needs {width} state dims, the state has shape {state.shape}")
    if rotation == f"euler_{CANONICAL_EULER}":
        return state[:, :6].copy()  # already canonical: no round trip through rotation matrices
    pose = np.zeros((len(state), 6))
    pose[:, :3] = state[:, :3]
    rotations = _rotations(state, rotation)
    if rotations is not None and len(state):
        pose[:, 3:] = np.unwrap(rotations.as_euler(CANONICAL_EULER), axis=0)
    return pose


def matrix_to_rot6d(matrices: np.ndarray) -> np.ndarray:
    """…×3×3 rotation matrices → …×6: the first two columns, column after column (Zhou et al. 2019),
    [r00, r10, r20, r01, r11, r21]. Continuous, unlike Euler angles (DIAL's wrist rotations)."""
    m = np.asarray(matrices, dtype=np.float64)
    return np.concatenate([m[..., :, 0], m[..., :, 1]], axis=-1)


def pose_to_rot6d(pose: np.ndarray) -> np.ndarray:
    """T×6 canonical pose (xyz, extrinsic xyz Euler) → T×9: xyz then the 6-D rotation."""
    pose = np.asarray(pose, dtype=np.float64)
    matrices = Rotation.from_euler(CANONICAL_EULER, pose[:, 3:6]).as_matrix() if len(pose) else np.zeros((0, 3, 3))
    return np.concatenate([pose[:, :3], matrix_to_rot6d(matrices)], axis=1)
