"""Camera rigs of the three schemas, per-episode jitter, and rendering to RGB + segmentation.

Each schema renders its own cameras at its own rate from the same simulated
episode: DROID's two exterior tripod cameras and the wrist camera on the hand,
Bridge's over-the-shoulder camera, Fractal's head camera.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pybullet as p

from pipelines.sample.generator.scene import GRIPPER_LINKS, HAND_LINK, Scene

_LINK_SHIFT = 24  # pybullet packs (link + 1) << 24 | body id into the segmentation buffer


@dataclass(frozen=True)
class CameraRig:
    """A fixed camera (eye, target) or one attached to the hand (`wrist`)."""

    name: str  # the camera's name in the source card, e.g. exterior_1_left
    eye: tuple[float, float, float] = (0.0, 0.0, 0.0)
    target: tuple[float, float, float] = (0.0, 0.0, 0.0)
    fov: float = 55.0  # vertical field of view, degrees
    wrist: bool = False
    jitter: float = 0.03  # m, per-episode uniform jitter of eye and target


@dataclass(frozen=True)
class Pose:
    eye: np.ndarray
    target: np.ndarray
    up: np.ndarray


# Camera rigs by schema; names match the sample cards' camera names.
RIGS: dict[str, tuple[CameraRig, ...]] = {
    "droid": (
        CameraRig("exterior_1_left", eye=(0.6, -0.5, 0.42), target=(0.48, 0.04, 0.02), fov=58),
        CameraRig("exterior_2_left", eye=(0.68, 0.48, 0.45), target=(0.46, -0.04, 0.02), fov=58),
        CameraRig("wrist_left", wrist=True, fov=75, jitter=0.0),
    ),
    "bridge": (CameraRig("image_0", eye=(-0.12, 0.38, 0.55), target=(0.52, -0.02, 0.0), fov=52),),
    "fractal": (CameraRig("image", eye=(0.02, -0.25, 0.72), target=(0.6, 0.02, 0.0), fov=50),),
}


def jittered(rig: CameraRig, rng: np.random.Generator) -> CameraRig:
    """The rig moved by this episode's tripod placement noise."""
    if rig.wrist or rig.jitter == 0:
        return rig
    eye = tuple(np.add(rig.eye, rng.uniform(-rig.jitter, rig.jitter, 3)).tolist())
    target = tuple(np.add(rig.target, rng.uniform(-rig.jitter, rig.jitter, 3) * 0.6).tolist())
    return CameraRig(rig.name, eye, target, rig.fov + float(rng.uniform(-3, 3)), rig.wrist, rig.jitter)


def camera_pose(rig: CameraRig, scene: Scene) -> Pose:
    if not rig.wrist:
        return Pose(np.array(rig.eye), np.array(rig.target), np.array([0.0, 0.0, 1.0]))
    # A wrist camera (DROID's ZED mini) sits behind the hand, offset along the hand's x
    # axis, looking down the fingers so both fingertips stay in view.
    position, orientation = p.getLinkState(scene.robot, HAND_LINK, computeForwardKinematics=True)[4:6]
    rotation = np.array(p.getMatrixFromQuaternion(orientation)).reshape(3, 3)
    x_axis, z_axis = rotation[:, 0], rotation[:, 2]
    eye = np.array(position) + 0.1 * x_axis + 0.01 * z_axis
    target = np.array(position) + 0.3 * z_axis + 0.02 * x_axis
    return Pose(eye, target, x_axis)


def render(rig: CameraRig, scene: Scene, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """RGB uint8 H×W×3 and the raw segmentation buffer H×W (int32) of one camera."""
    height, width = size
    pose = camera_pose(rig, scene)
    view = p.computeViewMatrix(pose.eye.tolist(), pose.target.tolist(), pose.up.tolist())
    projection = p.computeProjectionMatrixFOV(rig.fov, width / height, 0.01, 6.0)
    _, _, rgba, _, seg = p.getCameraImage(
        width,
        height,
        view,
        projection,
        renderer=p.ER_TINY_RENDERER,
        flags=p.ER_SEGMENTATION_MASK_OBJECT_AND_LINKINDEX,
        lightDirection=[0.6, -0.4, 2.0],
        shadow=0,  # shadows double the cost of every frame
        lightAmbientCoeff=0.55,
        lightDiffuseCoeff=0.45,
        lightSpecularCoeff=0.05,
    )
    rgb = np.ascontiguousarray(np.reshape(rgba, (height, width, 4))[..., :3], dtype=np.uint8)
    return rgb, np.reshape(seg, (height, width)).astype(np.int64)


def body_mask(seg: np.ndarray, body_id: int) -> np.ndarray:
    """Visible pixels of a body (all its links)."""
    return (seg >= 0) & ((seg & ((1 << _LINK_SHIFT) - 1)) == body_id)


def gripper_mask(seg: np.ndarray, robot_id: int) -> np.ndarray:
    """Visible pixels of the hand and both fingers."""
    links = (seg >> _LINK_SHIFT) - 1
    return body_mask(seg, robot_id) & np.isin(links, GRIPPER_LINKS)
