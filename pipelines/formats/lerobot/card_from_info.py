"""A source card for any LeRobot dataset, written from its meta/info.json (`robot-annotate lerobot-card`).

The card names the dataset's own keys: `observation.state` as the state, `action` as the action,
every video/image feature as a camera, the task string as the instruction. A state dim whose name
mentions the gripper becomes the gripper channel, calibrated from the data (LeRobot records raw
motor positions, whose open and closed ends differ from robot to robot). State names that are not
x/y/z make it a joint-space card: la then needs the robot's URDF (state.urdf, state.ee_frame).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import fsspec
import yaml

from datasets_cards import CardError
from pipelines.formats.lerobot import layout

STATE_KEY, ACTION_KEY = "observation.state", "action"
WRIST_WORDS = ("wrist", "hand", "gripper")


def _names(feature: dict[str, Any]) -> list[str]:
    names = feature.get("names") or []
    if isinstance(names, dict):  # some recordings nest them: {"motors": [...]}
        names = next(iter(names.values()), [])
    return [str(n) for n in names]


def _rotation(names: list[str], arm: list[int], cartesian: bool) -> dict[str, str]:
    """An ee_pose's orientation representation, guessed from its dim names (check it)."""
    if not cartesian:
        return {}
    rest = [names[i].lower() for i in arm[3:]]
    if len(rest) >= 4 and {"qx", "qy", "qz", "qw"} <= set(rest[:4]):
        return {"rotation": "quat_wxyz" if rest[0] == "qw" else "quat_xyzw"}
    return {"rotation": "euler_xyz" if len(rest) >= 3 else "none"}


def _view(key: str) -> str:
    return "wrist" if any(word in key.lower() for word in WRIST_WORDS) else "exterior"


def card_from_lerobot(location: str, name: str, description: str = "") -> dict[str, Any]:
    """The card (as a dict ready for YAML) for the LeRobot dataset at `location`."""
    fs, root = fsspec.core.url_to_fs(location)
    info_path = f"{root}/{layout.INFO_PATH}"
    if not fs.exists(info_path):
        raise FileNotFoundError(f"{location} is not a LeRobot dataset: {layout.INFO_PATH} not found")
    with fs.open(info_path, "rb") as f:
        info = json.loads(f.read())
    features = info["features"]
    for key in (STATE_KEY, ACTION_KEY):
        if key not in features:
            raise CardError(f"{location} has no {key!r} feature; its features: {sorted(features)}")
    state_names = _names(features[STATE_KEY]) or [f"s{i}" for i in range(features[STATE_KEY]["shape"][0])]
    gripper = next((i for i, n in enumerate(state_names) if "gripper" in n.lower()), None)
    arm = [i for i in range(len(state_names)) if i != gripper]
    cartesian = {"x", "y", "z"} <= {state_names[i].lower() for i in arm[:3]}
    cameras = {
        key.rsplit(".", 1)[-1]: {"key": key, "view": _view(key)}
        for key, feature in features.items() if feature.get("dtype") in layout.CAMERA_DTYPES
    }
    card: dict[str, Any] = {
        "name": name,
        "description": description or f"LeRobot dataset ({info.get('robot_type') or 'robot'}) at {location}",
        "format": "lerobot",
        "location": location if "://" in location else str(Path(location).resolve()),  # cards resolve from the repo
        "fps": float(info.get("fps") or 30),
        "instruction_key": "task",
        "cameras": cameras,
        "state": {"keys": [STATE_KEY], "dims": arm, "names": [state_names[i] for i in arm],
                  "space": "ee_pose" if cartesian else "joint", **_rotation(state_names, arm, cartesian)},
        "action": {"keys": [ACTION_KEY], "names": _names(features[ACTION_KEY]),
                   "space": "ee_absolute" if cartesian else "joint_absolute"},
        "pipelines": ["la"],
    }
    if gripper is not None:
        # open/closed here give the direction only (LeRobot arms: larger = more open); the survey calibrates.
        card["gripper"] = {"key": STATE_KEY, "index": gripper, "open_value": 100.0, "closed_value": 0.0,
                           "calibrate": True}
    return card


def card_yaml(card: dict[str, Any]) -> str:
    return yaml.safe_dump(card, sort_keys=False, default_flow_style=None, width=120)
