"""The simulated tabletop: a Franka Panda, a table, graspable objects, a destination, distractors.

Everything is kinematic (poses are set, not integrated): the episodes are
scripted, so physics would only add non-determinism and cost. The world frame
is the robot base frame (x forward, y left, z up, table top at z = 0), which
is the frame DROID's `cartesian_position` is expressed in.

Rendering uses pybullet's software renderer (headless, no GPU). The Panda is
drawn with its low-poly collision meshes: the visual meshes have ~100 k
triangles and made every frame four times slower without looking different
at 320×180.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pybullet as p
import pybullet_data

# Panda link indices (panda.urdf in pybullet_data).
ARM_JOINTS = tuple(range(7))
HAND_LINK = 8
FINGER_JOINTS = (9, 10)
GRASP_LINK = 11  # panda_grasptarget, between the fingertips
GRIPPER_LINKS = (HAND_LINK, *FINGER_JOINTS)  # what counts as "the gripper" in masks
FINGER_TRAVEL = 0.04  # m per finger: 0.08 m fully open
HOME_JOINTS = (0.0, -0.5, 0.0, -2.2, 0.0, 1.75, 0.785)

TABLE_EXTENT = ((-0.6, 1.6), (-1.2, 1.2))  # x and y range of the table top (m)
TABLE_THICKNESS = 0.04

COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.85, 0.12, 0.1),
    "green": (0.15, 0.65, 0.2),
    "blue": (0.12, 0.3, 0.85),
    "yellow": (0.95, 0.85, 0.1),
    "orange": (0.95, 0.5, 0.08),
    "purple": (0.55, 0.2, 0.7),
    "pink": (0.95, 0.45, 0.65),
    "white": (0.92, 0.92, 0.9),
}


@dataclass(frozen=True)
class ObjectKind:
    """A graspable object family: its noun and its size range (m)."""

    noun: str
    shape: str  # box | cylinder | sphere
    size: tuple[float, float]  # width range (box side, cylinder/sphere diameter)
    height_ratio: float = 1.0  # height / width


OBJECT_KINDS: tuple[ObjectKind, ...] = (
    ObjectKind("cube", "box", (0.045, 0.055)),
    ObjectKind("block", "box", (0.04, 0.05), 1.5),
    ObjectKind("can", "cylinder", (0.045, 0.055), 1.7),
    ObjectKind("ball", "sphere", (0.05, 0.06)),
    ObjectKind("button", "cylinder", (0.06, 0.07), 0.35),  # only pressed, never grasped
)

DESTINATION_NOUNS = ("bowl", "plate", "tray")


@dataclass
class Body:
    """A body in the scene and what the ground truth needs to know about it."""

    name: str  # e.g. "red cube"
    body_id: int
    half_height: float  # resting height of its centre above the surface it stands on
    width: float
    position: np.ndarray = field(default_factory=lambda: np.zeros(3))
    yaw: float = 0.0

    def set_pose(self, position: np.ndarray, orientation: np.ndarray | None = None) -> None:
        self.position = np.asarray(position, dtype=float)
        if orientation is None:
            orientation = p.getQuaternionFromEuler([0.0, 0.0, self.yaw])
        p.resetBasePositionAndOrientation(self.body_id, self.position.tolist(), list(orientation))


def _lowpoly_panda_urdf(directory: Path) -> Path:
    source = Path(pybullet_data.getDataPath()) / "franka_panda"
    text = (source / "panda.urdf").read_text()
    collision = f"{source}/meshes/collision/"
    text = text.replace("package://meshes/visual/", collision).replace("package://meshes/collision/", collision)
    path = directory / "panda_lowpoly.urdf"
    path.write_text(text)
    return path


class Scene:
    """One pybullet DIRECT world; build once per worker and `reset` per episode."""

    def __init__(self) -> None:
        self.client = p.connect(p.DIRECT)
        if self.client != 0:  # the generator's pybullet calls name no client: they all go to client 0
            p.disconnect(self.client)
            raise RuntimeError("another pybullet world is open in this process: close it (Scene.close) before "
                               "building a Scene")
        self._tmp = tempfile.TemporaryDirectory(prefix="sample-scene-")
        # One large table top fills every view: big faces and a floor cost the software
        # renderer more than the whole robot, so the scene is the table and what is on it.
        (x0, x1), (y0, y1) = TABLE_EXTENT
        self.table = self._box(
            half=((x1 - x0) / 2, (y1 - y0) / 2, TABLE_THICKNESS / 2),
            pos=((x0 + x1) / 2, (y0 + y1) / 2, -TABLE_THICKNESS / 2),
            rgba=(0.62, 0.47, 0.33, 1),
        )
        urdf = _lowpoly_panda_urdf(Path(self._tmp.name))
        self.robot = p.loadURDF(str(urdf), [0, 0, 0], useFixedBase=True)
        for link in range(-1, p.getNumJoints(self.robot)):
            grey = link in (-1, 7) or link in FINGER_JOINTS
            p.changeVisualShape(self.robot, link, rgbaColor=(0.25, 0.25, 0.27, 1) if grey else (0.93, 0.93, 0.93, 1))
        self.objects: list[Body] = []
        self.destination: Body | None = None
        self.set_joints(np.array(HOME_JOINTS), 0.0)

    # -- building -------------------------------------------------------------------------
    def _box(self, half, pos, rgba) -> int:
        shape = p.createVisualShape(p.GEOM_BOX, halfExtents=list(half), rgbaColor=list(rgba))
        return p.createMultiBody(0, -1, shape, list(pos))

    def clear(self) -> None:
        for body in [*self.objects, *([self.destination] if self.destination else [])]:
            p.removeBody(body.body_id)
        self.objects, self.destination = [], None

    def add_object(self, kind: ObjectKind, colour: str, width: float, xy, yaw: float) -> Body:
        rgba = (*COLOURS[colour], 1.0)
        height = width * kind.height_ratio
        if kind.shape == "box":
            shape = p.createVisualShape(p.GEOM_BOX, halfExtents=[width / 2, width / 2, height / 2], rgbaColor=rgba)
        elif kind.shape == "cylinder":
            shape = p.createVisualShape(p.GEOM_CYLINDER, radius=width / 2, length=height, rgbaColor=rgba)
        else:
            shape = p.createVisualShape(p.GEOM_SPHERE, radius=width / 2, rgbaColor=rgba)
        body = Body(f"{colour} {kind.noun}", p.createMultiBody(0, -1, shape, [0, 0, 0]), height / 2, width)
        body.yaw = yaw
        body.set_pose(np.array([xy[0], xy[1], height / 2]))
        self.objects.append(body)
        return body

    def add_destination(self, noun: str, colour: str, xy) -> Body:
        rgba = [*COLOURS[colour], 1.0]
        if noun == "plate":
            radius, surface = 0.085, 0.012
            shape = p.createVisualShape(p.GEOM_CYLINDER, radius=radius, length=0.012, rgbaColor=rgba)
            centre_z = 0.006
        elif noun == "bowl":
            radius, surface, centre_z = 0.075, 0.006, 0.0
            shape = _ring_shape(radius, wall_height=0.045, flare=0.35, segments=18)
        else:  # tray: a shallow square bin
            radius, surface, centre_z = 0.1, 0.008, 0.0
            shape = _ring_shape(radius, wall_height=0.03, flare=0.0, segments=4)
        body_id = p.createMultiBody(0, -1, shape, [xy[0], xy[1], centre_z])
        p.changeVisualShape(body_id, -1, rgbaColor=rgba)
        self.destination = Body(f"{colour} {noun}", body_id, surface, 2 * radius, np.array([xy[0], xy[1], centre_z]))
        return self.destination

    # -- robot ----------------------------------------------------------------------------
    def set_joints(self, arm: np.ndarray, finger_gap: float) -> None:
        for j, q in zip(ARM_JOINTS, arm):
            p.resetJointState(self.robot, j, float(q))
        for j in FINGER_JOINTS:
            p.resetJointState(self.robot, j, float(finger_gap) / 2)

    def joints(self) -> np.ndarray:
        return np.array([p.getJointState(self.robot, j)[0] for j in ARM_JOINTS])

    def grasp_pose(self) -> tuple[np.ndarray, np.ndarray]:
        state = p.getLinkState(self.robot, GRASP_LINK, computeForwardKinematics=True)
        return np.array(state[4]), np.array(state[5])

    def hand_pose(self) -> tuple[np.ndarray, np.ndarray]:
        state = p.getLinkState(self.robot, HAND_LINK, computeForwardKinematics=True)
        return np.array(state[4]), np.array(state[5])

    def solve_ik(self, position: np.ndarray, orientation: np.ndarray, iterations: int = 3) -> np.ndarray:
        """Joint angles putting the grasp frame at the pose; refined from the current joints."""
        for _ in range(iterations):
            q = p.calculateInverseKinematics(
                self.robot,
                GRASP_LINK,
                position.tolist(),
                orientation.tolist(),
                lowerLimits=[-2.9, -1.76, -2.9, -3.07, -2.9, -0.02, -2.9],
                upperLimits=[2.9, 1.76, 2.9, -0.07, 2.9, 3.75, 2.9],
                jointRanges=[5.8, 3.5, 5.8, 3.0, 5.8, 3.8, 5.8],
                restPoses=list(HOME_JOINTS),
                maxNumIterations=200,
                residualThreshold=1e-5,
            )
            arm = np.array(q[:7])
            for j, angle in zip(ARM_JOINTS, arm):
                p.resetJointState(self.robot, j, float(angle))
        return arm

    def close(self) -> None:
        p.disconnect(self.client)
        self._tmp.cleanup()


def _ring_shape(radius: float, wall_height: float, flare: float, segments: int) -> int:
    """A bowl (many flared wall segments) or a tray (four straight walls) with a floor."""
    types, halves, radii, lengths, positions, orientations = [], [], [], [], [], []
    for k in range(segments):
        angle = 2 * math.pi * k / segments
        chord = 2 * radius * math.tan(math.pi / segments) * (1.0 if segments == 4 else 1.15)
        types.append(p.GEOM_BOX)
        halves.append([0.004, chord / 2, wall_height / 2])
        radii.append(0.0)
        lengths.append(0.0)
        r = radius + math.sin(flare) * wall_height / 2
        positions.append([r * math.cos(angle), r * math.sin(angle), wall_height / 2])
        orientations.append(p.getQuaternionFromEuler([0.0, -flare, angle]))
    if segments == 4:
        types.append(p.GEOM_BOX)
        halves.append([radius, radius, 0.004])
        orientations.append(p.getQuaternionFromEuler([0, 0, 0]))
    else:
        types.append(p.GEOM_CYLINDER)
        halves.append([0, 0, 0])
        orientations.append([0, 0, 0, 1])
    radii.append(radius)
    lengths.append(0.008)
    positions.append([0.0, 0.0, 0.004])
    return p.createVisualShapeArray(
        shapeTypes=types,
        halfExtents=halves,
        radii=radii,
        lengths=lengths,
        visualFramePositions=positions,
        visualFrameOrientations=orientations,
    )
