"""Small synthetic RLDS datasets in the published schemas, for tests and benchmarks.

`write_synthetic_rlds(root, "bridge", n_episodes=3, n_steps=8)` writes a real
TFDS dataset whose steps follow the exact published feature spec (see
schemas.py) with a plausible signal: a smooth end-effector path, a gripper
that closes in the middle third of the episode (stored in each dataset's own
convention), and frames showing a coloured square that moves with the arm.
`faults` injects the defects the readers must quarantine, by episode index:

- "nan_state": NaN in the arm state of one step;
- "empty_instruction": an empty language instruction;
- "corrupt_first_frame" / "corrupt_late_frame": bytes that are not an image,
  at step 0 or at the last step of every camera;
- "truncated_late_frame" / "empty_late_frame" / "wrong_size_late_frame": at the last step of every
  camera, the first half of the frame's JPEG, no bytes at all, or a valid JPEG of half the size;
- "zero_steps": an episode with no steps;
- "invalid_utf8_instruction": an instruction whose bytes are not UTF-8 (`INVALID_UTF8_INSTRUCTION`);
- "state_spike": a finite but absurd arm-state value (`STATE_SPIKE`, 3e38) at the middle step;
- "gripper_beyond_closed": the closed steps store `GRIPPER_BEYOND_CLOSED` (1.25 closedness) in the
  dataset's own convention, past the card's closed value, so normalising clips them.

Deterministic for a given seed. Not a simulator: the embedded sample
(sample-data) is the realistic dataset.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.formats.rlds.writer import write_rlds
from pipelines.sample.generator.rlds_schemas import ImageSize, RldsSchema, rlds_schema

FAULTS = ("nan_state", "empty_instruction", "corrupt_first_frame", "corrupt_late_frame", "zero_steps",
          "invalid_utf8_instruction", "state_spike", "gripper_beyond_closed",
          "truncated_late_frame", "empty_late_frame", "wrong_size_late_frame")
LATE_FRAME_FAULTS = ("corrupt_late_frame", "truncated_late_frame", "empty_late_frame", "wrong_size_late_frame")
INVALID_UTF8_INSTRUCTION = b"pick up the \xff\xfe cube"  # 0xff never occurs in UTF-8
STATE_SPIKE = 3e38  # finite in float32 (max 3.4e38)
GRIPPER_BEYOND_CLOSED = 1.25  # closedness past fully closed (1)
NOT_AN_IMAGE = b"this is not a jpeg"
INSTRUCTIONS = ("pick up the red cube", "put the green block in the bowl", "push the blue cup to the left")
# Dataset folder names used by the published releases (what the source cards point at).
DATASET_NAMES = {"droid": "droid", "bridge": "bridge_orig", "fractal": "fractal20220817_data"}
VERSIONS = {"droid": "1.0.1", "bridge": "1.0.0", "fractal": "0.1.0"}


def synthetic_trajectory(n_steps: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Pose T×6 (xyz, rpy), gripper closedness T in [0, 1] (1 = closed)."""
    t = np.linspace(0.0, 1.0, max(n_steps, 1))[:n_steps]
    start = rng.uniform(-0.2, 0.2, 3) + np.array([0.5, 0.0, 0.3])
    xyz = start + np.stack([0.1 * t, 0.05 * np.sin(np.pi * t), -0.1 * np.sin(np.pi * t)], axis=1)
    rpy = np.stack([np.pi + 0 * t, 0.1 * t, 0.3 * np.sin(np.pi * t)], axis=1)
    closed = ((t >= 1 / 3) & (t < 2 / 3)).astype(np.float64)
    return {"pose": np.concatenate([xyz, rpy], axis=1), "closed": closed}


