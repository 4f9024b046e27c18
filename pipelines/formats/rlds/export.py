"""Export a finished output folder (OUT/<pipeline>/<source>/) as an RLDS/TFDS dataset.

One RLDS episode per source episode: rows are grouped by `source_episode_id`
when the output card has that column (la), else by `episode_id`; within an
episode the steps are ordered by the card's key (e.g. gaze: camera, then
frame_index; la: segment_index). Each step carries every column of the card,
plus the RLDS flags `is_first`, `is_last` and `is_terminal` (the exported
episodes are complete, so the last step is terminal). `episode_metadata`
holds `episode_id` (the group value), `source`, `pipeline` and
`output_card_version`.

Arrow (card grammar) → TFDS feature:

    string                      Text
    binary, JPEG/PNG content    Image(shape=(None, None, 3)), left encoded as written
    binary, other content       Tensor(shape=(), dtype=string)  (raw bytes)
    bool, intN, uintN, floatN   Scalar of that dtype (float16 kept)
    T[N]                        Tensor(shape=(N,))
    list<T>, list<list<T>>      numbers only. A list whose every value has the same shape in the
      (T numeric)               output (a source's state and action width, future's tokens) is a
                                plain Tensor(shape=(D,) / (N, D)): stacked over an episode as
                                training loaders read it (decoders={"steps": SkipDecoding()}
                                gives a T×D float tensor). A length that varies between steps
                                (la's per-segment T×D state) stays Tensor(shape=(None, ...),
                                encoding=zlib): each step's value is one serialized blob, which
                                only TFDS's own decoding reads back. A nested list must be
                                rectangular (a ragged one raises, naming the column)
    list<string>, list<binary>  Sequence(Text()) / Sequence(Tensor(string)); deeper string
                                nesting is refused
    struct<a:T,...>             FeaturesDict of the mapped fields

TFDS has no nulls: a nullable column is filled (zeros of the fixed shape,
empty lists, "" / b"", a 1×1 black JPEG for images) and
`step["is_null"][column]` says whether the value was null. Whether a binary
column holds images is decided from its first non-null value.

The dataset is written with `pipelines.formats.rlds.writer.write_rlds` (standard
TFRecord shards + dataset_info.json + features.json) to
`dest/<pipeline>_<source>/<card version>/`, which
`tfds.builder_from_directory(...)` and Open X-Embodiment loaders read.
A remote `dest` (s3://, gs://, any fsspec URL) is staged in a local temp folder (the writer is
local-path only, and TensorFlow's own S3 filesystem is not maintained for this TensorFlow) and then
uploaded through fsspec: the TFRecord shards first, the JSON metadata last, so a reader that finds
dataset_info.json finds the whole dataset.
Every shard is checked against the manifest (size and sha256) first: a damaged
or missing one raises `ShardIntegrityError` naming it, and nothing is written.
Memory: one shard's table and one episode at a time.
"""

from __future__ import annotations

import re
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from rich.progress import track

from datasets_cards import OutputCard, load_output_card
from datasets_cards.manifest import IncompleteOutputError, Manifest, ShardIntegrityError
from pipelines.formats.base import EXPORTERS
from pipelines.formats.rlds.tf_setup import quiet_tensorflow

quiet_tensorflow()

import tensorflow_datasets as tfds  # noqa: E402

from pipelines.formats.rlds.writer import write_rlds  # noqa: E402

GROUP_COLUMNS = ("source_episode_id", "episode_id")  # first one the card has groups the rows
IMAGE_MAGIC = {b"\xff\xd8\xff": "jpeg", b"\x89PNG": "png"}
NULL_FLAGS = "is_null"
RLDS_FLAGS = ("is_first", "is_last", "is_terminal")


