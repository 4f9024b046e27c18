import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from pipelines.formats.lerobot.stats import aggregate_stats, array_to_stats, frames_to_stats
from pipelines.formats.lerobot.validate import validate_lerobot_v21
from pipelines.formats.lerobot.writer import LeRobotEpisode, write_lerobot_v21, write_lerobot_v30
from pipelines.io.video import count_frames
from tests.pipelines.formats.lerobot_fixtures import (
    FPS,
    STATIC_KEY,
    calvin_episode,
    calvin_features,
    episode_lengths,
    frame_rgb,
    write_calvin_v21,
    write_calvin_v30,
)


@pytest.fixture(scope="module")
def v21(tmp_path_factory):
    return write_calvin_v21(tmp_path_factory.mktemp("v21") / "ds")


@pytest.fixture(scope="module")
def v30(tmp_path_factory):
    return write_calvin_v30(tmp_path_factory.mktemp("v30") / "ds", episodes_per_file=2)


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_empty_input_writes_a_valid_empty_v21_dataset(tmp_path):
    root = write_lerobot_v21(tmp_path / "ds", fps=FPS, features=calvin_features(), episodes=[])
    info = json.loads((root / "meta/info.json").read_text())
    assert (info["total_episodes"], info["total_frames"], info["splits"]) == (0, 0, {"train": "0:0"})
    assert validate_lerobot_v21(root) == []


def test_v21_writes_one_parquet_and_one_video_per_episode_and_camera(v21):
    lengths = episode_lengths()
    for i, n in enumerate(lengths):
        table = pq.read_table(v21 / f"data/chunk-000/episode_{i:06d}.parquet")
        assert table.num_rows == n
        assert table.column("frame_index").to_pylist() == list(range(n))
        assert table.column("index").to_pylist()[0] == sum(lengths[:i])
        assert STATIC_KEY not in table.column_names  # video features live in the mp4 only
        for key in (STATIC_KEY, "observation.images.rgb_gripper"):
            assert count_frames(str(v21 / f"videos/chunk-000/{key}/episode_{i:06d}.mp4")) == n


def test_v21_info_totals_and_video_info_match_the_files(v21):
    info = json.loads((v21 / "meta/info.json").read_text())
    assert info["codebase_version"] == "v2.1"
    assert (info["total_episodes"], info["total_frames"], info["total_tasks"]) == (3, sum(episode_lengths()), 2)
    assert (info["total_videos"], info["total_chunks"]) == (6, 1)
    video = info["features"][STATIC_KEY]
    assert video["shape"] == [32, 48, 3] and video["info"]["video.pix_fmt"] == "yuv420p"
    assert video["info"]["video.fps"] == FPS and video["info"]["video.codec"] in {"h264", "av1", "mpeg4"}


def test_v21_episodes_and_tasks_jsonl_list_each_episode_and_task_once(v21):
    episodes = _lines(v21 / "meta/episodes.jsonl")
    assert [(e["episode_index"], e["length"]) for e in episodes] == list(enumerate(episode_lengths()))
    assert _lines(v21 / "meta/tasks.jsonl") == [
        {"task_index": 0, "task": "open the drawer"}, {"task_index": 1, "task": "push the blue block left"}]


def test_v21_camera_stats_are_per_channel_on_unit_scale(v21):
    stats = _lines(v21 / "meta/episodes_stats.jsonl")[0]["stats"]
    camera = stats[STATIC_KEY]
    assert np.shape(camera["mean"]) == (3, 1, 1)
    expected = np.mean([frame_rgb(0, t) for t in range(episode_lengths()[0])], axis=0) / 255
    np.testing.assert_allclose(np.ravel(camera["mean"]), expected, atol=1e-6)
    assert np.shape(stats["observation.state"]["min"]) == (15,) and stats["timestamp"]["count"] == [8]
    assert np.shape(stats["frame_index"]["max"]) == (1,)


