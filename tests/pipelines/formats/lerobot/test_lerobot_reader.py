import json
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from datasets_cards import Episode, FrameDecodeError, load_source_card
from pipelines.formats import open_reader
from pipelines.formats.lerobot.writer import LeRobotEpisode, write_lerobot_v21
from pipelines.quarantine import Quarantined
from tests.pipelines.formats.lerobot_fixtures import (
    FPS,
    STATIC_KEY,
    calvin_episode,
    calvin_features,
    episode_lengths,
    expected_state,
    frame_rgb,
    write_calvin_v21,
    write_calvin_v30,
)

VIDEO_TOLERANCE = 6  # grey levels: h264/AV1 at 32×48 is lossy, flat colours come back within a few levels
CALVIN = load_source_card("calvin")


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    base = tmp_path_factory.mktemp("lerobot")
    return {
        "v2.1": write_calvin_v21(base / "v21"),
        "v3.0": write_calvin_v30(base / "v30"),
        "v3.0 two files": write_calvin_v30(base / "v30_files", episodes_per_file=2),
        "v2.1 image column": write_calvin_v21(base / "v21_images", gripper_dtype="image"),
        "v3.0 image column": write_calvin_v30(base / "v30_images", gripper_dtype="image"),
    }


@pytest.fixture(params=["v2.1", "v3.0", "v3.0 two files"])
def dataset(request, datasets):
    return datasets[request.param]


def test_empty_range_yields_nothing(dataset):
    assert list(open_reader(CALVIN, str(dataset)).read(0, 0)) == []


def test_reader_counts_episodes_from_metadata(dataset):
    reader = open_reader(CALVIN, str(dataset))
    assert reader.format == "lerobot" and reader.num_episodes() == 3


def test_episodes_carry_card_selected_values(dataset):
    episodes = list(open_reader(CALVIN, str(dataset)))
    assert [e.episode_id for e in episodes] == ["calvin-000000", "calvin-000001", "calvin-000002"]
    assert [e.instruction for e in episodes] == ["open the drawer", "push the blue block left", "open the drawer"]
    for i, (episode, n) in enumerate(zip(episodes, episode_lengths())):
        np.testing.assert_allclose(episode.arm_state, expected_state(i, n)[:, :6])  # card keeps dims 0..5
        assert episode.actions.shape == (n, 7) and episode.fps == FPS