@EXPORTERS.register("rlds")
def export_rlds(output_dir: str, dest: str) -> Path | str:
    """Write the output folder `output_dir` as an RLDS dataset under `dest`; return its directory (a URL if remote)."""
    fs, root = fsspec.core.url_to_fs(dest)
    if not _is_local(fs):
        with tempfile.TemporaryDirectory(prefix="rlds-export-") as staging:
            built = export_rlds(output_dir, staging)
            target = f"{root.rstrip('/')}/{built.relative_to(staging).as_posix()}"
            _upload(fs, built, target)
        return fs.unstrip_protocol(target)
    manifest = _load_manifest(output_dir)
    card = load_output_card(manifest.pipeline)
    shards = [f"{output_dir.rstrip('/')}/{s.path}" for s in manifest.current_shards]
    group = next((c for c in GROUP_COLUMNS if c in {col.name for col in card.columns}), None)
    if group is None:
        raise ValueError(f"output card {card.name!r} has none of the columns {GROUP_COLUMNS} to group episodes by")
    image_formats = _image_columns(card, shards)
    shapes = _list_shapes(card, shards)
    step_features = _step_features(card, image_formats, shapes)
    episodes = _episodes(card, shards, group, image_formats, shapes, manifest)
    metadata_features = {
        "episode_id": tfds.features.Text(),
        "source": tfds.features.Text(),
        "pipeline": tfds.features.Text(),
        "output_card_version": tfds.features.Text(),
    }
    return write_rlds(
        dest,
        _dataset_name(f"{manifest.pipeline}_{manifest.source}"),
        step_features,
        episodes,
        episode_metadata_features=metadata_features,
        version=card.version,
        description=f"{card.description} (exported from {output_dir}; source {manifest.source})",
    )


def _is_local(fs: fsspec.AbstractFileSystem) -> bool:
    return "file" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,))


def _upload(fs: fsspec.AbstractFileSystem, local_dir: Path, target: str) -> None:
    """Replace `target` with the files of `local_dir`: data first, the *.json metadata last."""
    if fs.exists(target):
        fs.rm(target, recursive=True)
    files = sorted(p for p in local_dir.rglob("*") if p.is_file())
    for path in sorted(files, key=lambda p: p.suffix == ".json"):
        fs.put_file(str(path), f"{target}/{path.relative_to(local_dir).as_posix()}")


def _load_manifest(output_dir: str) -> Manifest:
    """The finished output's manifest, every shard it lists verified (size and sha256) before anything is written."""
    manifest = Manifest.load(output_dir)
    if not manifest.complete:
        raise IncompleteOutputError(f"{output_dir} is not finished (manifest complete=false); "
                                    "re-run the flow to complete it first")
    manifest.verify_shards(output_dir, manifest.current_shards)  # ShardIntegrityError naming the shard
    return manifest


def _dataset_name(text: str) -> str:
    return re.sub(r"[^a-z0-9_]+", "_", text.lower()).strip("_")


# -- features ------------------------------------------------------------------------------------


def _arrow_to_feature(arrow_type: pa.DataType, image_format: str | None,
                      shape_seen: tuple[int | None, ...] | None = None) -> Any:
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return tfds.features.Text()
    if pa.types.is_binary(arrow_type) or pa.types.is_large_binary(arrow_type):
        if image_format:
            return tfds.features.Image(shape=(None, None, 3), encoding_format=image_format)
        return tfds.features.Tensor(shape=(), dtype=np.object_)
    if pa.types.is_boolean(arrow_type) or pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type):
        return tfds.features.Scalar(dtype=arrow_type.to_pandas_dtype())
    if pa.types.is_struct(arrow_type):
        return tfds.features.FeaturesDict(
            {arrow_type.field(i).name: _arrow_to_feature(arrow_type.field(i).type, None) for i in range(arrow_type.num_fields)}
        )
    if pa.types.is_fixed_size_list(arrow_type) or pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type):
        shape, leaf = _list_shape(arrow_type)
        if shape_seen is not None:  # the dims every value of the output has (see _list_shapes)
            shape = tuple(d if d is not None else seen for d, seen in zip(shape, shape_seen))
        if pa.types.is_string(leaf) or pa.types.is_binary(leaf):
            if shape != (None,):
                raise ValueError(f"{arrow_type}: only flat variable lists of strings can be exported to RLDS")
            return tfds.features.Sequence(tfds.features.Text() if pa.types.is_string(leaf) else tfds.features.Tensor(shape=(), dtype=np.object_))
        if not (pa.types.is_boolean(leaf) or pa.types.is_integer(leaf) or pa.types.is_floating(leaf)):
            raise ValueError(f"list of {leaf} cannot be exported to RLDS")
        # A tensor whose length varies from step to step cannot be stacked over the
        # episode; TFDS then stores each step's value as one serialized, zlib-compressed blob.
        encoding = tfds.features.Encoding.ZLIB if None in shape else tfds.features.Encoding.NONE
        return tfds.features.Tensor(shape=shape, dtype=leaf.to_pandas_dtype(), encoding=encoding)
    raise ValueError(f"Arrow type {arrow_type} has no RLDS mapping")


