"""Write episodes in the LeRobot dataset layouts v2.1 and v3.0.

Phases (both versions): check each episode against the declared features →
write its frame table (parquet) and its camera videos (mp4, PyAV) → record its
metadata line and statistics → after the last episode, write the task table and
meta/info.json with totals. Episodes stream through: only one is held at a time.
"""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.formats.lerobot import layout
from pipelines.formats.lerobot.stats import aggregate_stats, array_to_stats, frames_to_stats, stats_to_json
from pipelines.io.video import CODEC_NAMES, PIX_FMT, VideoEncoder, pick_video_codec


@dataclass(frozen=True)
class EncodedVideo:
    """A camera's frames already encoded as an MP4 (local file) with LeRobot's statistics of those frames.

    Lets a writer take clips encoded earlier, while the frames were in memory, instead of pixels;
    they must use the layout's codec and pixel format (pipelines.io.video.VideoEncoder).
    """

    path: str
    length: int
    shape: tuple[int, int, int]  # H, W, 3
    stats: dict[str, np.ndarray]  # frames_to_stats of the frames it holds

    def __len__(self) -> int:
        return self.length


@dataclass
class LeRobotEpisode:
    """One episode to write: its task, per-frame feature arrays and camera frames.

    `data` maps every non-camera feature key to a T × shape array; `frames` maps
    every camera feature (dtype "video" or "image") to uint8 T×H×W×3 frames;
    `videos` maps video features to clips already encoded (v2.1 only).
    """

    task: str
    data: dict[str, np.ndarray]
    frames: dict[str, np.ndarray] = field(default_factory=dict)
    videos: dict[str, EncodedVideo] = field(default_factory=dict)

    def __post_init__(self) -> None:
        lengths = {key: len(v) for key, v in {**self.data, **self.frames, **self.videos}.items()}
        if not lengths or min(lengths.values()) == 0:
            raise ValueError(f"episode needs at least one frame in some feature, got lengths {lengths}")
        if len(set(lengths.values())) != 1:
            raise ValueError(f"episode features differ in length: {lengths}")
        for key, frames in self.frames.items():
            if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
                raise ValueError(f"camera {key!r} must be uint8 T×H×W×3, got {frames.dtype} {frames.shape}")

    @property
    def length(self) -> int:
        return len(next(iter({**self.data, **self.frames, **self.videos}.values())))


def _arrow_type(dtype: str, shape: list[int]) -> pa.DataType:
    if dtype == layout.IMAGE_DTYPE:
        return pa.struct([("bytes", pa.binary()), ("path", pa.string())])  # HF datasets' Image storage
    arrow = pa.string() if dtype == "string" else pa.from_numpy_dtype(np.dtype(dtype))
    if list(shape) == [1]:
        return arrow
    for size in reversed(shape):
        arrow = pa.list_(arrow, size)
    return arrow


def _numeric_array(values: np.ndarray, spec: dict) -> pa.Array:
    """T × shape numbers → a scalar column, or nested fixed-size lists built without Python loops."""
    array = pa.array(np.asarray(values, dtype=np.dtype(spec["dtype"])).reshape(-1))
    if spec["shape"] != [1]:
        for size in reversed(spec["shape"]):
            array = pa.FixedSizeListArray.from_arrays(array, size)
    return array


