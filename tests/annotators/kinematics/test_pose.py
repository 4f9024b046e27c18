"""Declared rotation representations → one canonical pose; joint angles → pose by forward kinematics."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from annotators.kinematics import PoseError, state_to_pose, validate_rotation
from annotators.kinematics.forward import ForwardKinematics
from datasets_cards import CardError

# A turn about z at 1 rad/s (through ±π, where Euler angles wrap) while tilting about x.
T = 40
YAW = np.linspace(2.5, 4.5, T)
ROLL = np.linspace(0.0, 0.3, T)
TRUE = Rotation.from_euler("xyz", np.stack([ROLL, np.zeros(T), YAW], axis=1))
XYZ = np.stack([np.linspace(0, 0.2, T), np.zeros(T), np.linspace(0.1, 0.3, T)], axis=1)


def angular_steps(pose: np.ndarray) -> np.ndarray:
    rotations = Rotation.from_euler("xyz", pose[:, 3:6])
    return (rotations[:-1].inv() * rotations[1:]).magnitude()


@pytest.mark.parametrize("rotation, orientation", [
    ("quat_xyzw", TRUE.as_quat()),
    ("quat_wxyz", TRUE.as_quat(scalar_first=True)),
    ("rotvec", TRUE.as_rotvec()),
    ("euler_XYZ", TRUE.as_euler("XYZ")),
    ("euler_xyz", TRUE.as_euler("xyz")),
])
def test_every_representation_gives_the_same_pose(rotation, orientation):
    pose = state_to_pose(np.concatenate([XYZ, orientation], axis=1), rotation)
    assert pose.shape == (T, 6)
    np.testing.assert_allclose(pose[:, :3], XYZ)
    assert (Rotation.from_euler("xyz", pose[:, 3:]) * TRUE.inv()).magnitude().max() < 1e-9
    np.testing.assert_allclose(angular_steps(pose), angular_steps(np.concatenate([XYZ, TRUE.as_euler("xyz")], 1)),
                               atol=1e-9)


def test_angles_are_unwrapped_so_differences_never_jump():
    pose = state_to_pose(np.concatenate([XYZ, TRUE.as_quat()], axis=1), "quat_xyzw")
    assert np.abs(np.diff(pose[:, 3:], axis=0)).max() < 0.2  # the yaw passes π without a 2π step


def test_quaternion_dims_are_not_read_as_euler_angles():
    """The defect on Fractal: reading qx, qy, qz as roll, pitch, yaw invents rotation."""
    yaw = np.linspace(1.5, 1.6, 5)  # turning slowly about z, nothing else
    state = np.concatenate([np.zeros((5, 3)), Rotation.from_euler("z", yaw[:, None]).as_quat()], axis=1)
    pose = state_to_pose(state, "quat_xyzw")
    np.testing.assert_allclose(pose[:, 5], yaw, atol=1e-9)
    np.testing.assert_allclose(pose[:, 3:5], 0.0, atol=1e-9)


def test_bad_declarations_and_states_are_clear_errors():
    with pytest.raises(ValueError, match="unknown rotation representation 'euler_abc'"):
        validate_rotation("euler_abc")
    with pytest.raises(PoseError, match="needs 7 state dims"):
        state_to_pose(np.zeros((3, 6)), "quat_xyzw")
    with pytest.raises(PoseError, match="zero quaternion"):
        state_to_pose(np.zeros((3, 7)), "quat_wxyz")
    np.testing.assert_array_equal(state_to_pose(XYZ, "none")[:, 3:], 0.0)


PLANAR_ARM = """<?xml version="1.0"?>
<robot name="planar">
  <link name="base"/>
  <link name="upper"/>
  <link name="fore"/>
  <link name="tool"/>
  <joint name="shoulder" type="revolute">
    <parent link="base"/><child link="upper"/>
    <origin xyz="0 0 0.1"/><axis xyz="0 0 1"/><limit lower="-3.1" upper="3.1" effort="1" velocity="1"/>
  </joint>
  <joint name="elbow" type="revolute">
    <parent link="upper"/><child link="fore"/>
    <origin xyz="{l1} 0 0"/><axis xyz="0 0 1"/><limit lower="-3.1" upper="3.1" effort="1" velocity="1"/>
  </joint>
  <joint name="wrist" type="fixed">
    <parent link="fore"/><child link="tool"/><origin xyz="{l2} 0 0"/>
  </joint>
</robot>
"""
L1, L2 = 0.3, 0.2


@pytest.fixture
def planar_urdf(tmp_path):
    path = tmp_path / "planar.urdf"
    path.write_text(PLANAR_ARM.format(l1=L1, l2=L2))
    return path


def test_forward_kinematics_of_a_planar_arm_matches_the_closed_form(planar_urdf):
    pytest.importorskip("pinocchio")
    fk = ForwardKinematics(planar_urdf, "tool")
    q = np.stack([np.linspace(-1, 1, 9), np.linspace(0.5, -0.5, 9)], axis=1)
    pose = fk(q)
    np.testing.assert_allclose(pose[:, 0], L1 * np.cos(q[:, 0]) + L2 * np.cos(q.sum(1)), atol=1e-9)
    np.testing.assert_allclose(pose[:, 1], L1 * np.sin(q[:, 0]) + L2 * np.sin(q.sum(1)), atol=1e-9)
    np.testing.assert_allclose(pose[:, 2], 0.1, atol=1e-9)
    np.testing.assert_allclose(pose[:, 5], q.sum(1), atol=1e-9)  # the tool's yaw is the sum of the joints


def test_forward_kinematics_names_what_is_wrong(planar_urdf, tmp_path):
    pytest.importorskip("pinocchio")
    with pytest.raises(ValueError, match="no frame 'gripper'.*'tool'"):
        ForwardKinematics(planar_urdf, "gripper")
    with pytest.raises(CardError, match="missing.urdf"):
        ForwardKinematics(tmp_path / "missing.urdf", "tool")
    with pytest.raises(PoseError, match="2 joints"):
        ForwardKinematics(planar_urdf, "tool")(np.zeros((4, 6)))
    # fewer columns than joints: the later joints (here the elbow) stay at zero
    np.testing.assert_allclose(ForwardKinematics(planar_urdf, "tool")(np.array([[0.5]]))[0, :2],
                               [(L1 + L2) * np.cos(0.5), (L1 + L2) * np.sin(0.5)], atol=1e-9)
