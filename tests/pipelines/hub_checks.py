"""Checks shared by the flow tests: an output folder read back the way its users read it.

- `check_loads_with_datasets`: `datasets.load_dataset(folder)` with no data_files (README.md's YAML header),
  against the shards of the generation in force: the same rows in the same order, every column equal,
  images decoded to PIL images equal to the shards' bytes decoded, masks as datasets shows structs;
- `check_rlds_like_a_training_loader`: the RLDS export read with tf.data pipelines as RLDS tools and
  Octo/OpenVLA-style loaders read it (`steps` flattened into a stream of frames), against the shards.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from datasets_cards import load_output_card
from datasets_cards.codecs import rle_to_mask
from datasets_cards.manifest import Manifest


def shard_table(target: Path) -> pa.Table:
    """The rows of the generation in force, shard after shard (the order `load_dataset` reads them in)."""
    manifest = Manifest.load(str(target))
    return pa.concat_tables([pq.read_table(target / s.path) for s in manifest.current_shards])


def check_loads_with_datasets(target: Path, cache_dir: Path, *, rows_checked: int = 8) -> None:
    """`datasets.load_dataset(target)` as a user types it: the README's header alone says what to read."""
    import datasets
    from PIL import Image

    manifest = Manifest.load(str(target))
    card = load_output_card(manifest.pipeline)
    expected = shard_table(target)
    ds = datasets.load_dataset(str(target), split="train", cache_dir=str(cache_dir))
    assert ds.num_rows == expected.num_rows == manifest.rows
    assert ds.column_names == [c.name for c in card.columns]
    images = [c.name for c in card.columns if c.image]
    assert {n for n, f in ds.features.items() if isinstance(f, datasets.Image)} == set(images)

    got = ds.with_format("arrow")[:]  # every column, as stored: an image is a struct {bytes, path}
    for column in card.columns:
        want = expected.column(column.name).combine_chunks()
        have = got.column(column.name).combine_chunks()
        if column.image:
            assert have.field("bytes").to_pylist() == want.to_pylist(), column.name
        else:
            assert have.to_pylist() == want.to_pylist(), column.name

    step = max(1, ds.num_rows // rows_checked)
    for i in range(0, ds.num_rows, step):  # the default (python) format, as a user indexes it
        row, raw = ds[i], expected.slice(i, 1).to_pylist()[0]
        for name in images:
            if raw[name] is None:
                assert row[name] is None
                continue
            assert isinstance(row[name], Image.Image)
            np.testing.assert_array_equal(np.asarray(row[name]), np.asarray(Image.open(io.BytesIO(raw[name]))))
            if name == "image" and "width" in raw:
                assert row[name].size == (raw["width"], raw["height"])
        for column in card.columns:
            if column.type.startswith("struct<") and raw[column.name] is not None:
                assert row[column.name] == raw[column.name]  # a mask: {size: [h, w], counts: RLE string}
                if set(raw[column.name]) == {"size", "counts"}:
                    assert rle_to_mask(row[column.name]).shape == (raw["height"], raw["width"])


def _episode_groups(card, table: pa.Table) -> dict[str, list[dict]]:
    """Rows grouped as the RLDS export groups them, each episode's steps ordered by the card's key."""
    group = "source_episode_id" if "source_episode_id" in table.column_names else "episode_id"
    order = [k for k in card.key if k != group]
    episodes: dict[str, list[dict]] = {}
    for row in table.to_pylist():
        episodes.setdefault(row[group], []).append(row)
    return {e: sorted(rows, key=lambda r: tuple(r[k] for k in order)) for e, rows in episodes.items()}


def check_rlds_like_a_training_loader(target: Path, dest: Path, *, instruction: str = "instruction",
                                      image: str | None = None, state: str = "state",
                                      fixed_state: bool = True) -> None:
    """Export `target` to RLDS and read it with tf.data pipelines as training loaders do, every frame against
    the shards:

    1. RLDS as its tools read it: `builder.as_dataset`, then `flat_map(lambda ep: ep["steps"])` (TFDS decodes
       images and every tensor);
    2. as Octo/OpenVLA (dlimp's `from_rlds`) read it: `decoders={"steps": SkipDecoding()}`, so a trajectory is
       a dict of stacked T×... tensors with images still encoded; a trajectory-level map reads the language
       key, the state as a T×D float tensor and the encoded images, `unbatch` gives frames, and a frame map
       decodes the image (`tf.io.decode_image`). A state whose width varies between steps (la: one T×D trajectory per segment) is a zlib blob
       only TFDS decodes: `fixed_state=False` checks it is, and reads the rest.
    """
    import tensorflow as tf
    import tensorflow_datasets as tfds

    from pipelines.formats.rlds.export import export_rlds

    manifest = Manifest.load(str(target))
    card = load_output_card(manifest.pipeline)
    builder = tfds.builder_from_directory(str(export_rlds(str(target), str(dest))))
    expected = _episode_groups(card, shard_table(target))
    group = "source_episode_id" if "source_episode_id" in card.arrow_schema().names else "episode_id"
    assert builder.info.splits["train"].num_examples == len(expected)
    state_shape = builder.info.features["steps"][state].shape
    assert (None not in state_shape) == fixed_state, state_shape

    def frame_keys(steps, with_state: bool) -> dict:
        keys = {"language_instruction": steps[instruction], "episode": steps[group],
                "is_first": steps["is_first"], "is_last": steps["is_last"]}
        if with_state:
            keys["state"] = tf.cast(steps[state], tf.float32)
        if image is not None:
            keys["image"] = steps[image]  # decoded by TFDS, or still encoded (SkipDecoding)
        return keys

    def decode_frame(frame):  # the loader's frame map: cameras of one episode may differ in size
        return {**frame, "image": tf.io.decode_image(frame["image"], channels=3, expand_animations=False)}

    rlds_frames = builder.as_dataset(split="train", shuffle_files=False).flat_map(
        lambda episode: episode["steps"].map(lambda step: frame_keys(step, True)))
    trajectories = builder.as_dataset(split="train", shuffle_files=False,
                                      decoders={"steps": tfds.decode.SkipDecoding()})
    loader_frames = trajectories.map(lambda t: frame_keys(t["steps"], fixed_state),
                                     num_parallel_calls=tf.data.AUTOTUNE).unbatch()
    if image is not None:
        loader_frames = loader_frames.map(decode_frame, num_parallel_calls=tf.data.AUTOTUNE)
    loader_frames = loader_frames.prefetch(tf.data.AUTOTUNE)
    for frames in (rlds_frames, loader_frames):
        got: dict[str, list[dict]] = {}
        for frame in frames.as_numpy_iterator():  # each trajectory's frames stay together, in order
            got.setdefault(frame["episode"].decode(), []).append(frame)
        assert {e: len(f) for e, f in got.items()} == {e: len(r) for e, r in expected.items()}
        assert sum(map(len, got.values())) == manifest.rows
        for episode_id, rows in expected.items():
            for t, (frame, row) in enumerate(zip(got[episode_id], rows)):
                assert frame["language_instruction"].decode() == row[instruction]
                assert (bool(frame["is_first"]), bool(frame["is_last"])) == (t == 0, t == len(rows) - 1)
                if "state" in frame:
                    np.testing.assert_array_equal(frame["state"], np.asarray(row[state], np.float32))
                if image is not None:
                    decoded = tf.io.decode_image(row[image], channels=3).numpy()  # the shard's bytes, decoded by TF
                    np.testing.assert_array_equal(frame["image"], decoded)
                    assert frame["image"].shape == (row["height"], row["width"], 3)