def _png(image: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


class _Features:
    """The declared features plus LeRobot's default columns, and how to tabulate an episode."""

    def __init__(self, features: dict, fps: float, codec: str | None):
        overlap = set(features) & set(layout.DEFAULT_FEATURES)
        if overlap:
            raise ValueError(f"features {sorted(overlap)} are added by the writer; do not declare them")
        self.fps = fps
        sizes = [tuple(s["shape"][:2]) for s in features.values() if s.get("dtype") == layout.VIDEO_DTYPE]
        self.codec = codec or (pick_video_codec(sizes) if sizes else None)
        self.features: dict[str, dict] = {}
        for key, spec in features.items():
            if "dtype" not in spec or "shape" not in spec:
                raise ValueError(f"feature {key!r} needs 'dtype' and 'shape', got {spec}")
            spec = {"dtype": spec["dtype"], "shape": list(spec["shape"]), "names": spec.get("names")}
            if spec["dtype"] in layout.CAMERA_DTYPES:
                if len(spec["shape"]) != 3 or spec["shape"][2] != 3:
                    raise ValueError(f"camera feature {key!r} needs shape [H, W, 3], got {spec['shape']}")
                spec["names"] = spec["names"] or ["height", "width", "channels"]
            if spec["dtype"] == layout.VIDEO_DTYPE:
                spec["info"] = self._video_info(spec["shape"])
            self.features[key] = spec
        self.features.update({k: dict(v) for k, v in layout.DEFAULT_FEATURES.items()})
        self.camera_keys = [k for k, s in self.features.items() if s["dtype"] in layout.CAMERA_DTYPES]
        self.video_keys = [k for k, s in self.features.items() if s["dtype"] == layout.VIDEO_DTYPE]
        self.data_keys = [k for k in features if k not in self.camera_keys]
        self.schema = pa.schema(
            [(k, _arrow_type(s["dtype"], s["shape"])) for k, s in self.features.items() if k not in self.video_keys]
        )

    def _video_info(self, shape: list[int]) -> dict:
        return {
            "video.fps": self.fps, "video.height": shape[0], "video.width": shape[1], "video.channels": shape[2],
            "video.codec": CODEC_NAMES.get(self.codec, self.codec), "video.pix_fmt": PIX_FMT,
            "video.is_depth_map": False, "has_audio": False,
        }

    def check(self, episode: LeRobotEpisode, episode_index: int) -> None:
        t = episode.length
        for key in self.data_keys:
            spec = self.features[key]
            if key not in episode.data:
                raise ValueError(f"episode {episode_index} lacks feature {key!r}")
            got = tuple(np.shape(episode.data[key]))
            allowed = {(t, *spec["shape"])} | ({(t,)} if spec["shape"] == [1] else set())  # scalars: T or T×1
            if got not in allowed:
                raise ValueError(
                    f"episode {episode_index} feature {key!r} has shape {got}, expected {(t, *spec['shape'])}")
        for key in self.camera_keys:
            if key in episode.videos and key in self.video_keys:
                shape = (episode.videos[key].length, *episode.videos[key].shape)
            elif key in episode.frames:
                shape = episode.frames[key].shape
            else:
                raise ValueError(f"episode {episode_index} lacks camera {key!r}")
            if shape != (t, *self.features[key]["shape"]):
                raise ValueError(
                    f"episode {episode_index} camera {key!r} has shape {shape}, expected {(t, *self.features[key]['shape'])}"
                )
        unknown = (set(episode.data) - set(self.data_keys) | set(episode.frames) - set(self.camera_keys)
                   | set(episode.videos) - set(self.video_keys))
        if unknown:
            raise ValueError(f"episode {episode_index} has undeclared features {sorted(unknown)}")

    def table(self, episode: LeRobotEpisode, episode_index: int, first_index: int, task_index: int) -> pa.Table:
        t = episode.length
        columns = {
            "timestamp": np.arange(t, dtype=np.float32) / np.float32(self.fps),
            "frame_index": np.arange(t, dtype=np.int64),
            "episode_index": np.full(t, episode_index, dtype=np.int64),
            "index": np.arange(first_index, first_index + t, dtype=np.int64),
            "task_index": np.full(t, task_index, dtype=np.int64),
        }
        arrays = []
        for name in self.schema.names:
            if name in columns:
                values = columns[name]
            elif self.features[name]["dtype"] == layout.IMAGE_DTYPE:
                values = [{"bytes": _png(image), "path": None} for image in episode.frames[name]]
            elif self.features[name]["dtype"] == "string":
                values = np.asarray(episode.data[name]).reshape(t).tolist()
            else:
                arrays.append(_numeric_array(episode.data[name], self.features[name]))
                continue
            arrays.append(pa.array(values, type=self.schema.field(name).type))
        return pa.Table.from_arrays(arrays, schema=self.schema)

    def stats(self, episode: LeRobotEpisode, table: pa.Table) -> dict[str, dict[str, np.ndarray]]:
        out = {}
        for key, spec in self.features.items():
            if spec["dtype"] == "string":
                continue
            if key in episode.videos:
                out[key] = dict(episode.videos[key].stats)
            elif key in self.camera_keys:
                out[key] = frames_to_stats(episode.frames[key])
            elif key in episode.data:
                values = np.asarray(episode.data[key]).reshape(episode.length, *spec["shape"])
                out[key] = array_to_stats(values[:, 0] if spec["shape"] == [1] else values)
            else:
                out[key] = array_to_stats(table.column(key).to_numpy())
        return out


class _Tasks:
    """Task strings in order of first appearance → task_index."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}

    def __call__(self, task: str) -> int:
        if not isinstance(task, str) or not task:
            raise ValueError(f"episode task must be a non-empty string, got {task!r}")
        return self.index.setdefault(task, len(self.index))


def _prepare_root(root: str | Path) -> Path:
    root = Path(root)
    if (root / layout.INFO_PATH).exists():
        raise FileExistsError(f"{root} already holds a LeRobot dataset ({layout.INFO_PATH}); write to a new folder")
    (root / "meta").mkdir(parents=True, exist_ok=True)
    return root


def _write_json(path: Path, value: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=4) + "\n")


def _common_info(version: str, robot_type: str, n_episodes: int, n_frames: int, n_tasks: int,
                 chunks_size: int, fps: float) -> dict:
    return {
        "codebase_version": version,
        "robot_type": robot_type,
        "total_episodes": n_episodes,
        "total_frames": n_frames,
        "total_tasks": n_tasks,
        "chunks_size": chunks_size,
        "fps": fps,
        "splits": {"train": f"0:{n_episodes}"},
    }


def write_lerobot_v21(
    root: str | Path,
    *,
    fps: float,
    features: dict,
    episodes: Iterable[LeRobotEpisode],
    robot_type: str = "unknown",
    chunks_size: int = layout.DEFAULT_CHUNKS_SIZE,
    video_codec: str | None = None,
) -> Path:
    """Write `episodes` as a LeRobot v2.1 dataset under `root` (a new folder). Returns `root`.

    `features` declares the non-default features ({key: {dtype, shape, names}});
    camera features use dtype "video" (mp4 per episode) or "image" (PNG in the parquet).
    """
    root = _prepare_root(root)
    spec = _Features(features, fps, video_codec)
    tasks = _Tasks()
    n_episodes = n_frames = 0
    with (root / layout.V21_EPISODES_PATH).open("w") as ep_lines, \
            (root / layout.V21_EPISODES_STATS_PATH).open("w") as stats_lines:
        for i, episode in enumerate(episodes):
            spec.check(episode, i)
            table = spec.table(episode, i, n_frames, tasks(episode.task))
            chunk = i // chunks_size
            data_path = root / layout.V21_DATA_PATH.format(episode_chunk=chunk, episode_index=i)
            data_path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(table, data_path)
            for key in spec.video_keys:
                video_path = root / layout.V21_VIDEO_PATH.format(episode_chunk=chunk, video_key=key, episode_index=i)
                video_path.parent.mkdir(parents=True, exist_ok=True)
                if key in episode.videos:  # encoded earlier with the same settings: copied as it is
                    shutil.copyfile(episode.videos[key].path, video_path)
                    continue
                height, width, _ = spec.features[key]["shape"]
                with VideoEncoder(str(video_path), fps=fps, height=height, width=width, codec=spec.codec) as enc:
                    enc.write(episode.frames[key])
            ep_lines.write(json.dumps({"episode_index": i, "tasks": [episode.task], "length": episode.length}) + "\n")
            stats = stats_to_json(spec.stats(episode, table))
            stats_lines.write(json.dumps({"episode_index": i, "stats": stats}) + "\n")
            n_episodes, n_frames = i + 1, n_frames + episode.length
    with (root / layout.V21_TASKS_PATH).open("w") as f:
        for task, index in tasks.index.items():
            f.write(json.dumps({"task_index": index, "task": task}) + "\n")
    info = _common_info(layout.V21, robot_type, n_episodes, n_frames, len(tasks.index), chunks_size, fps)
    info.update(
        total_videos=n_episodes * len(spec.video_keys),
        total_chunks=-(-n_episodes // chunks_size),
        data_path=layout.V21_DATA_PATH,
        video_path=layout.V21_VIDEO_PATH if spec.video_keys else None,
        features=spec.features,
    )
    _write_json(root / layout.INFO_PATH, {k: info[k] for k in layout.V21_INFO_KEYS})
    return root


class _V30Files:
    """The data parquet and video files episodes are appended to; rolls over every `per_file` episodes."""

    def __init__(self, root: Path, spec: _Features, per_file: int | None, chunks_size: int):
        self.root, self.spec, self.per_file, self.chunks_size = root, spec, per_file, chunks_size
        self.number = -1
        self.data: pq.ParquetWriter | None = None
        self.videos: dict[str, VideoEncoder] = {}

    def location(self, number: int) -> dict[str, int]:
        return {"chunk_index": number // self.chunks_size, "file_index": number % self.chunks_size}

    def open_for(self, episode_index: int) -> dict[str, int]:
        number = 0 if self.per_file is None else episode_index // self.per_file
        if number != self.number:
            self.close()
            self.number = number
            where = self.location(number)
            data_path = self.root / layout.V30_DATA_PATH.format(**where)
            data_path.parent.mkdir(parents=True, exist_ok=True)
            self.data = pq.ParquetWriter(data_path, self.spec.schema)
            for key in self.spec.video_keys:
                video_path = self.root / layout.V30_VIDEO_PATH.format(video_key=key, **where)
                video_path.parent.mkdir(parents=True, exist_ok=True)
                height, width, _ = self.spec.features[key]["shape"]
                self.videos[key] = VideoEncoder(str(video_path), fps=self.spec.fps, height=height, width=width,
                                                codec=self.spec.codec)
        return self.location(number)

    def close(self) -> None:
        if self.data is not None:
            self.data.close()
        for encoder in self.videos.values():
            encoder.close()
        self.data, self.videos = None, {}


def write_lerobot_v30(
    root: str | Path,
    *,
    fps: float,
    features: dict,
    episodes: Iterable[LeRobotEpisode],
    robot_type: str = "unknown",
    chunks_size: int = layout.DEFAULT_CHUNKS_SIZE,
    episodes_per_file: int | None = None,
    video_codec: str | None = None,
) -> Path:
    """Write `episodes` as a LeRobot v3.0 dataset under `root` (a new folder). Returns `root`.

    Episodes are concatenated into shared data/video files, `episodes_per_file` per
    file (None: all in one, LeRobot's size-based rollover is not modelled); the
    per-episode offsets go to meta/episodes/chunk-000/file-000.parquet.
    """
    root = _prepare_root(root)
    spec = _Features(features, fps, video_codec)
    tasks = _Tasks()
    files = _V30Files(root, spec, episodes_per_file, chunks_size)
    rows: list[dict] = []
    all_stats: dict[str, list[dict]] = {}
    n_frames = 0
    try:
        for i, episode in enumerate(episodes):
            if episode.videos:
                raise ValueError("v3.0 concatenates videos and needs the frames; encoded clips are for v2.1")
            spec.check(episode, i)
            table = spec.table(episode, i, n_frames, tasks(episode.task))
            where = files.open_for(i)
            files.data.write_table(table)  # type: ignore[union-attr]
            row = {
                "episode_index": i, "tasks": [episode.task], "length": episode.length,
                "data/chunk_index": where["chunk_index"], "data/file_index": where["file_index"],
                "dataset_from_index": n_frames, "dataset_to_index": n_frames + episode.length,
            }
            for key in spec.video_keys:
                encoder = files.videos[key]
                start = encoder.frames_written / fps
                encoder.write(episode.frames[key])
                columns = layout.v30_video_columns(key)
                row[columns["chunk_index"]], row[columns["file_index"]] = where["chunk_index"], where["file_index"]
                row[columns["from_timestamp"]], row[columns["to_timestamp"]] = start, encoder.frames_written / fps
            row["meta/episodes/chunk_index"], row["meta/episodes/file_index"] = 0, 0
            for key, stats in spec.stats(episode, table).items():
                all_stats.setdefault(key, []).append(stats)
                row.update({f"stats/{key}/{name}": np.asarray(v).tolist() for name, v in stats.items()})
            rows.append(row)
            n_frames += episode.length
    finally:
        files.close()
    episodes_path = root / layout.V30_EPISODES_PATH.format(chunk_index=0, file_index=0)
    episodes_path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), episodes_path)
    _write_tasks_parquet(root / layout.V30_TASKS_PATH, tasks.index)
    if all_stats:
        _write_json(root / layout.V30_STATS_PATH, stats_to_json({k: aggregate_stats(v) for k, v in all_stats.items()}))
    info = _common_info(layout.V30, robot_type, len(rows), n_frames, len(tasks.index), chunks_size, fps)
    info.update(
        data_files_size_in_mb=layout.V30_DATA_FILE_SIZE_MB,
        video_files_size_in_mb=layout.V30_VIDEO_FILE_SIZE_MB,
        data_path=layout.V30_DATA_PATH,
        video_path=layout.V30_VIDEO_PATH if spec.video_keys else None,
        features=spec.features,
    )
    _write_json(root / layout.INFO_PATH, info)
    return root


def _write_tasks_parquet(path: Path, tasks: dict[str, int]) -> None:
    """LeRobot v3.0 stores tasks as a pandas frame indexed by the task string."""
    import pandas as pd

    frame = pd.DataFrame({"task_index": list(tasks.values())}, index=pd.Index(list(tasks), name="task"))
    frame.to_parquet(path)
