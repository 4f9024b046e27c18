import json

import numpy as np
import pytest

h5py = pytest.importorskip("h5py", reason="the hdf5 reader needs h5py")

from datasets_cards import Episode, load_source_card  # noqa: E402
from pipelines.formats import open_reader  # noqa: E402
from pipelines.io.video import VideoEncoder  # noqa: E402
from pipelines.quarantine import Quarantined  # noqa: E402

LIBERO = load_source_card("libero")
EGODEX = load_source_card("egodex")
H, W = 16, 24
VIDEO_TOLERANCE = 6  # grey levels lost to lossy video


# ---- robomimic (LIBERO) fixtures ------------------------------------------------------------

def libero_image(t: int) -> np.ndarray:
    """Stored upside down as LIBERO stores them: the bright corner is bottom-right in the file."""
    image = np.full((H, W, 3), 10 * t, np.uint8)
    image[-4:, -4:] = 250
    return image


def write_robomimic(path, demos: dict[str, int], instruction: str | None = "turn on the stove", nan_demo=None):
    with h5py.File(path, "w") as f:
        data = f.create_group("data")
        if instruction is not None:
            data.attrs["problem_info"] = json.dumps({"problem_name": "stove", "language_instruction": instruction})
        for name, t in demos.items():
            demo = data.create_group(name)
            steps = np.arange(t, dtype=np.float64)[:, None]
            demo["obs/ee_pos"] = np.hstack([steps, steps + 1, steps + 2]) * 0.01
            demo["obs/ee_ori"] = np.zeros((t, 3))
            if name == nan_demo:
                demo["obs/ee_pos"][2, 0] = np.nan
            demo["obs/agentview_rgb"] = np.stack([libero_image(i) for i in range(t)])
            demo["obs/eye_in_hand_rgb"] = np.zeros((t, H, W, 3), np.uint8)
            actions = np.zeros((t, 7))
            actions[:, 6] = np.where(np.arange(t) < t // 2, -1.0, 1.0)  # LIBERO: -1 open, +1 close
            demo["actions"] = actions


@pytest.fixture(scope="module")
def libero_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("libero")
    write_robomimic(root / "b_stove.hdf5", {"demo_0": 8, "demo_10": 9, "demo_2": 10})
    write_robomimic(root / "a_bowl.hdf5", {"demo_1": 8}, instruction="put the bowl on the plate")
    return root


def test_empty_folder_has_no_episodes(tmp_path):
    reader = open_reader(LIBERO, str(tmp_path))
    assert reader.num_episodes() == 0 and list(reader) == []


def test_robomimic_order_is_sorted_files_then_numeric_demos(libero_dir):
    episodes = list(open_reader(LIBERO, str(libero_dir)))
    assert [e.episode_id for e in episodes] == [
        "libero-a_bowl-demo_1", "libero-b_stove-demo_0", "libero-b_stove-demo_2", "libero-b_stove-demo_10"]
    assert [e.instruction for e in episodes] == ["put the bowl on the plate"] + ["turn on the stove"] * 3


def test_robomimic_state_actions_and_libero_gripper_minus_one_is_open(libero_dir):
    episode = list(open_reader(LIBERO, str(libero_dir)).read(1, 2))[0]
    assert episode.arm_state.shape == (8, 6) and episode.actions.shape == (8, 7)
    np.testing.assert_allclose(episode.arm_state[3, :3], [0.03, 0.04, 0.05], rtol=1e-6)
    np.testing.assert_array_equal(episode.gripper, [0, 0, 0, 0, 1, 1, 1, 1])


def test_flip_images_rotates_libero_frames_upright(libero_dir):
    episode = next(iter(open_reader(LIBERO, str(libero_dir))))
    frame = episode.frames["agentview"][5]
    assert frame.shape == (H, W, 3)
    assert (frame[:4, :4] == 250).all() and (frame[-4:, -4:] == 50).all()  # bright corner now top-left
    unflipped = LIBERO.model_copy(update={"reader_options": {"layout": "robomimic", "flip_images": False}})
    raw = next(iter(open_reader(unflipped, str(libero_dir)))).frames["agentview"][5]
    np.testing.assert_array_equal(raw, libero_image(5))


@pytest.mark.parametrize(
    "name, kwargs, reason",
    [
        ("nan state", {"nan_demo": "demo_1"}, "non-finite values (NaN/inf) in arm_state"),
        ("missing instruction", {"instruction": None}, "missing instruction: attribute 'problem_info'"),
    ],
)
def test_broken_robomimic_demo_is_quarantined(tmp_path, name, kwargs, reason):
    write_robomimic(tmp_path / "x.hdf5", {"demo_0": 8, "demo_1": 8}, **kwargs)
    results = list(open_reader(LIBERO, str(tmp_path)))
    bad = [r for r in results if isinstance(r, Quarantined)]
    assert bad and reason in bad[0].reason, bad
    assert all(isinstance(r, Episode) for r in results if r not in bad)


def test_camera_with_wrong_frame_count_is_quarantined(tmp_path):
    write_robomimic(tmp_path / "x.hdf5", {"demo_0": 8})
    with h5py.File(tmp_path / "x.hdf5", "a") as f:
        del f["data/demo_0/obs/agentview_rgb"]
        f["data/demo_0/obs/agentview_rgb"] = np.zeros((7, H, W, 3), np.uint8)
    (result,) = open_reader(LIBERO, str(tmp_path))
    assert isinstance(result, Quarantined) and "camera 'agentview' has shape (7, 16, 24, 3)" in result.reason


def test_unknown_layout_names_the_known_ones(libero_dir):
    card = LIBERO.model_copy(update={"reader_options": {"layout": "rosbag"}})
    with pytest.raises(ValueError, match="known HDF5 layouts: egodex, robomimic"):
        open_reader(card, str(libero_dir))


# ---- EgoDex fixtures -------------------------------------------------------------------------

def write_egodex(folder, name: str, t: int, *, video_frames: int | None = None, description="fold the towel"):
    folder.mkdir(parents=True, exist_ok=True)
    with h5py.File(folder / f"{name}.hdf5", "w") as f:
        if description is not None:
            f.attrs["llm_description"] = description
        for joint, offset in (("rightHand", 0.0), ("leftHand", 1.0)):
            poses = np.tile(np.eye(4), (t, 1, 1))
            poses[:, :3, 3] = np.stack([np.arange(t) * 0.1, np.full(t, offset), np.ones(t)], axis=1)
            f[f"transforms/{joint}"] = poses
        f["transforms/camera"] = np.tile(np.eye(4), (t, 1, 1))
    frames = np.stack([np.full((32, 48, 3), 40 + 10 * i, np.uint8) for i in range(video_frames or t)])
    with VideoEncoder(str(folder / f"{name}.mp4"), fps=30, height=32, width=48) as encoder:
        encoder.write(frames)


@pytest.fixture(scope="module")
def egodex_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("egodex")
    write_egodex(root / "fold_towel", "1", 8)
    write_egodex(root / "fold_towel", "0", 9)
    write_egodex(root / "basic_pick_place", "0", 10, description="pick up the cup")
    return root


def test_egodex_episodes_follow_dials_mapping_and_have_no_gripper(egodex_dir):
    """The card's mapping: both wrists' xyz and 6-D rotation in robot axes, action(t) = state(t+1)."""
    episodes = list(open_reader(EGODEX, str(egodex_dir)))
    assert [e.episode_id for e in episodes] == [
        "egodex-basic_pick_place-0", "egodex-fold_towel-0", "egodex-fold_towel-1"]
    episode = episodes[1]
    assert episode.instruction == "fold the towel" and episode.arm_state.shape == (9, 18)
    # ARKit (x right, y up, z back) → robot (x forward, y left, z up): p = (0.4, off, 1) → (-1, -0.4, off)
    turned = [0.0, -1.0, 0.0, 0.0, 0.0, 1.0]  # the identity hand rotation seen in robot axes: columns of the turn
    np.testing.assert_allclose(episode.arm_state[4], [-1, -0.4, 0.0, *turned, -1, -0.4, 1.0, *turned], atol=1e-6)
    np.testing.assert_array_equal(episode.actions[:-1], episode.arm_state[1:])
    np.testing.assert_array_equal(episode.actions[-1], episode.arm_state[-1])
    np.testing.assert_array_equal(episode.gripper, np.zeros(9))


def test_egodex_without_pose_options_reads_hand_translations(egodex_dir):
    card = EGODEX.model_copy(update={"reader_options": {"layout": "egodex", "video_suffix": ".mp4"}})
    episode = list(open_reader(card, str(egodex_dir)))[1]
    assert episode.arm_state.shape == (9, 6)
    np.testing.assert_allclose(episode.arm_state[4], [0.4, 0.0, 1.0, 0.4, 1.0, 1.0], rtol=1e-6)


@pytest.mark.parametrize(("options", "message"), [
    ({"pose": "quaternion"}, "reader_options.pose"),
    ({"axes": [[1, 0, 0], [0, 1, 0], [0, 0, -1]]}, "rotation matrix"),
    ({"actions": "later"}, "reader_options.actions"),
])
def test_egodex_pose_options_are_checked(egodex_dir, options, message):
    card = EGODEX.model_copy(update={"reader_options": {"layout": "egodex", **options}})
    with pytest.raises(ValueError, match=message):
        open_reader(card, str(egodex_dir))


def test_egodex_video_decodes_lazily_to_the_written_frames(egodex_dir):
    episode = list(open_reader(EGODEX, str(egodex_dir)))[2]
    frames = episode.frames["ego"].load()
    assert frames.shape == (8, 32, 48, 3)
    np.testing.assert_allclose(frames.mean(axis=(1, 2, 3)), 40 + 10 * np.arange(8), atol=VIDEO_TOLERANCE)


@pytest.mark.parametrize(
    "name, build, reason",
    [
        ("missing video", lambda d: (write_egodex(d, "0", 8), (d / "0.mp4").unlink()),
         "missing video for camera 'ego'"),
        ("short video", lambda d: write_egodex(d, "0", 8, video_frames=6), "has 6 frames, poses have 8"),
        ("undecodable video", lambda d: (write_egodex(d, "0", 8), (d / "0.mp4").write_bytes(b"junk")),
         "undecodable video"),
        ("missing description", lambda d: write_egodex(d, "0", 8, description=None), "missing instruction"),
    ],
)
def test_broken_egodex_episode_is_quarantined(tmp_path, name, build, reason):
    build(tmp_path / "task")
    (result,) = open_reader(EGODEX, str(tmp_path))
    assert isinstance(result, Quarantined) and result.episode_id == "egodex-task-0"
    assert reason in result.reason, result.reason
