"""Stage 1 of the pixel pipeline: the first gripper-close frame G of every episode, collected by parallel units.

Each unit hands back, per episode in reader order: G (from the card's normalised gripper), the
camera's frame at G as JPEG (the tracking pass streams these, one per episode, in dataset order),
and the end-effector position at G for the projection cross-check. An episode that never closes,
or whose frame G does not decode, keeps a row with its reason and no image: the unit that
annotates it quarantines it with that reason.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pyarrow as pa

from annotators.gripper import first_close_frame
from datasets_cards import Episode, EpisodeError, SourceCard
from datasets_cards.codecs import encode_jpeg, is_jpeg
from datasets_cards.params.pixel import PixelParams

FIRST_CLOSE_SCHEMA = pa.schema([
    ("episode_id", pa.string()),
    ("first_close_frame", pa.int32()),  # null: the episode never closes
    ("image", pa.binary()),  # frame G of the pixel camera, JPEG (null with a reason)
    ("ee_xyz", pa.list_(pa.float32())),  # end-effector position at G (null: the card's state has no x, y, z)
    ("reason", pa.string()),  # why the episode has no usable frame G
])

NO_CLOSE = "no_close"  # reason code: the gripper never closes (for min_close_frames frames)
BLANK_FRAME = "blank_frame"  # reason code: frame G is one flat value


def pixel_camera(source: SourceCard, params: PixelParams) -> str:
    """The one third-person camera: the params' choice, else the card's first exterior camera."""
    if params.camera:
        return params.camera
    exterior = source.cameras_with_view("exterior")
    return exterior[0] if exterior else next(iter(source.cameras))


def ee_position_dims(source: SourceCard) -> list[int] | None:
    """Indices of x, y, z in the episode's arm state, or None when the card's state is not a Cartesian pose."""
    names = list(source.state.names)
    if all(axis in names for axis in ("x", "y", "z")):
        return [names.index(axis) for axis in ("x", "y", "z")]
    return None


def first_close_row(episode: Episode, camera: str, params: PixelParams, xyz_dims: list[int] | None) -> dict[str, Any]:
    """The stage-1 row of one episode (see the module docstring)."""
    row: dict[str, Any] = {"episode_id": episode.episode_id, "first_close_frame": None, "image": None,
                           "ee_xyz": None, "reason": None}
    g = first_close_frame(episode.gripper, params.close_rise, params.min_close_frames)
    if g is None:
        row["reason"] = (f"{NO_CLOSE}: the gripper never rises {params.close_rise} above its open level for "
                         f"{params.min_close_frames} frame(s) (range {float(np.min(episode.gripper)):.2f}–"
                         f"{float(np.max(episode.gripper)):.2f})")
        return row
    row["first_close_frame"] = g
    if xyz_dims is not None:
        row["ee_xyz"] = [float(v) for v in episode.arm_state[g, xyz_dims]]
    if camera not in episode.frames:
        row["reason"] = f"camera {camera!r} not in the episode (has {episode.cameras})"
        return row
    frames = episode.frames[camera]
    try:
        encoded = frames.encoded[g] if frames.encoded is not None else None
        image = frames[g]  # decodes (and so checks) the frame
    except EpisodeError as e:
        row["reason"] = f"bad frame: camera {camera!r} frame {g}: {e.reason}"
        return row
    if int(image.max()) == int(image.min()):  # a camera dropout: nothing to track or detect in it
        row["reason"] = f"{BLANK_FRAME}: camera {camera!r} frame {g} is one flat value ({int(image.min())})"
        return row
    row["image"] = encoded if encoded is not None and is_jpeg(encoded) else encode_jpeg(image, params.jpeg_quality)
    return row


def collect_first_close(episodes: Iterable[Episode], source: SourceCard, params: PixelParams) -> list[dict[str, Any]]:
    camera, dims = pixel_camera(source, params), ee_position_dims(source)
    return [first_close_row(episode, camera, params, dims) for episode in episodes]
