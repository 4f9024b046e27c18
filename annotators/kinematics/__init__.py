"""Arm state → canonical end-effector pose: declared rotation representations, forward kinematics."""

from annotators.kinematics.from_card import pose_from_state
from annotators.kinematics.pose import (
    POSE_NAMES,
    ROTATIONS,
    PoseError,
    state_to_pose,
    validate_rotation,
)

__all__ = ["POSE_NAMES", "ROTATIONS", "PoseError", "pose_from_state", "state_to_pose", "validate_rotation"]