def _list_shape(arrow_type: pa.DataType) -> tuple[tuple[int | None, ...], pa.DataType]:
    shape: list[int | None] = []
    while pa.types.is_fixed_size_list(arrow_type) or pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type):
        shape.append(arrow_type.list_size if pa.types.is_fixed_size_list(arrow_type) else None)
        arrow_type = arrow_type.value_type
    return tuple(shape), arrow_type


def _step_features(card: OutputCard, image_formats: dict[str, str],
                   shapes: dict[str, tuple[int | None, ...]]) -> dict[str, Any]:
    schema = card.arrow_schema()
    features: dict[str, Any] = {f.name: _arrow_to_feature(f.type, image_formats.get(f.name), shapes.get(f.name))
                                for f in schema}
    clashes = sorted(set(features) & {*RLDS_FLAGS, NULL_FLAGS})
    if clashes:
        raise ValueError(f"output card {card.name!r} has columns {clashes} that RLDS export reserves")
    for flag in RLDS_FLAGS:
        features[flag] = tfds.features.Scalar(dtype=np.bool_)
    nullable = [c.name for c in card.columns if c.nullable]
    if nullable:
        features[NULL_FLAGS] = {name: tfds.features.Scalar(dtype=np.bool_) for name in nullable}
    return features


def _numeric_lists(card: OutputCard) -> list[str]:
    """The columns that are (nested) variable-length lists of numbers."""
    names = []
    for f in card.arrow_schema():
        if pa.types.is_list(f.type) or pa.types.is_large_list(f.type):
            shape, leaf = _list_shape(f.type)
            if None in shape and (pa.types.is_boolean(leaf) or pa.types.is_integer(leaf) or pa.types.is_floating(leaf)):
                names.append(f.name)
    return names


def _value_dims(array: pa.Array) -> tuple[int | None, ...]:
    """Per list level of `array` (nulls dropped): its length when every value has the same one (not 0), else None."""
    dims: list[int | None] = []
    level = array.drop_null()
    while pa.types.is_list(level.type) or pa.types.is_large_list(level.type) or pa.types.is_fixed_size_list(level.type):
        if pa.types.is_fixed_size_list(level.type):
            dims.append(level.type.list_size)
        else:
            lengths = pc.unique(pc.list_value_length(level)).to_pylist()
            dims.append(lengths[0] if len(lengths) == 1 and lengths[0] else None)  # never a zero-size tensor
        level = level.flatten()
    return tuple(dims)


def _list_shapes(card: OutputCard, shards: list[str]) -> dict[str, tuple[int | None, ...]]:
    """Numeric list column → the shape all its values share over the whole output (None where a length varies,
    or where no value says: an output with no rows keeps the variable form)."""
    names = _numeric_lists(card)
    seen: dict[str, tuple[int | None, ...]] = {}
    for shard in shards if names else []:
        table = _read_table(shard, columns=names)
        for name in names:
            if table.num_rows == 0 or table.column(name).null_count == table.num_rows:
                continue
            dims = _value_dims(table.column(name).combine_chunks())
            before = seen.get(name, dims)
            seen[name] = tuple(a if a == b else None for a, b in zip(before, dims))
    return {name: dims for name, dims in seen.items() if dims}


def _image_columns(card: OutputCard, shards: list[str]) -> dict[str, str]:
    """Binary column → "jpeg"/"png" when its first non-null value is an image."""
    binary = [f.name for f in card.arrow_schema() if pa.types.is_binary(f.type) or pa.types.is_large_binary(f.type)]
    formats: dict[str, str] = {}
    pending = set(binary)
    for shard in shards:
        if not pending:
            break
        table = _read_table(shard, columns=sorted(pending))
        for name in sorted(pending):
            for value in table.column(name).drop_null().slice(0, 1).to_pylist():
                formats[name] = next((fmt for magic, fmt in IMAGE_MAGIC.items() if value.startswith(magic)), "")
                pending.discard(name)
    return {name: fmt for name, fmt in formats.items() if fmt}


# -- values --------------------------------------------------------------------------------------


def _read_table(path: str, columns: list[str] | None = None) -> pa.Table:
    fs, p = fsspec.core.url_to_fs(path)
    try:
        with fs.open(p, "rb") as f:
            return pq.read_table(f, columns=columns)
    except (OSError, pa.ArrowException) as e:  # changed after the check: pyarrow's message names no file
        raise ShardIntegrityError(f"shard {path} cannot be read ({type(e).__name__}: {str(e).strip()})") from e


_PLACEHOLDER_IMAGES: dict[str, bytes] = {}


