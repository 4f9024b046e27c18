"""la reads the end-effector pose however the card stores it: Euler, quaternion, or joint angles through a URDF."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from datasets_cards import CardError, Episode, FrameSequence, load_source_card
from datasets_cards.source import StateSpec
from pipelines.base import make_pipeline
from tests.annotators.kinematics.test_pose import L1, L2, PLANAR_ARM
from tests.annotators.segments.segment_factories import PICK_AND_PLACE, phase_trajectory

OPTIONS = {"plots": 0, "review": False}


def card_with(state: StateSpec):
    card = load_source_card("droid")
    return card.model_copy(update={"state": state})


def episode(arm_state: np.ndarray, gripper: np.ndarray, fps: float) -> Episode:
    t = len(arm_state)
    frames = {"exterior_1_left": FrameSequence.from_array(np.zeros((t, 8, 8, 3), np.uint8))}
    return Episode("e0", "droid", "put the cup in the bowl", fps, frames, arm_state, gripper,
                   np.zeros((t, 7), np.float32))


def test_a_quaternion_state_is_segmented_like_the_same_motion_in_euler_angles():
    item, _ = phase_trajectory(PICK_AND_PLACE, seed=0)
    euler = item.arm_state.astype(np.float64)
    quaternion = np.concatenate([euler[:, :3], Rotation.from_euler("xyz", euler[:, 3:6]).as_quat()], axis=1)
    la_euler = make_pipeline("la", load_source_card("droid"), OPTIONS)
    la_quat = make_pipeline("la", card_with(StateSpec(keys=["s"], rotation="quat_xyzw")), OPTIONS)
    rows_euler = la_euler.annotate(episode(euler, item.gripper, item.fps))
    rows_quat = la_quat.annotate(episode(quaternion, item.gripper, item.fps))
    assert [(r["subaction"], r["start"], r["end"]) for r in rows_quat] == \
        [(r["subaction"], r["start"], r["end"]) for r in rows_euler]
    assert len(rows_euler) >= 3


def test_joint_space_without_a_urdf_is_refused_naming_what_to_add():
    with pytest.raises(CardError, match=r"joint-space.*state\.urdf.*state\.ee_frame"):
        make_pipeline("la", card_with(StateSpec(keys=["q"], space="joint")), OPTIONS)


def test_joint_space_with_a_urdf_segments_the_forward_kinematics_pose(tmp_path):
    pytest.importorskip("pinocchio")
    urdf = tmp_path / "planar.urdf"
    urdf.write_text(PLANAR_ARM.format(l1=L1, l2=L2))
    la = make_pipeline("la", card_with(StateSpec(keys=["q"], space="joint", urdf=str(urdf), ee_frame="tool")),
                       OPTIONS)
    t = 30
    q = np.stack([np.linspace(0, 1, t), np.zeros(t)], axis=1).astype(np.float32)  # the shoulder sweeps 1 rad
    item, _ = la.segmentation_input(episode(q, np.zeros(t), 10.0))
    np.testing.assert_allclose(item.arm_state[:, 0], (L1 + L2) * np.cos(q[:, 0]), atol=1e-6)
    np.testing.assert_allclose(item.arm_state[:, 1], (L1 + L2) * np.sin(q[:, 0]), atol=1e-6)
    with pytest.raises(Exception, match="2 joints"):  # a state of the wrong width is the episode's fault
        la.annotate(episode(np.zeros((t, 6), np.float32), np.zeros(t), 10.0))
