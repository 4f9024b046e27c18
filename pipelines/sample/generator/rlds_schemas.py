"""The published RLDS feature specs of the corpora we read, as TFDS feature dicts.

Each `*_step_features` function returns the `steps` feature dict and each
`*_episode_metadata_features` the `episode_metadata` dict (None where the
published dataset has none), exactly as the public releases declare them:

- DROID 1.0.1 (droid-dataset.github.io, "Dataset Format"; TFDS catalog `droid`);
- Bridge "bridge_orig" (the OpenVLA/Octo RLDS conversion of BridgeData V2);
- Fractal, `fractal20220817_data` 0.1.0 (Open X-Embodiment, TFDS catalog).

Image sizes are parameters so tests can write tiny frames; the defaults are
the published sizes. `RLDS_SCHEMAS[name](image_size)` returns both dicts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipelines.formats.rlds.tf_setup import quiet_tensorflow

quiet_tensorflow()

import tensorflow_datasets as tfds  # noqa: E402

ImageSize = tuple[int, int]  # (height, width)

DROID_IMAGE_SIZE: ImageSize = (180, 320)
BRIDGE_IMAGE_SIZE: ImageSize = (256, 256)
FRACTAL_IMAGE_SIZE: ImageSize = (256, 320)


def _image(size: ImageSize) -> tfds.features.Image:
    return tfds.features.Image(shape=(*size, 3), dtype=np.uint8, encoding_format="jpeg")


def _tensor(shape: tuple[int, ...], dtype=np.float32) -> tfds.features.Tensor:
    return tfds.features.Tensor(shape=shape, dtype=dtype)


def _rlds_flags() -> dict[str, Any]:
    return {
        "is_first": tfds.features.Scalar(dtype=np.bool_),
        "is_last": tfds.features.Scalar(dtype=np.bool_),
        "is_terminal": tfds.features.Scalar(dtype=np.bool_),
    }


def droid_step_features(image_size: ImageSize = DROID_IMAGE_SIZE) -> dict[str, Any]:
    f64 = np.float64
    return {
        "observation": {
            "exterior_image_1_left": _image(image_size),
            "exterior_image_2_left": _image(image_size),
            "wrist_image_left": _image(image_size),
            "cartesian_position": _tensor((6,), f64),
            "gripper_position": _tensor((1,), f64),
            "joint_position": _tensor((7,), f64),
        },
        "action": _tensor((7,), f64),
        "action_dict": {
            "cartesian_position": _tensor((6,), f64),
            "cartesian_velocity": _tensor((6,), f64),
            "gripper_position": _tensor((1,), f64),
            "gripper_velocity": _tensor((1,), f64),
            "joint_position": _tensor((7,), f64),
            "joint_velocity": _tensor((7,), f64),
        },
        "discount": tfds.features.Scalar(dtype=np.float32),
        "reward": tfds.features.Scalar(dtype=np.float32),
        **_rlds_flags(),
        "language_instruction": tfds.features.Text(),
        "language_instruction_2": tfds.features.Text(),
        "language_instruction_3": tfds.features.Text(),
    }


def droid_episode_metadata_features() -> dict[str, Any]:
    return {"file_path": tfds.features.Text(), "recording_folderpath": tfds.features.Text()}


def bridge_step_features(image_size: ImageSize = BRIDGE_IMAGE_SIZE) -> dict[str, Any]:
    return {
        "observation": {
            **{f"image_{i}": _image(image_size) for i in range(4)},
            "state": _tensor((7,)),  # x, y, z, roll, pitch, yaw, gripper (1 = open)
        },
        "action": _tensor((7,)),
        "discount": tfds.features.Scalar(dtype=np.float32),
        "reward": tfds.features.Scalar(dtype=np.float32),
        **_rlds_flags(),
        "language_instruction": tfds.features.Text(),
    }


def bridge_episode_metadata_features() -> dict[str, Any]:
    return {
        "file_path": tfds.features.Text(),
        "episode_id": tfds.features.Scalar(dtype=np.int32),
        **{f"has_image_{i}": tfds.features.Scalar(dtype=np.bool_) for i in range(4)},
        "has_language": tfds.features.Scalar(dtype=np.bool_),
    }


def fractal_step_features(image_size: ImageSize = FRACTAL_IMAGE_SIZE) -> dict[str, Any]:
    # Fractal has no discount and no step-level language_instruction: the
    # instruction is an observation string tensor (not tfds Text) next to its
    # 512-d Universal Sentence Encoder embedding.
    return {
        "observation": {
            "image": _image(image_size),
            "base_pose_tool_reached": _tensor((7,)),  # xyz + quaternion (xyzw)
            "gripper_closed": _tensor((1,)),  # 1 = closed
            "gripper_closedness_commanded": _tensor((1,)),
            "height_to_bottom": _tensor((1,)),
            "natural_language_embedding": _tensor((512,)),
            "natural_language_instruction": tfds.features.Tensor(shape=(), dtype=np.str_),
            "orientation_box": _tensor((2, 3)),
            "orientation_start": _tensor((4,)),
            "robot_orientation_positions_box": _tensor((3, 3)),
            "rotation_delta_to_go": _tensor((3,)),
            "src_rotation": _tensor((4,)),
            "vector_to_go": _tensor((3,)),
            "workspace_bounds": _tensor((3, 3)),
        },
        "action": {
            "base_displacement_vector": _tensor((2,)),
            "base_displacement_vertical_rotation": _tensor((1,)),
            "gripper_closedness_action": _tensor((1,)),
            "rotation_delta": _tensor((3,)),
            "terminate_episode": _tensor((3,), np.int32),
            "world_vector": _tensor((3,)),
        },
        "reward": tfds.features.Scalar(dtype=np.float32),
        **_rlds_flags(),
    }


def fractal_episode_metadata_features() -> None:
    """The published fractal20220817_data has only `steps` at episode level."""
    return None


@dataclass(frozen=True)
class RldsSchema:
    """The step and episode_metadata feature dicts of one published dataset."""

    name: str
    steps: dict[str, Any]
    episode_metadata: dict[str, Any] | None


def _schema(name, steps_fn, metadata_fn, default_size) -> Callable[[ImageSize | None], RldsSchema]:
    def build(image_size: ImageSize | None = None) -> RldsSchema:
        return RldsSchema(name, steps_fn(image_size or default_size), metadata_fn())

    return build


# Schema name → builder(image_size=None) of its RldsSchema.
RLDS_SCHEMAS: dict[str, Callable[[ImageSize | None], RldsSchema]] = {
    "droid": _schema("droid", droid_step_features, droid_episode_metadata_features, DROID_IMAGE_SIZE),
    "bridge": _schema("bridge", bridge_step_features, bridge_episode_metadata_features, BRIDGE_IMAGE_SIZE),
    "fractal": _schema("fractal", fractal_step_features, fractal_episode_metadata_features, FRACTAL_IMAGE_SIZE),
}


def rlds_schema(name: str, image_size: ImageSize | None = None) -> RldsSchema:
    """The published schema called `name` (droid, bridge, fractal), images at `image_size`."""
    if name not in RLDS_SCHEMAS:
        raise ValueError(f"unknown RLDS schema {name!r}; known schemas: {sorted(RLDS_SCHEMAS)}")
    return RLDS_SCHEMAS[name](image_size)
