"""The card's arm state → canonical pose, chosen from what the card declares (or a card error saying what is missing)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import partial

import numpy as np

from annotators.kinematics.pose import state_to_pose
from datasets_cards import CardError
from datasets_cards.source import StateSpec


def pose_from_state(state: StateSpec, card_name: str) -> Callable[[np.ndarray], np.ndarray]:
    """T×D state → T×6 pose: the declared rotation for an ee_pose, forward kinematics for joint angles."""
    if state.space == "ee_pose":
        return partial(state_to_pose, rotation=state.rotation)
    if state.urdf is None:
        raise CardError(
            f"source {card_name!r} declares joint-space state (state.space: joint) and no URDF: motion annotators "
            "need the end-effector pose. Name the robot's URDF and its end-effector frame (state.urdf, "
            "state.ee_frame), or point state.keys at an end-effector pose the dataset stores."
        )
    from annotators.kinematics.forward import ForwardKinematics

    fk = ForwardKinematics(state.resolve_urdf(), state.ee_frame)
    lock = threading.Lock()  # pinocchio's Data is scratch space: one thread at a time

    def forward(joints: np.ndarray) -> np.ndarray:
        with lock:
            return fk(joints)

    return forward