def test_calvin_gripper_plus_one_is_open(dataset):
    episode = next(iter(open_reader(CALVIN, str(dataset))))
    n = len(episode.gripper)  # the fixture commands +1 (open) for the first half, -1 (closed) after
    np.testing.assert_array_equal(episode.gripper, np.r_[np.zeros(n // 2), np.ones(n - n // 2)])


def test_video_frames_decode_lazily_to_the_written_colours(dataset):
    episodes = list(open_reader(CALVIN, str(dataset)))
    for i, episode in enumerate(episodes):
        static = episode.frames["static"]
        assert len(static) == episode.num_frames
        frames = static.load()
        assert frames.shape == (episode.num_frames, 32, 48, 3) and frames.dtype == np.uint8
        expected = np.array([frame_rgb(i, t) for t in range(episode.num_frames)])
        np.testing.assert_allclose(frames.mean(axis=(1, 2)), expected, atol=VIDEO_TOLERANCE)
        np.testing.assert_allclose(episode.frames["gripper"][0].mean(axis=(0, 1)), 255 - expected[0],
                                   atol=VIDEO_TOLERANCE)


def test_read_range_matches_the_full_stream(dataset):
    reader = open_reader(CALVIN, str(dataset))
    assert [e.episode_id for e in reader.read(1, 3)] == [e.episode_id for e in list(reader)[1:3]]


@pytest.mark.parametrize("name", ["v2.1 image column", "v3.0 image column"])
def test_image_column_frames_are_exact(datasets, name):
    episode = list(open_reader(CALVIN, str(datasets[name])))[1]
    assert episode.frames["gripper"].encoded is not None  # PNG bytes from the parquet, decoded on access
    expected = np.broadcast_to(255 - np.array(frame_rgb(1, 3), dtype=np.uint8), (32, 48, 3))
    np.testing.assert_array_equal(episode.frames["gripper"][3], expected)


def test_fsspec_url_locations_read_like_paths(datasets):
    reader = open_reader(CALVIN, f"file://{datasets['v3.0']}")
    episode = list(reader.read(2, 3))[0]
    assert episode.episode_id == "calvin-000002" and episode.frames["static"][0].shape == (32, 48, 3)


def _write_with_nan_state(root):
    episodes = [calvin_episode(e, n) for e, n in enumerate(episode_lengths())]
    episodes[1].data["observation.state"][4, 2] = np.nan
    write_lerobot_v21(root, fps=FPS, features=calvin_features(), episodes=episodes)


def _narrow_state(root):
    path = root / "data/chunk-000/episode_000001.parquet"
    table = pq.read_table(path)
    narrow = pa.array([row[:3] for row in table.column("observation.state").to_pylist()], pa.list_(pa.float32()))
    pq.write_table(table.set_column(table.schema.get_field_index("observation.state"), "observation.state", narrow),
                   path)


def _drop_task(root):
    (root / "meta/tasks.jsonl").write_text(json.dumps({"task_index": 0, "task": "open the drawer"}) + "\n")


EP1_VIDEO = f"videos/chunk-000/{STATIC_KEY}/episode_000001.mp4"
# (name, how to break episode 1 of a fresh v2.1 dataset, a substring of the quarantine reason)
BROKEN = [
    ("nan state", None, "non-finite values (NaN/inf) in arm_state"),
    ("wrong shape", _narrow_state, "holds 30 values for 10 frames"),
    ("missing task", _drop_task, "missing task: task_index 1"),
    ("undecodable video", lambda r: (r / EP1_VIDEO).write_bytes(b"not an mp4 at all"), "undecodable video"),
]


@pytest.mark.parametrize("name, breakage, reason", BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_episode_is_quarantined_and_the_rest_read(datasets, tmp_path, name, breakage, reason):
    root = tmp_path / "ds"
    if breakage is None:
        _write_with_nan_state(root)
    else:
        shutil.copytree(datasets["v2.1"], root)
        breakage(root)
    results = list(open_reader(CALVIN, str(root)))
    assert [type(r) for r in results] == [Episode, Quarantined, Episode]
    assert results[1].episode_id == "calvin-000001" and results[1].source == "calvin"
    assert reason in results[1].reason, results[1].reason


def test_an_episode_whose_video_is_not_downloaded_reads_and_fails_only_when_its_frames_are_decoded(datasets, tmp_path):
    root = shutil.copytree(datasets["v2.1"], tmp_path / "ds")
    (root / EP1_VIDEO).unlink()
    results = list(open_reader(CALVIN, str(root)))
    assert [type(r) for r in results] == [Episode, Episode, Episode]  # state, actions and task are all there
    assert results[1].num_frames == len(results[1].frames["static"]) == 10
    with pytest.raises(FrameDecodeError, match="missing video for camera 'static'"):
        results[1].frames["static"].load()


def test_unknown_codebase_version_names_the_supported_ones(datasets, tmp_path):
    root = shutil.copytree(datasets["v2.1"], tmp_path / "ds")
    info = json.loads((root / "meta/info.json").read_text())
    (root / "meta/info.json").write_text(json.dumps({**info, "codebase_version": "v1.6"}))
    with pytest.raises(ValueError, match=r"'v1.6'; supported versions: v2.0, v2.1, v3.0"):
        open_reader(CALVIN, str(root))


def test_v20_reads_like_v21(datasets, tmp_path):
    root = shutil.copytree(datasets["v2.1"], tmp_path / "ds")  # v2.0 differs only in its stats file
    info = json.loads((root / "meta/info.json").read_text())
    (root / "meta/info.json").write_text(json.dumps({**info, "codebase_version": "v2.0"}))
    (root / "meta/episodes_stats.jsonl").unlink()
    assert [e.instruction for e in open_reader(CALVIN, str(root)).read(0, 2)] == [
        "open the drawer", "push the blue block left"]


def test_card_keys_absent_from_the_dataset_fail_at_open(tmp_path):
    features = {k: v for k, v in calvin_features().items() if k != "action"}
    full = calvin_episode(0, 8)
    episode = LeRobotEpisode(full.task, {"observation.state": full.data["observation.state"]}, full.frames)
    root = write_lerobot_v21(tmp_path / "ds", fps=FPS, features=features, episodes=[episode])
    with pytest.raises(ValueError, match=r"names keys \['action'\]"):
        open_reader(CALVIN, str(root))


def test_location_without_info_json_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="meta/info.json not found"):
        open_reader(CALVIN, str(tmp_path))
