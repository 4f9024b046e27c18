"""A simulated episode → RLDS episode dicts in the DROID, Bridge and Fractal step schemas.

State channels get sensor noise (the true values stay in the ground truth);
actions are what a teleoperation stack logs: the next commanded pose and
gripper, as absolute targets (DROID) or per-step deltas (Bridge, Fractal).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from pipelines.sample.generator.simulate import SimEpisode
from pipelines.sample.ground_truth import CARD_NAMES, sample_file_path


@dataclass(frozen=True)
class SensorNoise:
    """Standard deviations of the Gaussian noise added to logged state."""

    position: float = 0.0008  # m
    rotation: float = 0.002  # rad
    joint: float = 0.0008  # rad
    gripper: float = 0.004  # closure fraction


def _next(values: np.ndarray) -> np.ndarray:
    """The value one step ahead (the last step repeats itself): the commanded target."""
    return np.concatenate([values[1:], values[-1:]], axis=0)


def _flags(n: int, k: int) -> dict:
    return {"is_first": k == 0, "is_last": k == n - 1, "is_terminal": k == n - 1}


def droid_episode(sim: SimEpisode, index: int, rng: np.random.Generator, noise: SensorNoise) -> dict:
    frames = sim.schemas["droid"]
    t = frames.frame_indices
    n, fps = len(t), sim.fps
    pose = np.concatenate([sim.tool_position, sim.tool_euler], axis=1)[t]
    joints, closure = sim.joints[t], sim.closure[t]
    noisy_pose = pose + np.concatenate(
        [rng.normal(0, noise.position, (n, 3)), rng.normal(0, noise.rotation, (n, 3))], axis=1
    )
    noisy_joints = joints + rng.normal(0, noise.joint, joints.shape)
    noisy_gripper = np.clip(closure + rng.normal(0, noise.gripper, n), 0.0, 1.0)
    target_pose, target_joints, target_gripper = _next(pose), _next(joints), _next(closure)
    velocity = (target_pose - pose) * fps
    eid = sample_file_path(CARD_NAMES["droid"], index)
    steps = []
    for k in range(n):
        steps.append(
            {
                "observation": {
                    "exterior_image_1_left": frames.images["exterior_1_left"][k],
                    "exterior_image_2_left": frames.images["exterior_2_left"][k],
                    "wrist_image_left": frames.images["wrist_left"][k],
                    "cartesian_position": noisy_pose[k],
                    "gripper_position": noisy_gripper[k : k + 1],
                    "joint_position": noisy_joints[k],
                },
                "action": np.concatenate([velocity[k], target_gripper[k : k + 1]]),
                "action_dict": {
                    "cartesian_position": target_pose[k],
                    "cartesian_velocity": velocity[k],
                    "gripper_position": target_gripper[k : k + 1],
                    "gripper_velocity": (target_gripper[k : k + 1] - closure[k : k + 1]) * fps,
                    "joint_position": target_joints[k],
                    "joint_velocity": (target_joints[k] - joints[k]) * fps,
                },
                "discount": 1.0,
                "reward": float(k == n - 1),
                **_flags(n, k),
                "language_instruction": sim.task.instruction,
                "language_instruction_2": "",
                "language_instruction_3": "",
            }
        )
    return {"steps": steps, "episode_metadata": {"file_path": eid, "recording_folderpath": f"sim/{eid}"}}


def _blank_jpeg(size: tuple[int, int]) -> bytes:
    # Bridge stores absent cameras as black frames; optimised Huffman tables keep them at ~0.7 KB.
    return cv2.imencode(".jpg", np.zeros((*size, 3), np.uint8), [cv2.IMWRITE_JPEG_OPTIMIZE, 1])[1].tobytes()


def bridge_episode(sim: SimEpisode, index: int, rng: np.random.Generator, noise: SensorNoise) -> dict:
    frames = sim.schemas["bridge"]
    t = frames.frame_indices
    n = len(t)
    pose = np.concatenate([sim.tool_position, sim.tool_euler], axis=1)[t]
    opening = 1.0 - sim.closure[t]  # Bridge logs the gripper as 1 = open
    noisy = pose + np.concatenate([rng.normal(0, noise.position, (n, 3)), rng.normal(0, noise.rotation, (n, 3))], axis=1)
    noisy_opening = np.clip(opening + rng.normal(0, noise.gripper, n), 0.0, 1.0)
    delta = _next(pose) - pose
    blank = _blank_jpeg(_image_size(frames.images["image_0"][0]))
    steps = []
    for k in range(n):
        steps.append(
            {
                "observation": {
                    "image_0": frames.images["image_0"][k],
                    "image_1": blank,
                    "image_2": blank,
                    "image_3": blank,
                    "state": np.concatenate([noisy[k], noisy_opening[k : k + 1]]).astype(np.float32),
                },
                "action": np.concatenate([delta[k], _next(opening)[k : k + 1]]).astype(np.float32),
                "discount": 1.0,
                "reward": float(k == n - 1),
                **_flags(n, k),
                "language_instruction": sim.task.instruction,
            }
        )
    metadata = {
        "file_path": sample_file_path(CARD_NAMES["bridge"], index),
        "episode_id": index,
        "has_image_0": True,
        "has_image_1": False,
        "has_image_2": False,
        "has_image_3": False,
        "has_language": True,
    }
    return {"steps": steps, "episode_metadata": metadata}


def fractal_episode(sim: SimEpisode, index: int, rng: np.random.Generator, noise: SensorNoise) -> dict:
    frames = sim.schemas["fractal"]
    t = frames.frame_indices
    n = len(t)
    position, quaternion, closure = sim.tool_position[t], sim.tool_quaternion[t], sim.closure[t]
    noisy_position = position + rng.normal(0, noise.position, (n, 3))
    noisy_closure = np.clip(closure + rng.normal(0, noise.gripper, n), 0.0, 1.0)
    world = _next(position) - position
    rotation = _next(sim.tool_euler[t]) - sim.tool_euler[t]
    commanded = _next(closure)
    # RT-1 logs the gripper command as +1 close / -1 open / 0 hold.
    gripper_action = np.sign(np.round(commanded - closure, 3))
    zeros = lambda *shape: np.zeros(shape, np.float32)  # noqa: E731
    f32 = lambda x: np.asarray(x, np.float32)  # noqa: E731
    steps = []
    for k in range(n):
        steps.append(
            {
                "observation": {
                    "image": frames.images["image"][k],
                    "base_pose_tool_reached": f32(np.concatenate([noisy_position[k], quaternion[k]])),
                    "gripper_closed": f32([noisy_closure[k]]),
                    "gripper_closedness_commanded": f32([commanded[k]]),
                    "height_to_bottom": f32([position[k, 2]]),
                    "natural_language_embedding": zeros(512),  # no sentence encoder offline
                    "natural_language_instruction": sim.task.instruction,
                    "orientation_box": zeros(2, 3),
                    "orientation_start": f32(quaternion[0]),
                    "robot_orientation_positions_box": zeros(3, 3),
                    "rotation_delta_to_go": zeros(3),
                    "src_rotation": f32(quaternion[0]),
                    "vector_to_go": f32(position[-1] - position[k]),
                    "workspace_bounds": zeros(3, 3),
                },
                "action": {
                    "base_displacement_vector": zeros(2),
                    "base_displacement_vertical_rotation": zeros(1),
                    "gripper_closedness_action": f32([gripper_action[k]]),
                    "rotation_delta": f32(rotation[k]),
                    "terminate_episode": np.array([1, 0, 0] if k == n - 1 else [0, 1, 0], np.int32),
                    "world_vector": f32(world[k]),
                },
                "reward": float(k == n - 1),
                **_flags(n, k),
            }
        )
    return {"steps": steps}


def _image_size(jpeg: bytes) -> tuple[int, int]:
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    return image.shape[0], image.shape[1]


EXPORTERS: dict[str, Callable[[SimEpisode, int, np.random.Generator, SensorNoise], dict]] = {
    "droid": droid_episode,
    "bridge": bridge_episode,
    "fractal": fractal_episode,
}