def test_v30_concatenates_episodes_and_records_their_offsets(v30):
    meta = pq.read_table(v30 / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    lengths = episode_lengths()
    assert [m["length"] for m in meta] == lengths
    assert [m["data/file_index"] for m in meta] == [0, 0, 1]  # two episodes per file
    assert [(m["dataset_from_index"], m["dataset_to_index"]) for m in meta] == [(0, 8), (8, 18), (18, 30)]
    times = [(m[f"videos/{STATIC_KEY}/from_timestamp"], m[f"videos/{STATIC_KEY}/to_timestamp"]) for m in meta]
    np.testing.assert_allclose(times, [(0, 8 / FPS), (8 / FPS, 18 / FPS), (0, 12 / FPS)])
    assert pq.read_table(v30 / "data/chunk-000/file-000.parquet").num_rows == 18
    assert count_frames(str(v30 / f"videos/{STATIC_KEY}/chunk-000/file-001.mp4")) == 12
    assert np.shape(meta[0][f"stats/{STATIC_KEY}/mean"]) == (3, 1, 1)


def test_v30_meta_holds_tasks_parquet_stats_and_version(v30):
    info = json.loads((v30 / "meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["total_frames"] == 30
    assert info["data_path"] == "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
    tasks = pq.read_table(v30 / "meta/tasks.parquet").to_pydict()
    assert dict(zip(tasks["task"], tasks["task_index"])) == {"open the drawer": 0, "push the blue block left": 1}
    stats = json.loads((v30 / "meta/stats.json").read_text())
    assert stats["index"]["count"] == [30] and stats["index"]["max"] == [29]


def _bad_episode(kind: str) -> LeRobotEpisode:
    episode = calvin_episode(0, 8)
    if kind == "missing feature":
        del episode.data["action"]
    elif kind == "wrong shape":
        episode.data["action"] = episode.data["action"][:, :3]
    elif kind == "undeclared feature":
        episode.data["extra"] = np.zeros(8)
    elif kind == "wrong frame size":
        episode.frames[STATIC_KEY] = episode.frames[STATIC_KEY][:, :16]
    return episode


@pytest.mark.parametrize(
    "kind, message",
    [
        ("missing feature", "lacks feature 'action'"),
        ("wrong shape", "'action' has shape"),
        ("undeclared feature", "undeclared features"),
        ("wrong frame size", "camera 'observation.images.rgb_static' has shape"),
    ],
)
def test_writer_rejects_episodes_that_break_the_features(tmp_path, kind, message):
    with pytest.raises(ValueError, match=message):
        write_lerobot_v21(tmp_path / "ds", fps=FPS, features=calvin_features(), episodes=[_bad_episode(kind)])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"task": "t", "data": {}}, "at least one frame"),
        ({"task": "t", "data": {"a": np.zeros(3), "b": np.zeros(4)}}, "differ in length"),
        ({"task": "t", "data": {}, "frames": {"c": np.zeros((2, 4, 4, 3), np.float32)}}, "uint8"),
    ],
)
def test_episode_rejects_inconsistent_arrays(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LeRobotEpisode(**kwargs)


def test_odd_frame_sizes_pick_an_encoder_that_accepts_them(tmp_path):
    features = {"cam": {"dtype": "video", "shape": [15, 21, 3]}, "x": {"dtype": "float32", "shape": [1]}}
    episode = LeRobotEpisode("t", {"x": np.zeros(4)}, {"cam": np.full((4, 15, 21, 3), 90, np.uint8)})
    root = write_lerobot_v21(tmp_path / "ds", fps=FPS, features=features, episodes=[episode])
    info = json.loads((root / "meta/info.json").read_text())
    assert info["features"]["cam"]["info"]["video.codec"] != "h264"  # libx264 refuses odd sizes
    assert validate_lerobot_v21(root) == []


def test_matrix_features_round_trip_as_nested_fixed_size_lists(tmp_path):
    features = {"pose": {"dtype": "float64", "shape": [2, 3]}, "name": {"dtype": "string", "shape": [1]}}
    pose = np.arange(24.0).reshape(4, 2, 3)
    episode = LeRobotEpisode("t", {"pose": pose, "name": np.array(["a", "b", "c", "d"])})
    root = write_lerobot_v21(tmp_path / "ds", fps=FPS, features=features, episodes=[episode])
    table = pq.read_table(root / "data/chunk-000/episode_000000.parquet")
    pose_type = table.schema.field("pose").type
    assert (pose_type.list_size, pose_type.value_type.list_size) == (2, 3)
    np.testing.assert_array_equal(np.array(table.column("pose").to_pylist()), pose)
    assert table.column("name").to_pylist() == ["a", "b", "c", "d"]
    assert validate_lerobot_v21(root) == []


def test_writer_refuses_to_overwrite_a_dataset(v21):
    with pytest.raises(FileExistsError):
        write_lerobot_v21(v21, fps=FPS, features=calvin_features(), episodes=[])


def test_writer_refuses_declared_default_features(tmp_path):
    with pytest.raises(ValueError, match="added by the writer"):
        write_lerobot_v30(tmp_path / "ds", fps=FPS, features={"index": {"dtype": "int64", "shape": [1]}}, episodes=[])


@pytest.mark.parametrize(
    "values, shape",
    [(np.arange(4.0), (1,)), (np.arange(12.0).reshape(4, 3), (3,)), (np.zeros((4, 2, 2)), (2, 2))],
)
def test_array_stats_keep_the_feature_shape(values, shape):
    stats = array_to_stats(values)
    assert all(stats[name].shape == shape for name in ("min", "max", "mean", "std")) and stats["count"] == [4]


def test_aggregated_stats_equal_stats_of_the_concatenation():
    rng = np.random.default_rng(0)
    parts = [rng.normal(size=(n, 3)) for n in (5, 9, 2)]
    pooled = aggregate_stats([array_to_stats(p) for p in parts])
    direct = array_to_stats(np.concatenate(parts))
    for name in ("min", "max", "mean", "std", "count"):
        np.testing.assert_allclose(pooled[name], direct[name], atol=1e-12)


def test_frame_stats_are_per_channel_and_scaled_to_unit_range():
    frames = np.zeros((2, 4, 4, 3), np.uint8)
    frames[..., 0], frames[1, ..., 2] = 255, 51
    stats = frames_to_stats(frames)
    np.testing.assert_allclose(stats["mean"].ravel(), [1.0, 0.0, 0.1])
    np.testing.assert_allclose(stats["max"].ravel(), [1.0, 0.0, 0.2])
