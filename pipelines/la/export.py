"""The la dataset as LeRobot layouts: vision-free (LA-33K's key names) and LA-V with camera videos.

v3.0 by default, the only layout current LeRobot releases load; v2.1 (`lerobot_version=2.1`) is the
layout LA-33K was published in.

The Parquet shards are the record; the layouts are derived from the shards of the
manifest's current generation, streamed one record batch at a time, so rewriting
the shards (verification) and exporting again reproduces a consistent folder.

LA-V needs pixels, which the shards do not hold: each unit encodes every
segment's camera clip while its frames are in memory (`stage_lav_videos`, into
OUT/_staging/lerobot_v/), and the export copies those files into the layout.
A segment whose boundaries a verifier moved is cut again from its episode's
staged clips (the candidates of one episode cover it without gaps).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from typing import Any

import fsspec
import numpy as np
import pyarrow.parquet as pq

from datasets_cards import Episode, SourceCard
from datasets_cards.manifest import Manifest
from pipelines.base import checked_frames
from pipelines.formats.lerobot.stats import frames_to_stats
from pipelines.formats.lerobot.writer import (
    EncodedVideo,
    LeRobotEpisode,
    write_lerobot_v21,
    write_lerobot_v30,
)
from pipelines.io import write_bytes_atomic, write_text_atomic
from pipelines.io.video import VideoEncoder, decode_segment, pick_video_codec
from pipelines.la.rows import BOUNDARY_CORRECTED

LEROBOT_DIR = "lerobot"  # vision-free LA episodes
LEROBOT_V_DIR = "lerobot_v"  # LA-V: the same episodes with camera videos
LAV_STAGING_DIR = "_staging/lerobot_v"  # per-segment clips encoded by the units
BATCH_ROWS = 256  # rows converted at a time while exporting
WRITERS = {"3.0": write_lerobot_v30, "2.1": write_lerobot_v21}  # LeRobot layout version → writer
DEFAULT_LEROBOT_VERSION = "3.0"

# LA-33K's released key names
STATE_KEY = "observation.state.cartesian_position"
STATE_GRIPPER_KEY = "observation.state.gripper_position"
ACTION_KEY = "action.cartesian_position"
ACTION_GRIPPER_KEY = "action.gripper_position"
CAMERA_KEY = "observation.images.{camera}"
GRIPPER_ACTION_NAME = "gripper"  # action dim named so in the source card goes to action.gripper_position


def lerobot_features(first: dict[str, Any], cameras: dict[str, tuple[int, int]] | None = None) -> dict[str, dict]:
    """LeRobot features with LA-33K's key names from one la row; `cameras` (name → (H, W)) adds LA-V videos."""
    state_dims = len(first["state"][0])
    action_names = list(first["action_names"]) or [f"a{i}" for i in range(len(first["actions"][0]))]
    arm_names = [n for n in action_names if n != GRIPPER_ACTION_NAME]
    features = {
        STATE_KEY: {"dtype": "float32", "shape": [state_dims], "names": list(first["state_names"]) or None},
        STATE_GRIPPER_KEY: {"dtype": "float32", "shape": [1], "names": ["gripper"]},
        ACTION_KEY: {"dtype": "float32", "shape": [len(arm_names)], "names": arm_names},
    }
    if GRIPPER_ACTION_NAME in action_names:
        features[ACTION_GRIPPER_KEY] = {"dtype": "float32", "shape": [1], "names": ["gripper"]}
    for camera, (height, width) in (cameras or {}).items():
        features[CAMERA_KEY.format(camera=camera)] = {"dtype": "video", "shape": [height, width, 3], "names": None}
    return features


