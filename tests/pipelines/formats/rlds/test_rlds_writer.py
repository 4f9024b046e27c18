"""write_rlds and the published schemas: what is written is what TFDS reads back."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow_datasets as tfds

from datasets_cards import load_source_card
from pipelines.formats import open_reader
from pipelines.formats.rlds.writer import write_rlds
from pipelines.sample.generator.rlds_schemas import RLDS_SCHEMAS, rlds_schema
from pipelines.sample.generator.synthetic_rlds import NOT_AN_IMAGE, synthetic_episodes
from tests.pipelines.formats.rlds_fixtures import IMAGE_SIZE

RLDS_FLAGS = {"is_first", "is_last", "is_terminal"}


@pytest.mark.parametrize(
    ("name", "step_keys", "observation_keys", "metadata_keys"),
    [
        (
            "droid",
            {"observation", "action", "action_dict", "discount", "reward", "language_instruction",
             "language_instruction_2", "language_instruction_3"} | RLDS_FLAGS,
            {"exterior_image_1_left", "exterior_image_2_left", "wrist_image_left", "cartesian_position",
             "gripper_position", "joint_position"},
            {"file_path", "recording_folderpath"},
        ),
        (
            "bridge",
            {"observation", "action", "discount", "reward", "language_instruction"} | RLDS_FLAGS,
            {"image_0", "image_1", "image_2", "image_3", "state"},
            {"file_path", "episode_id", "has_image_0", "has_image_1", "has_image_2", "has_image_3", "has_language"},
        ),
        (
            "fractal",
            {"observation", "action", "reward"} | RLDS_FLAGS,  # no discount, no step-level language
            {"image", "base_pose_tool_reached", "gripper_closed", "gripper_closedness_commanded", "height_to_bottom",
             "natural_language_embedding", "natural_language_instruction", "orientation_box", "orientation_start",
             "robot_orientation_positions_box", "rotation_delta_to_go", "src_rotation", "vector_to_go",
             "workspace_bounds"},
            None,
        ),
    ],
)
def test_schemas_have_the_published_keys(name, step_keys, observation_keys, metadata_keys):
    schema = rlds_schema(name)
    assert set(schema.steps) == step_keys
    assert set(schema.steps["observation"]) == observation_keys
    assert (set(schema.episode_metadata) if schema.episode_metadata else None) == metadata_keys


@pytest.mark.parametrize(
    ("name", "size"), [("droid", (180, 320)), ("bridge", (256, 256)), ("fractal", (256, 320)), ("droid", (8, 12))]
)
def test_image_size_is_a_parameter_with_the_published_default(name, size):
    default = RLDS_SCHEMAS[name](None if size[0] > 100 else size)
    images = [f for f in default.steps["observation"].values() if isinstance(f, tfds.features.Image)]
    assert images and all(f.shape == (*size, 3) for f in images)


def test_unknown_schema_lists_the_known_ones():
    with pytest.raises(ValueError, match="bridge.*droid.*fractal"):
        rlds_schema("kuka")


def _write(tmp_path, episodes, **kwargs):
    schema = rlds_schema("bridge", IMAGE_SIZE)
    return write_rlds(tmp_path, "bridge_orig", schema.steps, episodes, episode_metadata_features=schema.episode_metadata, **kwargs)


def test_no_episodes_gives_an_empty_split_that_the_reader_streams_as_nothing(tmp_path):
    path = _write(tmp_path, [])
    assert tfds.builder_from_directory(str(path)).info.splits["train"].num_examples == 0
    assert list(open_reader(load_source_card("bridge"), str(path))) == []  # TFDS refuses to read it itself


def test_episodes_read_back_in_order_with_arrays_and_bytes_as_given(tmp_path):
    schema = rlds_schema("bridge", IMAGE_SIZE)
    episodes = list(synthetic_episodes(schema, 3, 4))
    episodes[1]["steps"][2]["observation"]["image_0"] = NOT_AN_IMAGE  # bytes pass through untouched
    path = _write(tmp_path, episodes)

    builder = tfds.builder_from_directory(str(path))
    skip = {"steps": {"observation": {f"image_{i}": tfds.decode.SkipDecoding() for i in range(4)}}}
    read = list(tfds.as_numpy(builder.as_dataset(split="train", decoders=skip)))
    assert [(e["episode_metadata"]["file_path"].decode(), e["episode_metadata"]["episode_id"]) for e in read] == [
        ("/synthetic/bridge/raw/folder0/out.npy", 0), ("/synthetic/bridge/raw/folder0/out.npy", 1),
        ("/synthetic/bridge/raw/folder1/out.npy", 0),
    ]
    steps = list(read[1]["steps"])
    assert steps[2]["observation"]["image_0"] == NOT_AN_IMAGE
    np.testing.assert_allclose(steps[0]["observation"]["state"], episodes[1]["steps"][0]["observation"]["state"])
    decoded = next(iter(tfds.as_numpy(builder.as_dataset(split="train[:1]"))))
    first = next(iter(decoded["steps"]))["observation"]["image_0"]
    original = episodes[0]["steps"][0]["observation"]["image_0"]
    assert first.shape == original.shape
    assert np.abs(first.astype(int) - original).mean() < 3  # JPEG is lossy


def test_same_input_gives_identical_files(tmp_path):
    schema = rlds_schema("bridge", IMAGE_SIZE)
    a = _write(tmp_path / "a", synthetic_episodes(schema, 2, 3))
    b = _write(tmp_path / "b", synthetic_episodes(schema, 2, 3))
    files = sorted(p.name for p in a.iterdir())
    assert files == sorted(p.name for p in b.iterdir())
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)


@pytest.mark.parametrize(("n_episodes", "num_shards", "lengths"), [(1, 1, [1]), (5, 2, [2, 3]), (4, 4, [1, 1, 1, 1])])
def test_num_shards_splits_episodes_into_contiguous_standard_named_shards(tmp_path, n_episodes, num_shards, lengths):
    schema = rlds_schema("bridge", IMAGE_SIZE)
    path = _write(tmp_path, list(synthetic_episodes(schema, n_episodes, 2)), num_shards=num_shards)
    names = sorted(p.name for p in path.glob("*.tfrecord-*"))
    assert names == [f"bridge_orig-train.tfrecord-{i:05d}-of-{num_shards:05d}" for i in range(num_shards)]
    assert tfds.builder_from_directory(str(path)).info.splits["train"].shard_lengths == lengths


def test_num_shards_needs_a_sized_collection(tmp_path):
    schema = rlds_schema("bridge", IMAGE_SIZE)
    with pytest.raises(ValueError, match="sized collection"):
        _write(tmp_path, synthetic_episodes(schema, 2, 2), num_shards=2)
    assert not (tmp_path / "bridge_orig" / "1.0.0").exists()


def test_a_wrong_image_shape_names_the_episode_and_leaves_nothing(tmp_path):
    schema = rlds_schema("bridge", IMAGE_SIZE)
    episodes = list(synthetic_episodes(schema, 2, 2))
    episodes[1]["steps"][0]["observation"]["image_0"] = np.zeros((5, 5, 3), np.uint8)
    with pytest.raises(ValueError, match=r"episode 1 .*\(5, 5, 3\)"):
        _write(tmp_path, episodes)
    assert list((tmp_path / "bridge_orig").iterdir()) == []
