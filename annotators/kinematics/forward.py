"""Joint positions → canonical end-effector pose, by forward kinematics of the robot's URDF (pinocchio)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from annotators.kinematics.pose import CANONICAL_EULER, PoseError
from datasets_cards import CardError


class ForwardKinematics:
    """The pose of `ee_frame` in the URDF's root frame for each row of joint positions (radians / metres).

    The state's D columns are the URDF's first D joints in its order; joints past them (a gripper
    jaw after the arm) stay at zero, which moves no frame before them.
    """

    def __init__(self, urdf: str | Path, ee_frame: str):
        try:
            import pinocchio
        except ImportError as e:
            raise ImportError("forward kinematics needs pinocchio: pip install pin (part of `make install`)") from e
        if not Path(urdf).is_file():
            raise CardError(f"state.urdf {urdf} not found")
        self._pin = pinocchio
        self.model = pinocchio.buildModelFromUrdf(str(urdf))
        if self.model.nq != self.model.nv:
            raise CardError(f"{urdf}: continuous or free joints (nq {self.model.nq} ≠ nv {self.model.nv}) "
                            "are not read from joint angles; use revolute/prismatic joints")
        if not self.model.existFrame(ee_frame):
            frames = [f.name for f in self.model.frames]
            raise CardError(f"{urdf} has no frame {ee_frame!r} (state.ee_frame); its frames: {frames}")
        self.frame_id = self.model.getFrameId(ee_frame)
        self.data = self.model.createData()

    @property
    def joints(self) -> int:
        return int(self.model.nq)

    def __call__(self, joint_positions: np.ndarray) -> np.ndarray:
        q = np.asarray(joint_positions, dtype=np.float64)
        if q.ndim != 2 or not 0 < q.shape[1] <= self.joints:
            raise PoseError(f"the URDF has {self.joints} joints, the state has shape {q.shape}")
        q = np.pad(q, ((0, 0), (0, self.joints - q.shape[1])))
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