def _placeholder_image(fmt: str) -> bytes:
    if fmt not in _PLACEHOLDER_IMAGES:
        import cv2

        ok, buffer = cv2.imencode(".jpg" if fmt == "jpeg" else f".{fmt}", np.zeros((1, 1, 3), np.uint8))
        if not ok:
            raise RuntimeError(f"OpenCV cannot encode a {fmt} placeholder")
        _PLACEHOLDER_IMAGES[fmt] = buffer.tobytes()
    return _PLACEHOLDER_IMAGES[fmt]


def _null_value(feature: Any) -> Any:
    if isinstance(feature, tfds.features.Image):
        return _placeholder_image(feature.encoding_format or "png")
    if isinstance(feature, tfds.features.Text):
        return ""
    if isinstance(feature, tfds.features.Sequence):
        return []
    if isinstance(feature, tfds.features.FeaturesDict):
        return {name: _null_value(f) for name, f in feature.items()}
    shape = tuple(0 if d is None else d for d in feature.shape)
    if feature.np_dtype == np.object_:
        return np.full(shape, b"", dtype=object) if shape else b""
    return np.zeros(shape, dtype=feature.np_dtype)


def _value(value: Any, feature: Any, column: str) -> Any:
    if value is None:  # a null struct too (pixel's mask on a frame where the object is lost)
        return _null_value(feature)
    if isinstance(feature, tfds.features.FeaturesDict):
        return {name: _value(value.get(name), f, f"{column}.{name}") for name, f in feature.items()}
    if isinstance(feature, (tfds.features.Image, tfds.features.Text, tfds.features.Sequence)) or not feature.shape:
        return value
    ndim = len(feature.shape)
    dtype = object if feature.np_dtype == np.object_ else feature.np_dtype
    try:
        array = np.array(value, dtype=dtype)
    except ValueError as e:
        raise ValueError(f"column {column!r}: nested lists must be rectangular to export to RLDS ({e})") from e
    if array.size == 0:
        array = array.reshape((0,) * ndim)
    if array.ndim != ndim:
        raise ValueError(f"column {column!r}: value has {array.ndim} dims, expected {ndim} (ragged nested list?)")
    return array


def _episodes(
    card: OutputCard, shards: list[str], group: str, image_formats: dict[str, str],
    shapes: dict[str, tuple[int | None, ...]], manifest: Manifest,
) -> Iterator[dict[str, Any]]:
    """RLDS episodes in order of first appearance over the shards (shard order = unit order)."""
    where: dict[Any, list[int]] = {}
    for i, shard in enumerate(shards):
        for value in dict.fromkeys(_read_table(shard, columns=[group]).column(0).to_pylist()):
            where.setdefault(value, []).append(i)
    features = _step_features(card, image_formats, shapes)
    columns = [c.name for c in card.columns]
    nullable = [c.name for c in card.columns if c.nullable]
    order = [(k, "ascending") for k in card.key if k != group]
    loaded: dict[int, dict[Any, pa.Table]] = {}
    # A bar (episodes done, elapsed, ETA) for people at a terminal: a whole corpus takes a while.
    for group_value, shard_indices in track(where.items(), total=len(where), description="rlds export: episodes",
                                            disable=not sys.stderr.isatty()):
        parts = []
        for i in shard_indices:
            if i not in loaded:
                loaded.clear()  # one shard in memory at a time (an episode spanning shards reloads)
                loaded[i] = _split_by(_read_table(shards[i]), group)
            parts.append(loaded[i][group_value])
        table = pa.concat_tables(parts)
        if order:
            table = table.sort_by(order)
        rows = table.to_pylist()
        steps = []
        for t, row in enumerate(rows):
            step = {name: _value(row[name], features[name], name) for name in columns}
            step.update(is_first=t == 0, is_last=t == len(rows) - 1, is_terminal=t == len(rows) - 1)
            if nullable:
                step[NULL_FLAGS] = {name: row[name] is None for name in nullable}
            steps.append(step)
        yield {
            "steps": steps,
            "episode_metadata": {
                "episode_id": str(group_value),
                "source": manifest.source,
                "pipeline": manifest.pipeline,
                "output_card_version": manifest.output_card_version,
            },
        }


def _split_by(table: pa.Table, column: str) -> dict[Any, pa.Table]:
    values = table.column(column).to_pylist()
    rows: dict[Any, list[int]] = {}
    for i, value in enumerate(values):
        rows.setdefault(value, []).append(i)
    return {value: table.take(pa.array(indices, pa.int64())) for value, indices in rows.items()}
