"""export_rlds: a finished output folder round-trips through tfds.builder_from_directory."""

from __future__ import annotations

import cv2
import numpy as np
import pyarrow as pa
import pytest
import tensorflow_datasets as tfds

from datasets_cards import load_output_card
from datasets_cards.constants import SHARD_PATTERN, SHARDS_DIR
from datasets_cards.manifest import Manifest, ShardRecord
from pipelines.formats.rlds.export import export_rlds
from pipelines.io import ShardWriter


def _default(arrow_type: pa.DataType):
    """A valid value for a column the test does not care about (cards gain columns over time)."""
    if pa.types.is_fixed_size_list(arrow_type):
        return [_default(arrow_type.value_type)] * arrow_type.list_size
    if pa.types.is_list(arrow_type):
        return []
    if pa.types.is_struct(arrow_type):
        return {arrow_type.field(i).name: _default(arrow_type.field(i).type) for i in range(arrow_type.num_fields)}
    if pa.types.is_string(arrow_type):
        return ""
    if pa.types.is_binary(arrow_type):
        return b""
    return False if pa.types.is_boolean(arrow_type) else 0


def _write_output(out, pipeline: str, shards: list[list[dict]], complete: bool = True) -> str:
    """OUT/<pipeline>/sample/ with one Parquet shard per row list and a manifest."""
    card = load_output_card(pipeline)
    defaults = {f.name: None if f.nullable else _default(f.type) for f in card.arrow_schema()}
    shards = [[{**defaults, **row} for row in rows] for rows in shards]
    folder = out / pipeline / "sample"
    records = []
    for index, rows in enumerate(shards):
        relative = f"{SHARDS_DIR}/{SHARD_PATTERN.format(index=index)}"
        with ShardWriter(card, str(folder / relative)) as writer:
            writer.write_rows(rows)
        n, size, sha = writer.result
        records.append(ShardRecord(unit=f"u{index}", path=relative, rows=n, bytes=size, sha256=sha, episodes=[], seconds=0.0))
    manifest = Manifest(
        pipeline=pipeline, output_card_version=card.version, source="sample", source_location="tests",
        config_hash="0", config={}, code_version="test", created="now", updated="now",
        complete=complete, planned_units=len(shards), shards=list(reversed(records)),  # manifest order ≠ unit order
    )
    folder.mkdir(parents=True, exist_ok=True)
    manifest.save(str(folder))
    return str(folder)


def _la_row(episode: str, segment: int, *, quality: float | None) -> dict:
    t = 2 + segment  # segments of different lengths
    return {
        "episode_id": f"{episode}#{segment}", "source": "sample", "source_episode_id": episode,
        "segment_index": segment, "subaction": "lift", "instruction": f"lift {segment}", "task": f"task of {episode}",
        "start": 10 * segment, "end": 10 * segment + t, "fps": 15.0,
        "state": [[float(segment), float(i)] for i in range(t)], "state_names": ["x", "y"],
        "gripper": [0.5] * t, "actions": [[1.0, 2.0, 3.0]] * t, "action_names": ["a", "b", "c"],
        "segmenter": "kinematic", "kinematic_subaction": "lift", "agreement": True, "verified": quality is not None,
        "quality": quality, "confidence": None, "num_annotators": 0, "cameras": ["wrist"], "source_location": "x",
    }


def _episodes(path) -> list[dict]:
    return list(tfds.as_numpy(tfds.builder_from_directory(str(path)).as_dataset(split="train")))


def test_no_rows_export_an_empty_dataset(tmp_path):
    path = export_rlds(_write_output(tmp_path, "la", []), str(tmp_path / "rlds"))
    assert tfds.builder_from_directory(str(path)).info.splits["train"].num_examples == 0


def test_la_rows_become_one_rlds_episode_per_source_episode_ordered_by_key(tmp_path):
    shards = [
        [_la_row("ep-b", 1, quality=None), _la_row("ep-a", 0, quality=2.5), _la_row("ep-b", 0, quality=3.0)],
        [_la_row("ep-c", 0, quality=1.0), _la_row("ep-c", 2, quality=None), _la_row("ep-c", 1, quality=2.0)],
    ]
    path = export_rlds(_write_output(tmp_path, "la", shards), str(tmp_path / "rlds"))
    assert path == tmp_path / "rlds" / "la_sample" / "1.0.0"

    episodes = _episodes(path)
    assert [e["episode_metadata"]["episode_id"] for e in episodes] == [b"ep-b", b"ep-a", b"ep-c"]
    assert episodes[0]["episode_metadata"]["pipeline"] == b"la"
    steps = list(episodes[2]["steps"])
    assert [s["segment_index"] for s in steps] == [0, 1, 2]
    assert [(s["is_first"], s["is_last"], s["is_terminal"]) for s in steps] == [
        (True, False, False), (False, False, False), (False, True, True)
    ]
    np.testing.assert_array_equal(steps[1]["state"], np.array([[1.0, 0.0], [1.0, 1.0], [1.0, 2.0]], np.float32))
    assert list(steps[1]["state_names"]) == [b"x", b"y"]
    assert steps[1]["task"] == b"task of ep-c"
    assert [bool(s["is_null"]["quality"]) for s in steps] == [False, False, True]
    assert steps[2]["quality"] == 0.0  # null filled, flagged in is_null


def _jpeg(value: int, size=(24, 32)) -> bytes:
    return cv2.imencode(".jpg", np.full((*size, 3), value, np.uint8))[1].tobytes()


