"""The la dataset around its shards: rows from segments, reading back, Table 3, LeRobot layouts.

The Parquet shards are the record; everything else (LeRobot v2.1 layouts, statistics)
is derived from them, so rewriting the shards (verification) and calling
`write_layouts` again reproduces a consistent folder.
"""

from __future__ import annotations

import itertools
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from annotators.keyframes import Keyframe
from annotators.segments.base import Segment
from datasets_cards import Episode, SourceCard, load_output_card
from datasets_cards.manifest import Manifest

LEROBOT_DIR = "lerobot"  # vision-free LA episodes, LeRobot v2.1
LEROBOT_V_DIR = "lerobot_v"  # LA-V: the same episodes with camera videos
PLOTS_DIR = "plots"

# LA-33K's released key names
STATE_KEY = "observation.state.cartesian_position"
STATE_GRIPPER_KEY = "observation.state.gripper_position"
ACTION_KEY = "action.cartesian_position"
ACTION_GRIPPER_KEY = "action.gripper_position"
CAMERA_KEY = "observation.images.{camera}"
GRIPPER_ACTION_NAME = "gripper"  # action dim named so in the source card goes to action.gripper_position


def segments_to_rows(
    episode: Episode,
    card: SourceCard,
    segments: Sequence[Segment],
    kinematic: Sequence[Segment],
    keyframes: Sequence[Keyframe],
    source_location: str,
) -> list[dict[str, Any]]:
    """One row of the la output card per segment (all unverified)."""
    rows = []
    frames = [k.frame for k in keyframes]
    for index, seg in enumerate(segments):
        reference = _most_overlapping(kinematic, seg)
        kinematic_label = reference.subaction if reference is not None else seg.subaction
        rows.append({
            "episode_id": f"{episode.episode_id}#{index}",
            "source": card.name,
            "source_episode_id": episode.episode_id,
            "segment_index": index,
            "subaction": seg.subaction,
            "instruction": seg.instruction,
            "task": episode.instruction,
            "start": seg.start,
            "end": seg.end,
            "fps": float(episode.fps),
            "state": episode.arm_state[seg.start:seg.end].tolist(),
            "state_names": list(card.state.names),
            "gripper": episode.gripper[seg.start:seg.end].tolist(),
            "actions": episode.actions[seg.start:seg.end].tolist(),
            "action_names": list(card.action.names),
            "segmenter": seg.segmenter,
            "kinematic_subaction": kinematic_label,
            "agreement": kinematic_label == seg.subaction,
            "verified": False,
            "quality": None,
            "confidence": None,
            "num_annotators": 0,
            "cameras": list(episode.frames),
            "source_location": source_location,
            "flags": list(seg.flags),
            "keyframes": [f for f in frames if seg.start <= f < seg.end],
        })
    return rows


def _most_overlapping(reference: Sequence[Segment], seg: Segment) -> Segment | None:
    """The reference segment overlapping `seg` most (the VLM segmenter's cross-check rule)."""
    best = max(reference, key=lambda r: min(r.end, seg.end) - max(r.start, seg.start), default=None)
    if best is None or min(best.end, seg.end) <= max(best.start, seg.start):
        return None
    return best


def read_shards(out_dir: str, manifest: Manifest) -> pa.Table:
    """All shards the manifest lists, in shard order (the reader's episode order)."""
    tables = []
    for shard in sorted(manifest.shards, key=lambda s: s.path):
        with fsspec.open(f"{out_dir}/{shard.path}", "rb") as f:
            tables.append(pq.read_table(f))
    if not tables:
        return load_output_card("la").arrow_schema().empty_table()
    return pa.concat_tables(tables)


def _phase(episodes: int, frames: int) -> dict[str, Any]:
    return {"episodes": episodes, "frames": frames, "frames_per_episode": round(frames / episodes, 2) if episodes else 0.0}


def table_to_stats(table: pa.Table) -> dict[str, Any]:
    """LA4VLA Table 3 for this run, the primitive histogram and cross-check agreement."""
    rows = table.select(["source_episode_id", "start", "end", "subaction", "segmenter", "agreement", "verified"]).to_pylist()
    lengths = [r["end"] - r["start"] for r in rows]
    source_frames: dict[str, int] = {}
    for r in rows:  # segments cover their episode contiguously: the last end is its length
        source_frames[r["source_episode_id"]] = max(source_frames.get(r["source_episode_id"], 0), r["end"])
    verified = [n for r, n in zip(rows, lengths) if r["verified"]]
    return {
        "table3": {
            "source": _phase(len(source_frames), sum(source_frames.values())),
            "candidates": _phase(len(rows), sum(lengths)),
            "verified": _phase(len(verified), sum(verified)),
        },
        "candidates_per_episode": round(len(rows) / len(source_frames), 2) if source_frames else 0.0,
        "primitives": dict(Counter(r["subaction"] for r in rows).most_common()),
        "segmenters": dict(Counter(r["segmenter"] for r in rows).most_common()),
        "agreement_rate": round(float(np.mean([r["agreement"] for r in rows])), 4) if rows else 0.0,
    }


