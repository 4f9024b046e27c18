"""Write episodes as a real RLDS/TFDS dataset (TFRecord shards + dataset_info.json + features.json).

Usage::

    from pipelines.sample.generator.rlds_schemas import rlds_schema
    from pipelines.formats.rlds.writer import write_rlds

    schema = rlds_schema("droid")                   # or ("droid", image_size=(36, 64))
    path = write_rlds(
        "data/sample", "sample_droid", schema.steps, episodes,
        episode_metadata_features=schema.episode_metadata, version="1.0.1",
    )
    tfds.builder_from_directory(path).as_dataset(split="train")   # reads it back

`episodes` is an iterable (streamed, one episode in memory at a time) of
``{"steps": [step, ...], "episode_metadata": {...}}`` where each step is a
nested dict matching `step_features`. Image features take uint8 H×W×3 arrays
(encoded here with OpenCV in the feature's format, JPEG quality
`jpeg_quality`) or already-encoded bytes (written as they are). Text takes str.

The dataset lands in ``data_dir/name/version/`` with the standard TFDS file
names (``name-split.tfrecord-00000-of-00004``), in the order the episodes are
given (no shuffling), so episode i of the input is index i of the split. The
folder is written under a temporary name and renamed when complete; the same
input gives byte-identical files.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterable, Mapping, Sized
from pathlib import Path
from typing import Any

import numpy as np

from datasets_cards.codecs import encode_image
from pipelines.formats.rlds.tf_setup import quiet_tensorflow

quiet_tensorflow()

import tensorflow as tf  # noqa: E402
import tensorflow_datasets as tfds  # noqa: E402
from tensorflow_datasets.core import dataset_info as tfds_info  # noqa: E402
from tensorflow_datasets.core import example_serializer, naming  # noqa: E402

DEFAULT_SHARD_BYTES = 256 << 20  # roll to a new shard past this size when num_shards is not given
DEFAULT_JPEG_QUALITY = 95  # what tf.io.encode_jpeg (TFDS' own encoder) uses


def episode_features(
    step_features: Mapping[str, Any], episode_metadata_features: Mapping[str, Any] | None = None
) -> tfds.features.FeaturesDict:
    """The RLDS episode FeaturesDict: `steps` as a nested Dataset, plus `episode_metadata` if given."""
    features: dict[str, Any] = {"steps": tfds.features.Dataset(dict(step_features))}
    if episode_metadata_features is not None:
        features["episode_metadata"] = dict(episode_metadata_features)
    return tfds.features.FeaturesDict(features)


def write_rlds(
    data_dir: str | os.PathLike,
    name: str,
    step_features: Mapping[str, Any],
    episodes: Iterable[Mapping[str, Any]],
    *,
    episode_metadata_features: Mapping[str, Any] | None = None,
    version: str = "1.0.0",
    split: str = "train",
    description: str = "",
    num_shards: int | None = None,
    shard_bytes: int = DEFAULT_SHARD_BYTES,
    jpeg_quality: int = DEFAULT_JPEG_QUALITY,
) -> Path:
    """Write `episodes` as split `split` of RLDS dataset `name`; return the directory to read back.

    num_shards: exact number of shards (needs `episodes` with a length; episodes
    are split into contiguous runs); None rolls shards every `shard_bytes`.
    """
    features = episode_features(step_features, episode_metadata_features)
    final_dir = Path(data_dir) / name / version
    tmp_dir = final_dir.parent / f".tmp-{uuid.uuid4().hex}-{version}"
    tmp_dir.mkdir(parents=True)
    try:
        shard_lengths, num_bytes = _write_shards(
            tmp_dir, name, split, features, episodes, num_shards, shard_bytes, jpeg_quality
        )
        info = tfds_info.DatasetInfo(
            builder=tfds_info.DatasetIdentity(name=name, version=version, data_dir=str(tmp_dir), module_name=""),
            description=description,
            features=features,
        )
        template = naming.ShardedFileTemplate(
            data_dir=tmp_dir, dataset_name=name, split=split, filetype_suffix="tfrecord"
        )
        split_info = tfds.core.SplitInfo(
            name=split, shard_lengths=shard_lengths, num_bytes=num_bytes, filename_template=template
        )
        info.set_file_format("tfrecord")
        info.set_splits(tfds.core.SplitDict([split_info]))
        info.write_to_directory(tmp_dir)
        if final_dir.exists():
            shutil.rmtree(final_dir)
        tmp_dir.rename(final_dir)
    finally:
        if tmp_dir.exists():
            shutil.rmtree(tmp_dir)
    return final_dir


def _write_shards(
    directory: Path,
    name: str,
    split: str,
    features: tfds.features.FeaturesDict,
    episodes: Iterable[Mapping[str, Any]],
    num_shards: int | None,
    shard_bytes: int,
    jpeg_quality: int,
) -> tuple[list[int], int]:
    """Serialize episodes into shards named with a placeholder count, then rename to `-of-N`."""
    serializer = example_serializer.ExampleSerializer(features.get_serialized_info())
    bounds = _contiguous_bounds(episodes, num_shards) if num_shards is not None else None
    shard_lengths: list[int] = []
    shard_sizes: list[int] = []
    writer: tf.io.TFRecordWriter | None = None
    paths: list[Path] = []

    def open_shard() -> tf.io.TFRecordWriter:
        paths.append(directory / f"{name}-{split}.tfrecord-{len(paths):05d}.incomplete")
        shard_lengths.append(0)
        shard_sizes.append(0)
        return tf.io.TFRecordWriter(str(paths[-1]))

    for index, episode in enumerate(episodes):
        if writer is None or _should_roll(index, bounds, shard_sizes[-1], shard_bytes, shard_lengths[-1]):
            if writer is not None:
                writer.close()
            writer = open_shard()
        try:
            encoded = features.encode_example(_encode_images(episode, features, jpeg_quality))
        except Exception as e:
            raise ValueError(f"episode {index} does not match the features: {e}") from e
        # deterministic=True orders the feature map by key: identical input, identical bytes
        record = serializer.get_tf_example(encoded).SerializeToString(deterministic=True)
        writer.write(record)
        shard_lengths[-1] += 1
        shard_sizes[-1] += len(record)
    if writer is None:  # no episodes: still a valid (empty) split with one empty shard
        writer = open_shard()
    writer.close()
    for i, path in enumerate(paths):
        path.rename(directory / f"{name}-{split}.tfrecord-{i:05d}-of-{len(paths):05d}")
    return shard_lengths, sum(shard_sizes)


def _contiguous_bounds(episodes: Iterable, num_shards: int) -> list[int]:
    if num_shards < 1:
        raise ValueError(f"num_shards must be ≥ 1, got {num_shards}")
    if not isinstance(episodes, Sized):
        raise ValueError("num_shards needs a sized collection of episodes (a list); pass num_shards=None to stream")
    total = len(episodes)
    return [round(total * k / num_shards) for k in range(1, num_shards)]


def _should_roll(index: int, bounds: list[int] | None, size: int, shard_bytes: int, length: int) -> bool:
    if bounds is not None:
        return index in bounds
    return length > 0 and size >= shard_bytes


def _encode_images(value: Any, feature: Any, jpeg_quality: int) -> Any:
    """Replace uint8 arrays under Image features by encoded bytes (OpenCV is much faster than TF)."""
    if isinstance(feature, tfds.features.Image):
        if isinstance(value, np.ndarray):
            return _encode_array(value, feature, jpeg_quality)
        return value
    if isinstance(feature, tfds.features.Dataset):
        inner = feature.feature
        return [_encode_images(step, inner, jpeg_quality) for step in value]
    if isinstance(feature, tfds.features.FeaturesDict) and isinstance(value, Mapping):
        return {k: _encode_images(v, feature[k], jpeg_quality) if k in feature else v for k, v in value.items()}
    return value


def _encode_array(image: np.ndarray, feature: tfds.features.Image, jpeg_quality: int) -> bytes:
    expected = tuple(feature.shape)
    if image.dtype != np.uint8 or image.shape != expected:
        raise ValueError(f"image has shape {image.shape} and dtype {image.dtype}, expected {expected} uint8")
    return encode_image(image, feature.encoding_format or "png", jpeg_quality)