def row_to_data(row: dict[str, Any]) -> dict[str, np.ndarray]:
    """Per-frame arrays of one la row under LA-33K's key names."""
    actions = np.asarray(row["actions"], dtype=np.float32)
    names = list(row["action_names"]) or [f"a{i}" for i in range(actions.shape[1])]
    arm = [i for i, n in enumerate(names) if n != GRIPPER_ACTION_NAME]
    data = {
        STATE_KEY: np.asarray(row["state"], dtype=np.float32),
        STATE_GRIPPER_KEY: np.asarray(row["gripper"], dtype=np.float32)[:, None],
        ACTION_KEY: actions[:, arm],
    }
    if GRIPPER_ACTION_NAME in names:
        data[ACTION_GRIPPER_KEY] = actions[:, [names.index(GRIPPER_ACTION_NAME)]]
    return data


def iter_rows(out_dir: str, manifest: Manifest) -> Iterator[dict[str, Any]]:
    """Every row of the manifest's current generation, in shard order, one record batch in memory at a time."""
    for shard in manifest.current_shards:
        with fsspec.open(f"{out_dir}/{shard.path}", "rb") as f:
            for batch in pq.ParquetFile(f).iter_batches(batch_size=BATCH_ROWS):
                yield from batch.to_pylist()


def _remove_dir(target: str) -> None:
    fs, root = fsspec.core.url_to_fs(target)
    if fs.exists(root):
        fs.rm(root, recursive=True)


def _replace_dir(local: str, target: str) -> None:
    """Move a locally built folder to `target` (any fsspec URL), replacing what was there."""
    _remove_dir(target)
    fs, root = fsspec.core.url_to_fs(target)
    fs.makedirs(root.rsplit("/", 1)[0], exist_ok=True)
    fs.put(f"{local}/", root, recursive=True)


# -- LA-V clips, staged by the units ---------------------------------------------------------------

def _clip_name(source_episode_id: str, segment_index: int, camera: str) -> str:
    safe = f"{source_episode_id}__{int(segment_index)}".replace("/", "_").replace("#", "_")
    return f"{safe}.{camera}"


def stage_lav_videos(out_dir: str, episode: Episode, rows: list[dict[str, Any]],
                     frames: dict[str, np.ndarray] | None = None) -> int:
    """Encode each segment's clip of every camera (and its LeRobot frame statistics) while the frames are here.

    `frames`: every camera's frames, decoded and checked by the caller (`pipelines.base.checked_frames`;
    decoded and checked here when not given). Returns the number of clips written. Idempotent: a
    retried unit writes the same files. The LA-V export after the units copies these files and never
    opens the source.
    """
    cameras = list(episode.frames)
    frames = {c: frames[c] if frames and c in frames else checked_frames(episode, c) for c in cameras}
    codec = pick_video_codec([tuple(f.shape[1:3]) for f in frames.values()])
    written = 0
    with tempfile.TemporaryDirectory(prefix="la-lav-") as tmp:
        for row in rows:
            for camera in cameras:
                clip = frames[camera][row["start"]:row["end"]]
                name = _clip_name(row["source_episode_id"], row["segment_index"], camera)
                local = os.path.join(tmp, f"{name}.mp4")
                with VideoEncoder(local, fps=episode.fps, height=clip.shape[1], width=clip.shape[2], codec=codec) as enc:
                    enc.write(clip)
                with open(local, "rb") as f:
                    write_bytes_atomic(f"{out_dir}/{LAV_STAGING_DIR}/{name}.mp4", f.read())
                stats = {k: np.asarray(v).tolist() for k, v in frames_to_stats(clip).items()}
                write_text_atomic(f"{out_dir}/{LAV_STAGING_DIR}/{name}.json",
                                  json.dumps({"stats": stats, "shape": list(clip.shape), "codec": codec}))
                written += 1
    return written


