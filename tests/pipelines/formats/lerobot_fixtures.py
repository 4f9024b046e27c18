"""Tiny LeRobot datasets in the layout of datasets_cards/sources/calvin.yaml, written by our own writers.

Values are closed-form so tests can assert them: state[t, d] = 100·e + t + d/10,
the gripper command (action[:, 6]) is +1 (CALVIN: open) for the first half of an
episode and -1 (closed) after, and camera frames are flat colours
`frame_rgb(e, t)` on the static camera and its inverse (255 - rgb) on the wrist
camera (video is lossy: compare means with a tolerance).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipelines.formats.lerobot.writer import LeRobotEpisode, write_lerobot_v21, write_lerobot_v30

STATIC_KEY = "observation.images.rgb_static"
GRIPPER_KEY = "observation.images.rgb_gripper"
HEIGHT, WIDTH = 32, 48
STATE_DIMS = 15  # CALVIN robot_obs; the card keeps dims 0..5
FPS = 30
TASKS = ("open the drawer", "push the blue block left")


def frame_rgb(episode: int, t: int) -> tuple[int, int, int]:
    value = 20 + 15 * t + 5 * episode
    return value, value // 2, 255 - value


def calvin_features(gripper_dtype: str = "video") -> dict:
    """Features of the fixture; `gripper_dtype="image"` stores the wrist camera as PNG bytes in the parquet."""
    camera = {"shape": [HEIGHT, WIDTH, 3], "names": ["height", "width", "channels"]}
    return {
        "observation.state": {"dtype": "float32", "shape": [STATE_DIMS], "names": None},
        "action": {"dtype": "float32", "shape": [7], "names": ["x", "y", "z", "roll", "pitch", "yaw", "gripper"]},
        STATIC_KEY: {"dtype": "video", **camera},
        GRIPPER_KEY: {"dtype": gripper_dtype, **camera},
    }


def expected_state(episode: int, length: int) -> np.ndarray:
    t = np.arange(length, dtype=np.float32)[:, None]
    d = np.arange(STATE_DIMS, dtype=np.float32)[None, :]
    return 100 * episode + t + d / 10


def expected_gripper_command(length: int) -> np.ndarray:
    return np.where(np.arange(length) < length // 2, 1.0, -1.0).astype(np.float32)


def calvin_episode(episode: int, length: int) -> LeRobotEpisode:
    action = np.zeros((length, 7), dtype=np.float32)
    action[:, :6] = expected_state(episode, length)[:, :6] + 0.5
    action[:, 6] = expected_gripper_command(length)
    frames = np.empty((length, HEIGHT, WIDTH, 3), dtype=np.uint8)
    for t in range(length):
        frames[t] = frame_rgb(episode, t)
    return LeRobotEpisode(
        task=TASKS[episode % len(TASKS)],
        data={"observation.state": expected_state(episode, length), "action": action},
        frames={STATIC_KEY: frames, GRIPPER_KEY: 255 - frames},
    )


def episode_lengths(n_episodes: int = 3) -> list[int]:
    return [8 + 2 * (e % 3) for e in range(n_episodes)]  # 8, 10, 12: unequal lengths catch offset bugs


def write_calvin_v21(root: str | Path, *, n_episodes: int = 3, gripper_dtype: str = "video") -> Path:
    """A CALVIN-shaped LeRobot v2.1 dataset: `n_episodes` episodes of 8, 10, 12 frames, 32×48 video."""
    episodes = (calvin_episode(e, n) for e, n in enumerate(episode_lengths(n_episodes)))
    return write_lerobot_v21(root, fps=FPS, features=calvin_features(gripper_dtype), episodes=episodes,
                             robot_type="franka")


def write_calvin_v30(root: str | Path, *, n_episodes: int = 3, gripper_dtype: str = "video",
                     episodes_per_file: int | None = None) -> Path:
    """The same episodes in the LeRobot v3.0 layout (shared data/video files)."""
    episodes = (calvin_episode(e, n) for e, n in enumerate(episode_lengths(n_episodes)))
    return write_lerobot_v30(root, fps=FPS, features=calvin_features(gripper_dtype), episodes=episodes,
                             robot_type="franka", episodes_per_file=episodes_per_file)
