"""LeRobot dataset layouts (v2.1 and v3.0): versions, path templates, file names, keys.

Facts from huggingface/lerobot (`src/lerobot/datasets/utils.py` and the v3.0
release notes); every path the writer, validator and reader use comes from here.
"""

from __future__ import annotations

V20 = "v2.0"  # same files as v2.1 for reading; its stats are one meta/stats.json
V21 = "v2.1"
V30 = "v3.0"

INFO_PATH = "meta/info.json"

# v2.1: one parquet and one mp4 per episode, grouped in chunks of `chunks_size` episodes.
V21_DATA_PATH = "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet"
V21_VIDEO_PATH = "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4"
V21_EPISODES_PATH = "meta/episodes.jsonl"
V21_TASKS_PATH = "meta/tasks.jsonl"
V21_EPISODES_STATS_PATH = "meta/episodes_stats.jsonl"

# v3.0: many episodes per file; per-episode offsets live in the episodes metadata parquet.
V30_DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
V30_VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
V30_EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
V30_EPISODES_GLOB = "meta/episodes/*/*.parquet"
V30_TASKS_PATH = "meta/tasks.parquet"
V30_STATS_PATH = "meta/stats.json"
V30_DATA_FILE_SIZE_MB = 100  # LeRobot's defaults, recorded in info.json
V30_VIDEO_FILE_SIZE_MB = 200

DEFAULT_CHUNKS_SIZE = 1000

# Columns every LeRobot frame carries, with their declared dtype.
DEFAULT_FEATURES: dict[str, dict] = {
    "timestamp": {"dtype": "float32", "shape": [1], "names": None},
    "frame_index": {"dtype": "int64", "shape": [1], "names": None},
    "episode_index": {"dtype": "int64", "shape": [1], "names": None},
    "index": {"dtype": "int64", "shape": [1], "names": None},
    "task_index": {"dtype": "int64", "shape": [1], "names": None},
}

VIDEO_DTYPE = "video"  # frames live in mp4 files, not in the parquet
IMAGE_DTYPE = "image"  # frames live in the parquet as {"bytes", "path"} structs (PNG)
CAMERA_DTYPES = (VIDEO_DTYPE, IMAGE_DTYPE)
STAT_NAMES = ("min", "max", "mean", "std", "count")

V21_INFO_KEYS = (
    "codebase_version", "robot_type", "total_episodes", "total_frames", "total_tasks",
    "total_videos", "total_chunks", "chunks_size", "fps", "splits", "data_path", "video_path", "features",
)
V30_INFO_KEYS = (
    "codebase_version", "robot_type", "total_episodes", "total_frames", "total_tasks",
    "chunks_size", "fps", "splits", "data_path", "video_path", "features",
)
VIDEO_INFO_KEYS = (
    "video.fps", "video.height", "video.width", "video.channels", "video.codec",
    "video.pix_fmt", "video.is_depth_map", "has_audio",
)


def v30_video_columns(video_key: str) -> dict[str, str]:
    """Names of the per-episode video columns in v3.0's episodes metadata."""
    return {
        name: f"videos/{video_key}/{name}"
        for name in ("chunk_index", "file_index", "from_timestamp", "to_timestamp")
    }