def _gaze_row(episode: str, camera: str, frame: int, *, crop: bool) -> dict:
    return {
        "episode_id": episode, "source": "sample", "frame_index": frame, "camera": camera,
        "instruction": "pick up the cube", "target_phrase": "cube.", "phase": "object", "image": _jpeg(10 * frame),
        "crop": _jpeg(200, (8, 8)) if crop else None, "box": [1.0, 2.0, 3.0, 4.0] if crop else None,
        "crop_box": [0, 0, 8, 8] if crop else None, "score": 0.9 if crop else None,
        "flags": ["detected"] if crop else ["no_box", "low_score"], "width": 32, "height": 24,
        "state": [0.1, 0.2], "gripper": 1.0, "action": [0.0] * 7,
    }


def test_gaze_jpeg_columns_become_images_and_null_crops_are_flagged(tmp_path):
    rows = [_gaze_row("e1", "wrist", 1, crop=False), _gaze_row("e1", "ext", 0, crop=True), _gaze_row("e1", "wrist", 0, crop=True)]
    path = export_rlds(_write_output(tmp_path, "gaze", [rows]), str(tmp_path / "rlds"))
    builder = tfds.builder_from_directory(str(path))
    assert isinstance(builder.info.features["steps"]["image"], tfds.features.Image)

    (episode,) = _episodes(path)
    steps = list(episode["steps"])
    assert [(s["camera"], s["frame_index"]) for s in steps] == [(b"ext", 0), (b"wrist", 0), (b"wrist", 1)]
    assert steps[2]["image"].shape == (24, 32, 3)
    assert abs(int(steps[2]["image"].mean()) - 10) <= 2
    assert steps[2]["crop"].shape == (1, 1, 3) and bool(steps[2]["is_null"]["crop"])
    np.testing.assert_array_equal(steps[0]["box"], [1.0, 2.0, 3.0, 4.0])
    assert list(steps[2]["flags"]) == [b"no_box", b"low_score"]


def test_an_unfinished_output_is_refused(tmp_path):
    folder = _write_output(tmp_path, "la", [[_la_row("a", 0, quality=None)]], complete=False)
    with pytest.raises(ValueError, match="not finished"):
        export_rlds(folder, str(tmp_path / "rlds"))


def test_a_folder_without_manifest_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="manifest.json"):
        export_rlds(str(tmp_path), str(tmp_path / "rlds"))


def test_lists_of_one_width_are_plain_tensors_a_trajectory_loader_reads_undecoded(tmp_path):
    """decoders={"steps": SkipDecoding()} (dlimp, Octo, OpenVLA) gets a T×D float state, not a zlib blob."""
    rows = [_gaze_row("e1", "wrist", f, crop=True) for f in range(3)]
    steps = tfds.builder_from_directory(str(export_rlds(_write_output(tmp_path, "gaze", [rows]),
                                                        str(tmp_path / "rlds")))).info.features["steps"]
    assert steps["state"].shape == (2,) and steps["action"].shape == (7,)
    assert steps["state"]._encoding == tfds.features.Encoding.NONE  # (TFDS keeps it private)
    builder = tfds.builder_from_directory(str(tmp_path / "rlds" / "gaze_sample" / "1.1.0"))
    (trajectory,) = builder.as_dataset(split="train", decoders={"steps": tfds.decode.SkipDecoding()}).take(1)
    np.testing.assert_array_equal(trajectory["steps"]["state"].numpy(), np.array([[0.1, 0.2]] * 3, np.float32))
    assert trajectory["steps"]["image"].dtype.name == "string"  # still encoded: the loader decodes it


def test_lists_whose_length_varies_stay_zlib_tensors_and_empty_ones_stay_variable(tmp_path):
    rows = [_la_row("ep-a", 0, quality=None), _la_row("ep-a", 1, quality=None)]  # T = 2, 3; D = 2; no keyframes
    path = export_rlds(_write_output(tmp_path, "la", [rows]), str(tmp_path / "rlds"))
    steps = tfds.builder_from_directory(str(path)).info.features["steps"]
    assert steps["state"].shape == (None, 2) and steps["state"]._encoding == tfds.features.Encoding.ZLIB
    assert steps["keyframes"].shape == (None,)
    (episode,) = _episodes(path)
    np.testing.assert_array_equal(list(episode["steps"])[1]["state"], [[1.0, 0.0], [1.0, 1.0], [1.0, 2.0]])


def test_a_null_struct_is_filled_and_flagged(tmp_path):
    """pixel: the RLE mask is null where the object is lost, the gripper mask on every row but G."""
    rle = {"size": [24, 32], "counts": "PPYo0"}
    rows = [{"episode_id": "e", "camera": "c", "frame_index": f, "image": _jpeg(10), "width": 32, "height": 24,
             "mask": rle if f == 0 else None, "gripper_mask": rle if f == 0 else None} for f in range(2)]
    (episode,) = _episodes(export_rlds(_write_output(tmp_path, "pixel", [rows]), str(tmp_path / "rlds")))
    first, lost = list(episode["steps"])
    assert first["mask"]["counts"] == b"PPYo0" and list(first["mask"]["size"]) == [24, 32]
    assert not first["is_null"]["mask"] and lost["is_null"]["mask"] and lost["is_null"]["gripper_mask"]
    assert lost["mask"]["counts"] == b"" and len(lost["mask"]["size"]) == 0