class _StagedClips:
    """LA-V clips of the staging folder, fetched to a local folder as the export needs them."""

    def __init__(self, out_dir: str, local: str, manifest: Manifest):
        self.fs, self.root = fsspec.core.url_to_fs(f"{out_dir}/{LAV_STAGING_DIR}")
        self.local = local
        self.out_dir, self.manifest = out_dir, manifest
        self._candidates: dict[str, list[dict[str, Any]]] | None = None

    def candidates(self, episode_id: str) -> list[dict[str, Any]]:
        """The episode's candidate segments (index, start, end); indexed on the first re-cut only."""
        if self._candidates is None:
            self._candidates = _candidates_by_episode(self.out_dir, self.manifest)
        return self._candidates.get(episode_id, [])

    def cameras(self, row: dict[str, Any]) -> dict[str, tuple[int, int]] | None:
        """camera → (H, W) of the row's staged clips, None when they are missing."""
        shapes = {}
        for camera in row["cameras"]:
            meta = self.meta(row["source_episode_id"], row["segment_index"], camera)
            if meta is None:
                return None
            shapes[camera] = tuple(meta["shape"][1:3])
        return shapes

    def meta(self, episode_id: str, index: int, camera: str) -> dict[str, Any] | None:
        path = f"{self.root}/{_clip_name(episode_id, index, camera)}.json"
        if not self.fs.exists(path):
            return None
        with self.fs.open(path, "rb") as f:
            return json.loads(f.read())

    def fetch(self, episode_id: str, index: int, camera: str) -> str:
        name = _clip_name(episode_id, index, camera)
        local = os.path.join(self.local, f"{name}.mp4")
        if not os.path.exists(local):
            self.fs.get(f"{self.root}/{name}.mp4", local)
        return local

    def video(self, row: dict[str, Any], camera: str, fps: float) -> EncodedVideo:
        """The row's clip: the staged file itself, or, for a moved boundary, one cut from its episode's clips."""
        meta = self.meta(row["source_episode_id"], row["segment_index"], camera)
        length = row["end"] - row["start"]
        if BOUNDARY_CORRECTED not in row["flags"]:
            stats = {k: np.asarray(v) for k, v in meta["stats"].items()}
            return EncodedVideo(self.fetch(row["source_episode_id"], row["segment_index"], camera), length,
                                tuple(meta["shape"][1:]), stats)
        candidates = self.candidates(row["source_episode_id"])
        frames = self._recut(row, camera, candidates, fps)
        name = f"recut-{_clip_name(row['source_episode_id'], row['segment_index'], camera)}.mp4"
        local = os.path.join(self.local, name)
        first = self.meta(candidates[0]["source_episode_id"], candidates[0]["segment_index"], camera)
        with VideoEncoder(local, fps=fps, height=frames.shape[1], width=frames.shape[2],
                          codec=first["codec"] if first else None) as enc:
            enc.write(frames)
        return EncodedVideo(local, len(frames), tuple(frames.shape[1:]), frames_to_stats(frames))

    def _recut(self, row: dict[str, Any], camera: str, candidates: list[dict[str, Any]], fps: float) -> np.ndarray:
        parts = []
        for cand in candidates:
            lo, hi = max(row["start"], cand["start"]), min(row["end"], cand["end"])
            if lo >= hi:
                continue
            path = self.fetch(cand["source_episode_id"], cand["segment_index"], camera)
            clip = decode_segment(path, start_time=0.0, num_frames=cand["end"] - cand["start"], fps=fps)
            parts.append(clip[lo - cand["start"]:hi - cand["start"]])
        return np.concatenate(parts)


def _candidates_by_episode(out_dir: str, manifest: Manifest) -> dict[str, list[dict[str, Any]]]:
    """source_episode_id → its candidate segments' (index, start, end), from the annotate run's shards."""
    by_episode: dict[str, list[dict[str, Any]]] = {}
    columns = ["source_episode_id", "segment_index", "start", "end"]
    for shard in manifest.shards:
        with fsspec.open(f"{out_dir}/{shard.path}", "rb") as f:
            for r in pq.read_table(f, columns=columns).to_pylist():
                by_episode.setdefault(r["source_episode_id"], []).append(r)
    return by_episode


# -- the layouts -------------------------------------------------------------------------------------