def synthetic_frame(size: ImageSize, step: int, n_steps: int, camera: int) -> np.ndarray:
    """A uint8 H×W×3 frame: flat background per camera, a square that moves with the step."""
    h, w = size
    frame = np.empty((h, w, 3), dtype=np.uint8)
    frame[:] = (40 + 60 * camera, 90, 140 - 30 * camera)
    side = max(2, min(h, w) // 5)
    x = int((w - side) * step / max(n_steps - 1, 1))
    y = (h - side) // 2
    frame[y : y + side, x : x + side] = (220, 40, 40)
    return frame


def _quaternion_xyzw(rpy: np.ndarray) -> np.ndarray:
    r, p, y = rpy / 2
    cr, sr, cp, sp, cy, sy = np.cos(r), np.sin(r), np.cos(p), np.sin(p), np.cos(y), np.sin(y)
    return np.array(
        [sr * cp * cy - cr * sp * sy, cr * sp * cy + sr * cp * sy, cr * cp * sy - sr * sp * cy, cr * cp * cy + sr * sp * sy]
    )


def _flags(t: int, n: int) -> dict[str, Any]:
    return {"is_first": t == 0, "is_last": t == n - 1, "is_terminal": t == n - 1}


def _droid_episode(i: int, traj, frames, instruction: str | bytes, image_size: ImageSize) -> dict[str, Any]:
    pose, closed = traj["pose"], traj["closed"]
    n = len(pose)
    nxt = np.concatenate([pose[1:], pose[-1:]]) if n else pose
    joints = np.zeros((n, 7)) + np.linspace(-1, 1, 7)
    steps = []
    for t in range(n):
        g = np.array([closed[t]])
        steps.append(
            {
                "observation": {
                    "exterior_image_1_left": frames(t, 0),
                    "exterior_image_2_left": frames(t, 1),
                    "wrist_image_left": frames(t, 2),
                    "cartesian_position": pose[t],
                    "gripper_position": g,
                    "joint_position": joints[t],
                },
                "action": np.concatenate([nxt[t], g]),
                "action_dict": {
                    "cartesian_position": nxt[t],
                    "cartesian_velocity": nxt[t] - pose[t],
                    "gripper_position": g,
                    "gripper_velocity": np.zeros(1),
                    "joint_position": joints[t],
                    "joint_velocity": np.zeros(7),
                },
                "discount": 1.0,
                "reward": float(t == n - 1),
                **_flags(t, n),
                "language_instruction": instruction,
                "language_instruction_2": instruction,
                "language_instruction_3": "",
            }
        )
    folder = f"/synthetic/droid/success/episode_{i:06d}"
    return {"steps": steps, "episode_metadata": {"file_path": f"{folder}/trajectory.h5", "recording_folderpath": f"{folder}/recordings/MP4"}}


def _bridge_episode(i: int, traj, frames, instruction: str | bytes, image_size: ImageSize) -> dict[str, Any]:
    pose, closed = traj["pose"], traj["closed"]
    n = len(pose)
    opened = 1.0 - closed  # Bridge: 1 = open
    blank = np.zeros((*image_size, 3), np.uint8)  # bridge_orig pads absent cameras with black frames
    steps = []
    for t in range(n):
        delta = pose[min(t + 1, n - 1)] - pose[t]
        steps.append(
            {
                "observation": {"image_0": frames(t, 0), "image_1": blank, "image_2": blank, "image_3": blank,
                                "state": np.concatenate([pose[t], [opened[t]]]).astype(np.float32)},
                "action": np.concatenate([delta, [opened[t]]]).astype(np.float32),
                "discount": 1.0,
                "reward": float(t == n - 1),
                **_flags(t, n),
                "language_instruction": instruction,
            }
        )
    # As in real Bridge: trajectories recorded into one out.npy share its file_path, and episode_id
    # numbers them inside that file, so only the pair identifies an episode.
    metadata = {"file_path": f"/synthetic/bridge/raw/folder{i // 2}/out.npy", "episode_id": i % 2, "has_image_0": True,
                "has_image_1": False, "has_image_2": False, "has_image_3": False, "has_language": bool(instruction)}
    return {"steps": steps, "episode_metadata": metadata}


def _fractal_episode(i: int, traj, frames, instruction: str | bytes, image_size: ImageSize) -> dict[str, Any]:
    pose, closed = traj["pose"], traj["closed"]
    n = len(pose)
    f32 = np.float32
    embedding = np.random.default_rng(zlib.crc32(instruction if isinstance(instruction, bytes) else instruction.encode())).normal(size=512).astype(f32)
    steps = []
    for t in range(n):
        delta = pose[min(t + 1, n - 1)] - pose[t]
        steps.append(
            {
                "observation": {
                    "image": frames(t, 0),
                    "base_pose_tool_reached": np.concatenate([pose[t, :3], _quaternion_xyzw(pose[t, 3:])]).astype(f32),
                    "gripper_closed": np.array([closed[t]], f32),
                    "gripper_closedness_commanded": np.array([closed[t]], f32),
                    "height_to_bottom": np.array([pose[t, 2]], f32),
                    "natural_language_embedding": embedding,
                    "natural_language_instruction": instruction,
                    "orientation_box": np.zeros((2, 3), f32),
                    "orientation_start": np.array([0, 0, 0, 1], f32),
                    "robot_orientation_positions_box": np.zeros((3, 3), f32),
                    "rotation_delta_to_go": np.zeros(3, f32),
                    "src_rotation": np.array([0, 0, 0, 1], f32),
                    "vector_to_go": np.zeros(3, f32),
                    "workspace_bounds": np.zeros((3, 3), f32),
                },
                "action": {
                    "base_displacement_vector": np.zeros(2, f32),
                    "base_displacement_vertical_rotation": np.zeros(1, f32),
                    "gripper_closedness_action": np.array([2 * closed[t] - 1], f32),  # 1 close, -1 open
                    "rotation_delta": delta[3:].astype(f32),
                    "terminate_episode": np.array([1, 0, 0] if t == n - 1 else [0, 1, 0], np.int32),
                    "world_vector": delta[:3].astype(f32),
                },
                "reward": float(t == n - 1),
                **_flags(t, n),
            }
        )
    return {"steps": steps}


_EPISODE_BUILDERS: dict[str, Callable[..., dict[str, Any]]] = {
    "droid": _droid_episode,
    "bridge": _bridge_episode,
    "fractal": _fractal_episode,
}


def synthetic_episodes(
    schema: RldsSchema,
    n_episodes: int,
    n_steps: int,
    *,
    seed: int = 0,
    faults: Mapping[int, str] | None = None,
) -> Iterator[dict[str, Any]]:
    """Yield RLDS episode dicts in `schema`'s layout (see module docstring for `faults`)."""
    faults = dict(faults or {})
    unknown = sorted(set(faults.values()) - set(FAULTS))
    if unknown:
        raise ValueError(f"unknown faults {unknown}; known: {FAULTS}")
    image_size = _image_size(schema)
    build = _EPISODE_BUILDERS[schema.name]
    rng = np.random.default_rng(seed)
    for i in range(n_episodes):
        fault = faults.get(i)
        length = 0 if fault == "zero_steps" else n_steps
        traj = synthetic_trajectory(length, rng)
        if fault == "nan_state":
            traj["pose"][length // 2, 0] = np.nan
        elif fault == "state_spike":
            traj["pose"][length // 2, 2] = STATE_SPIKE
        elif fault == "gripper_beyond_closed":
            traj["closed"][traj["closed"] == 1] = GRIPPER_BEYOND_CLOSED
        corrupt_step = 0 if fault == "corrupt_first_frame" else length - 1 if fault in LATE_FRAME_FAULTS else None

        def frames(t: int, camera: int, _corrupt=corrupt_step, _n=length, _fault=fault) -> np.ndarray | bytes:
            if t != _corrupt:
                return synthetic_frame(image_size, t, _n, camera)
            return _bad_frame(_fault, synthetic_frame(image_size, t, _n, camera))

        instruction: str | bytes = INSTRUCTIONS[i % len(INSTRUCTIONS)]
        if fault == "empty_instruction":
            instruction = ""
        elif fault == "invalid_utf8_instruction":
            instruction = INVALID_UTF8_INSTRUCTION
        yield build(i, traj, frames, instruction, image_size)


def _bad_frame(fault: str, frame: np.ndarray) -> bytes:
    """The encoded bytes a frame fault stores in place of `frame`."""
    from datasets_cards.codecs import encode_jpeg

    if fault == "truncated_late_frame":
        data = encode_jpeg(frame)
        return data[: len(data) // 2]
    if fault == "empty_late_frame":
        return b""
    if fault == "wrong_size_late_frame":
        return encode_jpeg(frame[::2, ::2])
    return NOT_AN_IMAGE


def _image_size(schema: RldsSchema) -> ImageSize:
    import tensorflow_datasets as tfds

    obs = schema.steps["observation"]
    for feature in obs.values():
        if isinstance(feature, tfds.features.Image):
            return tuple(feature.shape[:2])  # type: ignore[return-value]
    raise ValueError(f"schema {schema.name!r} has no image feature")


def write_synthetic_rlds(
    root: str | os.PathLike,
    schema: str,
    n_episodes: int = 3,
    n_steps: int = 8,
    *,
    image_size: ImageSize | None = (32, 48),
    seed: int = 0,
    faults: Mapping[int, str] | None = None,
    num_shards: int | None = None,
) -> Path:
    """Write a synthetic dataset in published schema `schema` under `root`; return the version dir.

    The folder is `root/<published name>/<published version>/` (e.g.
    `root/bridge_orig/1.0.0`), so `root/<published name>` works as a card
    `location` too. image_size=None uses the published image size.
    """
    spec = rlds_schema(schema, image_size)
    episodes = synthetic_episodes(spec, n_episodes, n_steps, seed=seed, faults=faults)
    if num_shards is not None:  # contiguous shards need the count up front
        episodes = list(episodes)
    return write_rlds(
        root,
        DATASET_NAMES[schema],
        spec.steps,
        episodes,
        episode_metadata_features=spec.episode_metadata,
        version=VERSIONS[schema],
        description=f"synthetic data in the published {schema} RLDS schema (tests, benchmarks)",
        num_shards=num_shards,
    )
