"""Joint positions → canonical end-effector pose, by forward kinematics of the robot's URDF (pinocchio)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from annotators.kinematics.pose import CANONICAL_EULER, PoseError


class ForwardKinematics:
    """The pose of `ee_frame` in the URDF's root frame for each row of joint positions (radians / metres)."""

    def __init__(self, urdf: str | Path, ee_frame: str):
        try:
            import pinocchio
        except ImportError as e:
            raise ImportError("forward kinematics needs pinocchio: pip install pin (part of `make install`)") from e
        if not Path(urdf).is_file():
            raise FileNotFoundError(f"URDF {urdf} not found")
        self._pin = pinocchio
        self.model = pinocchio.buildModelFromUrdf(str(urdf))
        if self.model.nq != self.model.nv:
            raise ValueError(f"{urdf}: continuous or free joints (nq {self.model.nq} ≠ nv {self.model.nv}) "
                             "are not read from joint angles; use revolute/prismatic joints")
        if not self.model.existFrame(ee_frame):
            frames = [f.name for f in self.model.frames]
            raise ValueError(f"{urdf} has no frame {ee_frame!r}; its frames: {frames}")
        self.frame_id = self.model.getFrameId(ee_frame)
        self.data = self.model.createData()

    @property
    def joints(self) -> int:
        return int(self.model.nq)

    def __call__(self, joint_positions: np.ndarray) -> np.ndarray:
        q = np.asarray(joint_positions, dtype=np.float64)
        if q.ndim != 2 or q.shape[1] != self.joints:
            raise PoseError(f"the URDF has {self.joints} joints, the state has shape {q.shape}")
        positions, matrices = np.zeros((len(q), 3)), np.zeros((len(q), 3, 3))
        for t, row in enumerate(q):
            self._pin.framesForwardKinematics(self.model, self.data, row)
            placement = self.data.oMf[self.frame_id]
            positions[t], matrices[t] = placement.translation, placement.rotation
        pose = np.zeros((len(q), 6))
        pose[:, :3] = positions
        if len(q):
            pose[:, 3:] = np.unwrap(Rotation.from_matrix(matrices).as_euler(CANONICAL_EULER), axis=0)
        return pose
