"""Check a folder against the LeRobot v2.1 layout; return every violation found.

The checks run in order and later ones skip what an earlier failure makes
meaningless (no episodes.jsonl → no per-episode checks). Each message starts
with the file it concerns.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipelines.formats.lerobot import layout
from pipelines.io.video import count_frames


@dataclass
class _Dataset:
    root: Path
    info: dict
    episodes: list[dict] | None = None
    tasks: dict[int, str] | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def features(self) -> dict:
        return self.info.get("features") or {}

    def keys_with(self, *dtypes: str) -> list[str]:
        return [k for k, s in self.features.items() if isinstance(s, dict) and s.get("dtype") in dtypes]

    def chunk_of(self, episode_index: int) -> int:
        return episode_index // int(self.info.get("chunks_size") or layout.DEFAULT_CHUNKS_SIZE)


def _read_jsonl(ds: _Dataset, rel: str) -> list[dict] | None:
    path = ds.root / rel
    if not path.exists():
        ds.problems.append(f"{rel}: missing")
        return None
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as e:
            ds.problems.append(f"{rel}:{n}: not JSON ({e})")
    return rows


def _check_info(ds: _Dataset) -> None:
    info, rel = ds.info, layout.INFO_PATH
    missing = [k for k in layout.V21_INFO_KEYS if k not in info]
    if missing:
        ds.problems.append(f"{rel}: missing keys {missing}")
    if info.get("codebase_version") != layout.V21:
        ds.problems.append(f"{rel}: codebase_version is {info.get('codebase_version')!r}, expected {layout.V21!r}")
    for key in layout.DEFAULT_FEATURES:
        if key not in ds.features:
            ds.problems.append(f"{rel}: feature {key!r} missing")
    for key, spec in ds.features.items():
        if not isinstance(spec, dict) or not {"dtype", "shape", "names"} <= set(spec):
            ds.problems.append(f"{rel}: feature {key!r} needs dtype, shape and names, got {spec}")
            continue
        if spec["dtype"] == layout.VIDEO_DTYPE:
            absent = [k for k in layout.VIDEO_INFO_KEYS if k not in (spec.get("info") or {})]
            if absent:
                ds.problems.append(f"{rel}: video feature {key!r} info lacks {absent}")
    if ds.keys_with(layout.VIDEO_DTYPE) and not info.get("video_path"):
        ds.problems.append(f"{rel}: video features present but video_path is {info.get('video_path')!r}")
    split = (info.get("splits") or {}).get("train", "")
    if split != f"0:{info.get('total_episodes')}":
        ds.problems.append(f"{rel}: splits.train is {split!r}, expected '0:{info.get('total_episodes')}'")


def _check_episodes(ds: _Dataset) -> None:
    rows = _read_jsonl(ds, layout.V21_EPISODES_PATH)
    if rows is None:
        return
    rel, info = layout.V21_EPISODES_PATH, ds.info
    indices = [r.get("episode_index") for r in rows]
    if indices != list(range(len(rows))):
        ds.problems.append(f"{rel}: episode_index must run 0..{len(rows) - 1} in order, got {indices[:10]}...")
        return
    for row in rows:
        if not isinstance(row.get("length"), int) or row["length"] <= 0:
            ds.problems.append(f"{rel}: episode {row['episode_index']} has length {row.get('length')!r}")
            return
        if not isinstance(row.get("tasks"), list) or not row["tasks"]:
            ds.problems.append(f"{rel}: episode {row['episode_index']} has tasks {row.get('tasks')!r}")
    ds.episodes = rows
    n, frames = len(rows), sum(r["length"] for r in rows)
    chunks = -(-n // int(info.get("chunks_size") or layout.DEFAULT_CHUNKS_SIZE))
    videos = n * len(ds.keys_with(layout.VIDEO_DTYPE))
    for key, expected in (("total_episodes", n), ("total_frames", frames), ("total_chunks", chunks),
                          ("total_videos", videos)):
        if info.get(key) != expected:
            ds.problems.append(f"{layout.INFO_PATH}: {key} is {info.get(key)!r}, files hold {expected}")


def _check_tasks(ds: _Dataset) -> None:
    rows = _read_jsonl(ds, layout.V21_TASKS_PATH)
    if rows is None:
        return
    rel = layout.V21_TASKS_PATH
    tasks = {r.get("task_index"): r.get("task") for r in rows}
    if sorted(tasks) != list(range(len(rows))) or not all(isinstance(t, str) and t for t in tasks.values()):
        ds.problems.append(f"{rel}: task_index must run 0..{len(rows) - 1}, each with a non-empty task")
    if ds.info.get("total_tasks") != len(rows):
        ds.problems.append(
            f"{layout.INFO_PATH}: total_tasks is {ds.info.get('total_tasks')!r}, {rel} holds {len(rows)}")
    ds.tasks = tasks
    known = set(tasks.values())
    for episode in ds.episodes or []:
        unknown = [t for t in episode["tasks"] if t not in known]
        if unknown:
            ds.problems.append(
                f"{layout.V21_EPISODES_PATH}: episode {episode['episode_index']} names unknown tasks {unknown}")


def _column_shape_ok(column: pa.ChunkedArray, shape: list[int]) -> bool:
    values = column.combine_chunks()
    if shape == [1]:
        return not pa.types.is_list(values.type) and not pa.types.is_fixed_size_list(values.type)
    for size in shape:
        if pa.types.is_fixed_size_list(values.type):
            if values.type.list_size != size:
                return False
        elif pa.types.is_list(values.type):
            if len(values) and set(pc.list_value_length(values).to_pylist()) != {size}:
                return False
        else:
            return False
        values = values.flatten()
    return True


def _check_data(ds: _Dataset, timestamp_tolerance_s: float) -> None:
    if ds.episodes is None or not ds.info.get("data_path"):
        return
    fps = float(ds.info.get("fps") or 0)
    columns = [k for k in ds.features if k not in ds.keys_with(layout.VIDEO_DTYPE)]
    first_index = 0
    for episode in ds.episodes:
        i, length = episode["episode_index"], episode["length"]
        rel = ds.info["data_path"].format(episode_chunk=ds.chunk_of(i), episode_index=i)
        if not (ds.root / rel).exists():
            ds.problems.append(f"{rel}: missing")
            first_index += length
            continue
        table = pq.read_table(ds.root / rel)
        if table.num_rows != length:
            ds.problems.append(f"{rel}: {table.num_rows} rows, {layout.V21_EPISODES_PATH} says {length}")
        for key in columns:
            if key not in table.column_names:
                ds.problems.append(f"{rel}: column {key!r} missing")
            elif ds.features[key]["dtype"] != layout.IMAGE_DTYPE and not _column_shape_ok(
                    table.column(key), list(ds.features[key]["shape"])):
                ds.problems.append(f"{rel}: column {key!r} has type {table.column(key).type}, "
                                   f"feature shape is {ds.features[key]['shape']}")
        if not set(layout.DEFAULT_FEATURES) <= set(table.column_names):
            first_index += length
            continue
        n = table.num_rows
        expected = {
            "episode_index": np.full(n, i), "frame_index": np.arange(n),
            "index": np.arange(first_index, first_index + n),
        }
        for key, values in expected.items():
            if not np.array_equal(table.column(key).to_numpy(), values):
                ds.problems.append(f"{rel}: column {key!r} is not {key} of this episode in order")
        drift = np.abs(table.column("timestamp").to_numpy() - np.arange(n) / fps).max(initial=0) if fps else 0.0
        if drift > timestamp_tolerance_s:
            ds.problems.append(f"{rel}: timestamp is not frame_index / fps ({fps})")
        unknown = set(table.column("task_index").to_pylist()) - set(ds.tasks or {})
        if ds.tasks is not None and unknown:
            ds.problems.append(f"{rel}: task_index {sorted(unknown)} not in {layout.V21_TASKS_PATH}")
        first_index += length


def _check_stats(ds: _Dataset) -> None:
    rows = _read_jsonl(ds, layout.V21_EPISODES_STATS_PATH)
    if rows is None or ds.episodes is None:
        return
    rel = layout.V21_EPISODES_STATS_PATH
    by_episode = {r.get("episode_index"): r.get("stats") or {} for r in rows}
    cameras = set(ds.keys_with(*layout.CAMERA_DTYPES))
    for episode in ds.episodes:
        i = episode["episode_index"]
        if i not in by_episode:
            ds.problems.append(f"{rel}: no stats for episode {i}")
            continue
        for key, spec in ds.features.items():
            if not isinstance(spec, dict) or spec.get("dtype") == "string":
                continue
            stats = by_episode[i].get(key)
            if stats is None:
                ds.problems.append(f"{rel}: episode {i} has no stats for {key!r}")
                continue
            absent = [s for s in layout.STAT_NAMES if s not in stats]
            if absent:
                ds.problems.append(f"{rel}: episode {i} stats for {key!r} lack {absent}")
                continue
            shape = (3, 1, 1) if key in cameras else tuple(spec["shape"])
            bad = [s for s in layout.STAT_NAMES[:-1] if np.shape(stats[s]) != shape]
            if bad:
                ds.problems.append(f"{rel}: episode {i} stats {bad} for {key!r} do not have shape {shape}")
            if key not in cameras and list(stats["count"]) != [episode["length"]]:
                ds.problems.append(
                    f"{rel}: episode {i} count for {key!r} is {stats['count']}, length {episode['length']}")


def _check_videos(ds: _Dataset) -> None:
    video_keys = ds.keys_with(layout.VIDEO_DTYPE)
    if ds.episodes is None or not video_keys or not ds.info.get("video_path"):
        return
    for episode in ds.episodes:
        i = episode["episode_index"]
        for key in video_keys:
            rel = ds.info["video_path"].format(episode_chunk=ds.chunk_of(i), video_key=key, episode_index=i)
            if not (ds.root / rel).exists():
                ds.problems.append(f"{rel}: missing")
                continue
            try:
                frames = count_frames(str(ds.root / rel))
            except Exception as e:  # any demuxer error means the file is unusable
                ds.problems.append(f"{rel}: unreadable video ({e})")
                continue
            if frames != episode["length"]:
                ds.problems.append(f"{rel}: {frames} frames, episode length is {episode['length']}")


def validate_lerobot_v21(root: str | Path, *, check_videos: bool = True,
                         timestamp_tolerance_s: float = 1e-4) -> list[str]:
    """Every way the folder at `root` breaks the LeRobot v2.1 layout; empty when it is valid.

    `check_videos` counts the frames of every mp4 (demuxing only, no decoding).
    """
    root = Path(root)
    info_path = root / layout.INFO_PATH
    if not info_path.exists():
        return [f"{layout.INFO_PATH}: missing"]
    try:
        info = json.loads(info_path.read_text())
    except json.JSONDecodeError as e:
        return [f"{layout.INFO_PATH}: not JSON ({e})"]
    ds = _Dataset(root, info)
    _check_info(ds)
    _check_episodes(ds)
    _check_tasks(ds)
    _check_data(ds, timestamp_tolerance_s)
    _check_stats(ds)
    if check_videos:
        _check_videos(ds)
    return ds.problems