def write_lerobot(out_dir: str, manifest: Manifest, fps: float, robot_type: str,
                  version: str = DEFAULT_LEROBOT_VERSION) -> int:
    """Vision-free LeRobot layout (`version`) of every row under OUT/lerobot/. Returns the episode count."""
    rows = iter_rows(out_dir, manifest)
    first = next(rows, None)
    if first is None:
        _remove_dir(f"{out_dir}/{LEROBOT_DIR}")
        return 0
    count = 0

    def episodes() -> Iterator[LeRobotEpisode]:
        nonlocal count
        for row in _chain(first, rows):
            count += 1
            yield LeRobotEpisode(task=row["instruction"], data=row_to_data(row))

    with tempfile.TemporaryDirectory(prefix="la-lerobot-") as tmp:
        WRITERS[version](f"{tmp}/ds", fps=fps, features=lerobot_features(first), episodes=episodes(),
                         robot_type=robot_type)
        _replace_dir(f"{tmp}/ds", f"{out_dir}/{LEROBOT_DIR}")
    return count


def _chain(first: dict[str, Any], rest: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    yield first
    yield from rest


def write_lerobot_v(out_dir: str, manifest: Manifest, fps: float, robot_type: str,
                    version: str = DEFAULT_LEROBOT_VERSION) -> dict[str, int]:
    """LA-V: the same episodes plus one video per camera, under OUT/lerobot_v/, from the staged clips.

    v2.1 copies each clip as the episode's video file; v3.0 concatenates the episodes of a file into one
    video, so the clips are decoded and encoded again.

    Returns {"lav_episodes": written, "lav_missing": rows without staged clips (annotated without `lav`)}.
    """
    with tempfile.TemporaryDirectory(prefix="la-lav-export-") as tmp:
        clips = _StagedClips(out_dir, tmp, manifest)
        rows = iter_rows(out_dir, manifest)
        written = missing = 0
        first = None
        for row in rows:  # the first row with staged clips fixes the cameras and their sizes
            if clips.cameras(row):
                first = row
                break
            missing += 1
        if first is None:
            _remove_dir(f"{out_dir}/{LEROBOT_V_DIR}")
            return {"lav_episodes": 0, "lav_missing": missing}
        shapes = clips.cameras(first)

        def episodes() -> Iterator[LeRobotEpisode]:
            nonlocal written, missing
            for row in _chain(first, rows):
                if clips.cameras(row) != shapes:
                    missing += 1
                    continue
                videos = {CAMERA_KEY.format(camera=c): clips.video(row, c, fps) for c in shapes}
                written += 1
                if version == "2.1":
                    yield LeRobotEpisode(task=row["instruction"], data=row_to_data(row), videos=videos)
                else:
                    frames = {key: decode_segment(v.path, start_time=0.0, num_frames=v.length, fps=fps)
                              for key, v in videos.items()}
                    yield LeRobotEpisode(task=row["instruction"], data=row_to_data(row), frames=frames)

        codec = clips.meta(first["source_episode_id"], first["segment_index"], next(iter(shapes)))["codec"]
        WRITERS[version](f"{tmp}/ds", fps=fps, features=lerobot_features(first, shapes), episodes=episodes(),
                         robot_type=robot_type, video_codec=codec)
        _replace_dir(f"{tmp}/ds", f"{out_dir}/{LEROBOT_V_DIR}")
    return {"lav_episodes": written, "lav_missing": missing}


def write_layouts(out_dir: str, manifest: Manifest, card: SourceCard, *, lav: bool,
                  version: str = DEFAULT_LEROBOT_VERSION) -> dict[str, Any]:
    """LeRobot layouts (`version`): vision-free and, with `lav`, LA-V; returns what card.md reports about them."""
    if version not in WRITERS:
        raise ValueError(f"LeRobot layout version {version!r} is not written; choose one of {', '.join(WRITERS)}")
    robot_type = str(card.params.la.extra.get("robot_type", card.name))
    info: dict[str, Any] = {"path": LEROBOT_DIR, "version": version,
                            "episodes": write_lerobot(out_dir, manifest, card.fps, robot_type, version)}
    if lav:
        info["lav_path"] = LEROBOT_V_DIR
        info.update(write_lerobot_v(out_dir, manifest, card.fps, robot_type, version))
    return info