def lerobot_features(table: pa.Table, cameras: dict[str, tuple[int, int]] | None = None) -> dict[str, dict]:
    """LeRobot features with LA-33K's key names; `cameras` (name → (H, W)) adds LA-V videos."""
    first = table.slice(0, 1).to_pylist()[0]
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


def write_lerobot(out_dir: str, table: pa.Table, fps: float, robot_type: str) -> int:
    """Vision-free LeRobot v2.1 layout of every row under OUT/lerobot/. Returns the episode count."""
    from pipelines.lerobot import LeRobotEpisode, write_lerobot_v21

    if table.num_rows == 0:
        _remove_dir(f"{out_dir}/{LEROBOT_DIR}")
        return 0
    features = lerobot_features(table)

    def episodes() -> Iterator[LeRobotEpisode]:
        for batch in table.to_batches(max_chunksize=256):
            for row in batch.to_pylist():
                yield LeRobotEpisode(task=row["instruction"], data=row_to_data(row))

    with tempfile.TemporaryDirectory(prefix="la-lerobot-") as tmp:
        write_lerobot_v21(f"{tmp}/ds", fps=fps, features=features, episodes=episodes(), robot_type=robot_type)
        _replace_dir(f"{tmp}/ds", f"{out_dir}/{LEROBOT_DIR}")
    return table.num_rows


def write_lerobot_v(out_dir: str, table: pa.Table, fps: float, robot_type: str, episodes: Iterable[Episode]) -> int:
    """LA-V: the same LeRobot episodes plus one video per camera, under OUT/lerobot_v/.

    `episodes` streams the source episodes in the shards' order (re-read from the source:
    the la shards hold no pixels); one source episode is decoded at a time. Returns the
    LA-V episode count (lower than the rows if a source episode could not be re-read).
    """
    from pipelines.lerobot import LeRobotEpisode, write_lerobot_v21

    rows_of: dict[str, list[int]] = {}
    for i, episode_id in enumerate(table.column("source_episode_id").to_pylist()):
        rows_of.setdefault(episode_id, []).append(i)
    stream = (e for e in episodes if e.episode_id in rows_of)
    first = next(stream, None)
    if first is None:
        _remove_dir(f"{out_dir}/{LEROBOT_V_DIR}")
        return 0
    cameras = list(first.frames)
    shapes = {c: tuple(first.frames[c][0].shape[:2]) for c in cameras}
    written = 0

    def lerobot_episodes() -> Iterator[LeRobotEpisode]:
        nonlocal written
        for episode in itertools.chain([first], stream):
            frames = {c: episode.frames[c].load() for c in cameras}
            for row in table.take(rows_of[episode.episode_id]).to_pylist():
                clips = {CAMERA_KEY.format(camera=c): frames[c][row["start"]:row["end"]] for c in cameras}
                written += 1
                yield LeRobotEpisode(task=row["instruction"], data=row_to_data(row), frames=clips)

    with tempfile.TemporaryDirectory(prefix="la-lerobot-v-") as tmp:
        write_lerobot_v21(f"{tmp}/ds", fps=fps, features=lerobot_features(table, shapes),
                          episodes=lerobot_episodes(), robot_type=robot_type)
        _replace_dir(f"{tmp}/ds", f"{out_dir}/{LEROBOT_V_DIR}")
    return written


def source_episodes(card: SourceCard, manifest: Manifest) -> Iterator[Episode]:
    """Re-read the run's source episodes, unit by unit, in the shards' order (LA-V frames)."""
    from pipelines.quarantine import Quarantined
    from pipelines.readers import open_reader

    reader = open_reader(card, manifest.source_location)
    for shard in sorted(manifest.shards, key=lambda s: s.path):
        start, stop = (int(x) for x in shard.unit.split(":"))
        for item in reader.read(start, stop):
            if not isinstance(item, Quarantined):
                yield item


def write_layouts(out_dir: str, manifest: Manifest, table: pa.Table, card: SourceCard, *, lav: bool) -> dict[str, Any]:
    """LeRobot v2.1 (vision-free) and, with `lav`, LA-V; returns what card.md reports about them."""
    robot_type = str(card.params.la.extra.get("robot_type", card.name))
    info: dict[str, Any] = {"path": LEROBOT_DIR, "episodes": write_lerobot(out_dir, table, card.fps, robot_type)}
    if lav:
        info["lav_path"] = LEROBOT_V_DIR
        info["lav_episodes"] = write_lerobot_v(out_dir, table, card.fps, robot_type, source_episodes(card, manifest))
    return info
