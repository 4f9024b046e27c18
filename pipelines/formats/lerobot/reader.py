"""LeRobot datasets (layouts v2.0/v2.1 and v3.0) → canonical Episodes.

The layout is detected from meta/info.json `codebase_version`; each supported
version has an index function that turns its metadata into one `_EpisodeRef`
per episode (where its rows and video segments are). Reading an episode is then
the same for every version: its rows from the parquet, its frames lazily from
the mp4 segment (PyAV) or from image bytes stored in the parquet.
All file access goes through fsspec, so `location` may be a local path or a URL.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from datasets_cards import GRIPPER_RAW, Episode, EpisodeError, FrameDecodeError, FrameSequence
from datasets_cards.registry import Registry
from pipelines.formats.base import SourceReader, register_reader
from pipelines.formats.lerobot import layout
from pipelines.io.video import decode_segment
from pipelines.quarantine import Quarantined

TASK_INSTRUCTION_KEY = "task"  # instruction_key meaning "the episode's task string via task_index"


@dataclass(frozen=True)
class _EpisodeRef:
    episode_index: int
    length: int
    data_path: str  # relative to the dataset root
    videos: dict[str, tuple[str, float]]  # video key → (relative mp4 path, start time of the episode in it)


@dataclass(frozen=True)
class _Index:
    episodes: list[_EpisodeRef]
    tasks: dict[int, str]


def _read_json_lines(fs, path: str) -> list[dict]:
    with fs.open(path, "rb") as f:
        return [json.loads(line) for line in f.read().decode().splitlines() if line.strip()]


def _index_v21(fs, root: str, info: dict) -> _Index:
    video_keys = [k for k, s in info["features"].items() if s["dtype"] == layout.VIDEO_DTYPE]
    chunks_size = int(info.get("chunks_size") or layout.DEFAULT_CHUNKS_SIZE)
    refs = []
    for row in sorted(_read_json_lines(fs, f"{root}/{layout.V21_EPISODES_PATH}"), key=lambda r: r["episode_index"]):
        i = int(row["episode_index"])
        where = {"episode_chunk": i // chunks_size, "episode_index": i}
        videos = {k: (info["video_path"].format(video_key=k, **where), 0.0) for k in video_keys}
        refs.append(_EpisodeRef(i, int(row["length"]), info["data_path"].format(**where), videos))
    tasks = {int(r["task_index"]): r["task"] for r in _read_json_lines(fs, f"{root}/{layout.V21_TASKS_PATH}")}
    return _Index(refs, tasks)


def _index_v30(fs, root: str, info: dict) -> _Index:
    video_keys = [k for k, s in info["features"].items() if s["dtype"] == layout.VIDEO_DTYPE]
    files = sorted(fs.glob(f"{root}/{layout.V30_EPISODES_GLOB}"))
    if not files:
        raise FileNotFoundError(f"no episode metadata under {root}/meta/episodes/")
    columns = ["episode_index", "length", "data/chunk_index", "data/file_index"]
    columns += [c for key in video_keys for c in layout.v30_video_columns(key).values()]  # not the stats
    table = pa.concat_tables([pq.read_table(f, filesystem=fs, columns=columns) for f in files])
    refs = []
    for row in sorted(table.to_pylist(), key=lambda r: r["episode_index"]):
        data = info["data_path"].format(chunk_index=row["data/chunk_index"], file_index=row["data/file_index"])
        videos = {}
        for key in video_keys:
            col = layout.v30_video_columns(key)
            path = info["video_path"].format(video_key=key, chunk_index=row[col["chunk_index"]],
                                             file_index=row[col["file_index"]])
            videos[key] = (path, float(row[col["from_timestamp"]]))
        refs.append(_EpisodeRef(int(row["episode_index"]), int(row["length"]), data, videos))
    tasks_table = pq.read_table(f"{root}/{layout.V30_TASKS_PATH}", filesystem=fs)
    # pandas writes the task-string index as a column named "task" (or __index_level_0__ when unnamed)
    text_column = next(c for c in ("task", "__index_level_0__") if c in tasks_table.column_names)
    tasks = dict(zip(tasks_table.column("task_index").to_pylist(), tasks_table.column(text_column).to_pylist()))
    return _Index(refs, tasks)


# codebase_version → the function that indexes that layout's metadata
VERSIONS: Registry[Callable[..., _Index]] = Registry("LeRobot layout version")
for _version, _index in ((layout.V20, _index_v21), (layout.V21, _index_v21), (layout.V30, _index_v30)):
    VERSIONS.add(_version, _index)


def _column_to_array(table: pa.Table, key: str, shape: list[int]) -> np.ndarray:
    """A feature column → float32 T × prod(shape); raises EpisodeError on a wrong shape."""
    values = table.column(key).combine_chunks()
    size = int(np.prod(shape))
    while pa.types.is_list(values.type) or pa.types.is_fixed_size_list(values.type) \
            or pa.types.is_large_list(values.type):
        values = values.flatten()
    flat = values.to_numpy(zero_copy_only=False).astype(np.float32)
    if flat.size != table.num_rows * size:
        raise EpisodeError(f"feature {key!r} holds {flat.size} values for {table.num_rows} frames, "
                           f"expected shape {shape} per frame")
    return flat.reshape(table.num_rows, size)


def _missing_video(camera: str, path: str) -> np.ndarray:
    raise FrameDecodeError(f"missing video for camera {camera!r}: {path}")


@register_reader("lerobot")
class LeRobotReader(SourceReader):
    """Streams a LeRobot dataset (v2.0, v2.1 or v3.0) as canonical Episodes, configured by the source card."""

    def __init__(self, card, location: str | None = None):
        super().__init__(card, location)
        self.fs, self.root = fsspec.core.url_to_fs(self.location)
        info_path = f"{self.root}/{layout.INFO_PATH}"
        if not self.fs.exists(info_path):
            raise FileNotFoundError(f"{self.location} is not a LeRobot dataset: {layout.INFO_PATH} not found")
        with self.fs.open(info_path, "rb") as f:
            self.info = json.loads(f.read())
        self.version = self.info.get("codebase_version")
        if self.version not in VERSIONS:
            raise ValueError(
                f"LeRobot dataset {self.location} has codebase_version {self.version!r}; "
                f"supported versions: {', '.join(VERSIONS.names())}. Convert it with LeRobot's "
                f"conversion scripts (lerobot.datasets.v30.convert_dataset_v21_to_v30)."
            )
        self.features: dict[str, dict] = self.info["features"]
        self.fps = float(self.info.get("fps") or card.fps)
        self._check_card_keys()
        self._index: _Index | None = None

    def _check_card_keys(self) -> None:
        card = self.card
        wanted = [c.key for c in card.cameras.values()] + card.state.keys + card.action.keys
        if card.gripper is not None:
            wanted.append(card.gripper.key)
        if card.instruction_key != TASK_INSTRUCTION_KEY:
            wanted.append(card.instruction_key)
        missing = sorted(set(wanted) - set(self.features))
        if missing:
            raise ValueError(f"source card {card.name!r} names keys {missing} that {self.location} does not have; "
                             f"its features are {sorted(self.features)}")
        not_cameras = [c.key for c in card.cameras.values()
                       if self.features[c.key]["dtype"] not in layout.CAMERA_DTYPES]
        if not_cameras:
            raise ValueError(f"source card {card.name!r} camera keys {not_cameras} are not video/image features")

    def _episodes(self) -> _Index:
        if self._index is None:
            self._index = VERSIONS.get(self.version)(self.fs, self.root, self.info)
        return self._index

    def num_episodes(self) -> int:
        return len(self._episodes().episodes)

    def _episode_id(self, ref: _EpisodeRef) -> str:
        return f"{self.card.name}-{ref.episode_index:06d}"  # LeRobot's own episode_index is the dataset's key

    def episode_ids(self, start: int, stop: int) -> list[str]:
        return [self._episode_id(ref) for ref in self._episodes().episodes[start:stop]]

    def read(self, start: int, stop: int) -> Iterator[Episode | Quarantined]:
        for ref in self._episodes().episodes[start:stop]:
            episode_id = self._episode_id(ref)
            try:
                yield self._episode(ref, episode_id)
            except EpisodeError as e:
                yield Quarantined(episode_id, e.reason, source=self.card.name)
            except (OSError, pa.ArrowException, KeyError, IndexError, ValueError) as e:
                yield Quarantined(episode_id, f"unreadable episode: {type(e).__name__}: {e}", source=self.card.name)

    def _columns(self) -> list[str]:
        card = self.card
        keys = card.state.keys + card.action.keys + ["task_index"]
        keys += [c.key for c in card.cameras.values() if self.features[c.key]["dtype"] == layout.IMAGE_DTYPE]
        if card.gripper is not None:
            keys.append(card.gripper.key)
        if card.instruction_key != TASK_INSTRUCTION_KEY:
            keys.append(card.instruction_key)
        return list(dict.fromkeys(keys))

    def _instruction(self, table: pa.Table) -> str:
        if self.card.instruction_key != TASK_INSTRUCTION_KEY:
            return table.column(self.card.instruction_key)[0].as_py() or ""
        task_index = table.column("task_index")[0].as_py()
        tasks = self._episodes().tasks
        if task_index not in tasks:
            raise EpisodeError(f"missing task: task_index {task_index} is not in the dataset's tasks")
        return tasks[task_index]

    def _frames(self, table: pa.Table, ref: _EpisodeRef) -> dict[str, FrameSequence]:
        frames = {}
        for name, camera in self.card.cameras.items():
            if self.features[camera.key]["dtype"] == layout.IMAGE_DTYPE:
                images = table.column(camera.key).to_pylist()
                if any(not image or not image.get("bytes") for image in images):
                    raise EpisodeError(f"camera {name!r}: image column {camera.key!r} has frames without bytes")
                frames[name] = FrameSequence([image["bytes"] for image in images])
                continue
            path, start = ref.videos[camera.key]
            if not self.fs.exists(f"{self.root}/{path}"):
                # Videos not downloaded: state-only pipelines (la) still read the episode; one that decodes
                # the frames gets this error, and the flow quarantines the episode there.
                frames[name] = FrameSequence(loader=partial(_missing_video, name, path), length=ref.length)
                continue
            self._probe(name, path)
            frames[name] = FrameSequence(loader=partial(self._decode, path, start, ref.length), length=ref.length)
        return frames

    def _probe(self, camera: str, path: str) -> None:
        """Open the container and find a video stream: catches truncated or non-video files early."""
        import av

        try:
            with self.fs.open(f"{self.root}/{path}", "rb") as f, av.open(f) as container:
                if not container.streams.video:
                    raise EpisodeError(f"undecodable video for camera {camera!r}: {path} has no video stream")
        except EpisodeError:
            raise
        except Exception as e:  # PyAV raises a family of FFmpeg errors for corrupt files
            raise EpisodeError(f"undecodable video for camera {camera!r}: {path}: {e}") from e

    def _decode(self, path: str, start: float, length: int) -> np.ndarray:
        with self.fs.open(f"{self.root}/{path}", "rb") as f:
            return decode_segment(f, start_time=start, num_frames=length, fps=self.fps)

    def _episode(self, ref: _EpisodeRef, episode_id: str) -> Episode:
        card = self.card
        table = pq.read_table(f"{self.root}/{ref.data_path}", filesystem=self.fs, columns=self._columns(),
                              filters=[("episode_index", "=", ref.episode_index)])
        if table.num_rows != ref.length:
            raise EpisodeError(f"parquet holds {table.num_rows} frames, episode metadata says {ref.length}")
        if table.num_rows == 0:
            raise EpisodeError("zero-length episode")
        array = {key: _column_to_array(table, key, self.features[key]["shape"])
                 for key in set(card.state.keys + card.action.keys + ([card.gripper.key] if card.gripper else []))}
        state = np.concatenate([array[k] for k in card.state.keys], axis=1)
        if card.state.dims is not None:
            state = state[:, card.state.dims]
        metadata: dict[str, Any] = {"episode_index": ref.episode_index, "codebase_version": self.version}
        if card.gripper is None:
            gripper = np.zeros(table.num_rows, dtype=np.float32)
        else:
            metadata[GRIPPER_RAW] = np.asarray(array[card.gripper.key][:, card.gripper.index or 0], np.float32)
            gripper = card.gripper.normalise(metadata[GRIPPER_RAW])
        return Episode(
            episode_id=episode_id,
            source=card.name,
            instruction=self._instruction(table),
            fps=self.fps,
            frames=self._frames(table, ref),
            arm_state=state,
            gripper=gripper,
            actions=np.concatenate([array[k] for k in card.action.keys], axis=1),
            metadata=metadata,
        )
