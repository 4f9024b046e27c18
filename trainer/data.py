"""Read an output folder's shards into batches: the trainer's one input path.

Phases, in order:
1. `ShardDataset.__init__` (main process): read manifest.json, check every shard
   against the card (schema version major, column types, row count, sha256) and
   list the (shard, row group) pieces. Bad data raises here, before any worker starts.
2. `ShardDataset.__iter__` (each DataLoader worker): pieces are shuffled with a
   (seed, epoch) permutation and dealt round-robin to the rank × worker streams, so
   every row is read exactly once per epoch across the job; each stream runs its
   rows through a seeded shuffle buffer and the row decoder (JPEG, RLE) in the worker.
3. `ShardLoader`: a DataLoader with pinned memory and persistent workers that
   yields (batch, Position) forever, epoch after epoch. A Position (epoch, batch
   index) saved in a checkpoint resumes the stream at exactly the next batch.

Epoch and resume position reach persistent workers through shared memory
values (a plain attribute set in the main process would not).
"""

from __future__ import annotations

import hashlib
import itertools
import multiprocessing
import os
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from datasets_cards import OutputCard, SchemaVersionError, load_output_card
from datasets_cards.constants import MANIFEST_FILE
from datasets_cards.manifest import Manifest, ShardIntegrityError, shard_problem

Row = dict[str, Any]
# ShardIntegrityError (datasets_cards.manifest, re-exported here): a shard differs from what manifest.json
# records (missing, size, checksum, rows), from the card's columns, or cannot be read; it names the file.


@dataclass(frozen=True)
class Piece:
    shard: str  # path relative to the output folder
    row_group: int
    rows: int


@dataclass(frozen=True)
class Holdout:
    """Deterministic split by a key column (episode id): the same episode is always on the same side."""

    column: str
    fraction: float  # share of keys that go to "eval"
    split: str  # "train" | "eval": which side this dataset keeps

    def __post_init__(self) -> None:
        if self.split not in ("train", "eval"):
            raise ValueError(f"Holdout.split must be 'train' or 'eval', got {self.split!r}")
        if not 0.0 <= self.fraction <= 1.0:
            raise ValueError(f"Holdout.fraction must be in [0, 1], got {self.fraction}")

    def is_eval(self, key: str) -> bool:
        digest = hashlib.sha1(str(key).encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64 < self.fraction

    def keeps(self, key: str) -> bool:
        return self.is_eval(key) == (self.split == "eval")


def _major(version: str) -> int:
    return int(str(version).split(".")[0])


def check_version(found: str | None, card: OutputCard, where: str) -> None:
    """Raise SchemaVersionError unless `found` has the card's major version."""
    if found is None or _major(found) != card.major_version:
        raise SchemaVersionError(
            f"{where} was written under output card {card.name!r} version {found}, this suite reads "
            f"major {card.major_version} (card version {card.version}). Re-run the flow into a new output "
            f"folder, or install the suite version that wrote it."
        )


def read_manifest(root: str, storage_options: dict | None = None) -> Manifest:
    return Manifest.load(root, **(storage_options or {}))


def _list_values(arr: pa.Array) -> list[Any]:
    """One Arrow column → one Python/numpy value per row (numeric lists become numpy arrays, fast path)."""
    t = arr.type
    if pa.types.is_list(t) and (pa.types.is_integer(t.value_type) or pa.types.is_floating(t.value_type)):
        offsets, values = arr.offsets.to_numpy(), arr.values.to_numpy(zero_copy_only=False)
        nulls = arr.is_null().to_numpy(zero_copy_only=False)
        return [None if nulls[i] else values[offsets[i] : offsets[i + 1]] for i in range(len(arr))]
    if pa.types.is_list(t) and pa.types.is_list(t.value_type) and pa.types.is_primitive(t.value_type.value_type):
        outer, inner_arr = arr.offsets.to_numpy(), arr.values
        inner, values = inner_arr.offsets.to_numpy(), inner_arr.values.to_numpy(zero_copy_only=False)
        nulls = arr.is_null().to_numpy(zero_copy_only=False)
        rows: list[Any] = []
        for i in range(len(arr)):
            if nulls[i]:
                rows.append(None)
                continue
            lo, hi = outer[i], outer[i + 1]
            lengths = np.diff(inner[lo : hi + 1])
            if hi > lo and (lengths != lengths[0]).any():
                raise ShardIntegrityError(f"ragged inner lists in a {t} column (row {i}): {lengths.tolist()}")
            width = int(lengths[0]) if hi > lo else 0
            rows.append(values[inner[lo] : inner[hi]].reshape(hi - lo, width))
        return rows
    if pa.types.is_fixed_size_list(t):
        return [None if v is None else np.asarray(v) for v in arr.to_pylist()]
    return arr.to_pylist()


def table_to_rows(table: pa.Table) -> list[Row]:
    columns = {name: _list_values(table.column(name).combine_chunks()) for name in table.column_names}
    return [{name: values[i] for name, values in columns.items()} for i in range(table.num_rows)]


def shuffle_buffer(rows: Iterator[Row], size: int, rng: random.Random) -> Iterator[Row]:
    """Yield rows in a random order using a buffer of `size` rows (size <= 1: unchanged order)."""
    if size <= 1:
        yield from rows
        return
    buffer: list[Row] = []
    for row in rows:
        if len(buffer) < size:
            buffer.append(row)
            continue
        i = rng.randrange(size)
        yield buffer[i]
        buffer[i] = row
    rng.shuffle(buffer)
    yield from buffer


def batches_before(consumed: int, stream: int, num_streams: int) -> int:
    """How many of the first `consumed` batches came from `stream` when streams take turns."""
    return max(0, (consumed - stream + num_streams - 1) // num_streams)


def _dist_env(rank: int | None, world_size: int | None) -> tuple[int, int]:
    rank = int(os.environ.get("RANK", "0")) if rank is None else rank
    world_size = int(os.environ.get("WORLD_SIZE", "1")) if world_size is None else world_size
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} outside world size {world_size}")
    return rank, world_size


class ShardDataset(IterableDataset):
    """Rows of one output folder (local path or fsspec URL), checked against its output card."""

    def __init__(
        self,
        root: str,
        card: str | None = None,  # output card name; default: the manifest's pipeline
        *,
        columns: list[str] | None = None,  # None: every card column
        decode_row: Callable[[Row], Row] | None = None,  # runs in the worker (JPEG/RLE decoding)
        shuffle: bool = True,
        seed: int = 0,
        buffer_size: int = 1024,  # rows held by each worker's shuffle buffer
        rank: int | None = None,  # default: $RANK or 0
        world_size: int | None = None,  # default: $WORLD_SIZE or 1
        holdout: Holdout | None = None,
        verify_checksums: bool = True,  # hash every shard once at construction (size is always checked)
        storage_options: dict | None = None,
    ):
        super().__init__()
        self.root = root.rstrip("/")
        self.storage_options = storage_options or {}
        self.manifest = read_manifest(self.root, self.storage_options)
        self.card = load_output_card(card or self.manifest.pipeline)
        if self.manifest.pipeline != self.card.name:
            raise ShardIntegrityError(
                f"{self.root} holds {self.manifest.pipeline!r} shards, not {self.card.name!r}"
            )
        check_version(self.manifest.output_card_version, self.card, f"{self.root}/{MANIFEST_FILE}")
        self.columns = list(columns) if columns is not None else [c.name for c in self.card.columns]
        for name in self.columns:
            self.card.column(name)  # KeyError naming the card's columns
        if holdout is not None and holdout.column not in self.columns:
            self.columns.append(holdout.column)
        self.decode_row = decode_row
        self.shuffle, self.seed, self.buffer_size = shuffle, seed, buffer_size
        self.rank, self.world_size = _dist_env(rank, world_size)
        self.holdout = holdout
        self.pieces = self._check_shards(verify_checksums)
        # Shared with persistent workers: epoch, batches already consumed this epoch, batch size.
        self._position = multiprocessing.get_context().RawArray("q", 3)

    @property
    def num_rows(self) -> int:
        """Rows in the folder (before the holdout split)."""
        return sum(p.rows for p in self.pieces)

    def _fs(self) -> tuple[fsspec.AbstractFileSystem, str]:
        return fsspec.core.url_to_fs(self.root, **self.storage_options)

    def _check_shards(self, verify_checksums: bool) -> list[Piece]:
        fs, base = self._fs()
        expected = self.card.arrow_schema()
        pieces: list[Piece] = []
        for record in self.manifest.current_shards:
            path = f"{base}/{record.path}"
            where = f"shard {self.root}/{record.path}"
            if problem := shard_problem(fs, path, record, checksum=verify_checksums):
                raise ShardIntegrityError(f"{where} {problem}")
            try:
                with fs.open(path, "rb") as f:
                    meta = pq.ParquetFile(f).metadata
                    schema = meta.schema.to_arrow_schema()
            except (OSError, pa.ArrowException) as e:  # a damaged footer: pyarrow's message names no file
                raise ShardIntegrityError(f"{where} cannot be read as Parquet ({type(e).__name__}: {str(e).strip()})") from e
            found = (schema.metadata or {}).get(b"output_card_version")
            check_version(found.decode() if found else None, self.card, where)
            for name in self.columns:
                want = expected.field(name).type
                if name not in schema.names or schema.field(name).type != want:
                    got = schema.field(name).type if name in schema.names else "missing"
                    raise ShardIntegrityError(f"{where}: column {name!r} is {got}, card says {want}")
            if meta.num_rows != record.rows:
                raise ShardIntegrityError(f"{where} has {meta.num_rows} rows, manifest says {record.rows}")
            pieces += [Piece(record.path, i, meta.row_group(i).num_rows) for i in range(meta.num_row_groups)]
        return pieces

    def set_epoch(self, epoch: int) -> None:
        """Changes the piece permutation and shuffle-buffer seed; reaches persistent workers."""
        self._position[0] = epoch

    def set_position(self, epoch: int, consumed_batches: int, batch_size: int) -> None:
        """Next iteration starts after `consumed_batches` batches of `batch_size` rows of `epoch`."""
        self._position[0], self._position[1], self._position[2] = epoch, consumed_batches, batch_size

    def pieces_for(self, stream: int, num_streams: int, epoch: int) -> list[Piece]:
        order = list(self.pieces)
        if self.shuffle:
            random.Random(f"pieces-{self.seed}-{epoch}").shuffle(order)
        return order[stream::num_streams]

    def _read(self, pieces: list[Piece]) -> Iterator[Row]:
        fs, base = self._fs()
        for piece in pieces:
            try:
                with fs.open(f"{base}/{piece.shard}", "rb") as f:
                    table = pq.ParquetFile(f).read_row_group(piece.row_group, columns=self.columns)
            except (OSError, pa.ArrowException) as e:  # damaged pages (checksums off, or changed since)
                raise ShardIntegrityError(f"shard {self.root}/{piece.shard} row group {piece.row_group} cannot "
                                          f"be read ({type(e).__name__}: {str(e).strip()})") from e
            for row in table_to_rows(table):
                if self.holdout is None or self.holdout.keeps(row[self.holdout.column]):
                    yield row

    def __iter__(self) -> Iterator[Row]:
        info = get_worker_info()
        workers, worker = (info.num_workers, info.id) if info else (1, 0)
        epoch, consumed, batch_size = (int(v) for v in self._position)
        # DataLoader takes batches from its workers in turn; after a resume the first batch
        # must come from the stream that was next, so worker w plays stream (w + consumed) % W.
        role = (worker + consumed) % workers
        skip_rows = batches_before(consumed, role, workers) * batch_size
        stream = self.rank * workers + role
        rows = self._read(self.pieces_for(stream, self.world_size * workers, epoch))
        if self.shuffle:
            rows = shuffle_buffer(rows, self.buffer_size, random.Random(f"rows-{self.seed}-{epoch}-{stream}"))
        for row in itertools.islice(rows, skip_rows, None):  # skipped rows are never decoded
            yield self.decode_row(row) if self.decode_row else row


@dataclass(frozen=True)
class Position:
    epoch: int
    batch: int  # index of this batch within its epoch


class ShardLoader:
    """Batches forever over a ShardDataset, each tagged with its Position for exact resume."""

    def __init__(
        self,
        dataset: ShardDataset,
        collate: Callable[[list[Row]], dict[str, Any]],
        batch_size: int,
        *,
        num_workers: int = 4,
        pin_memory: bool = True,
        prefetch_factor: int = 4,
        drop_last: bool = True,  # constant batch shapes; every batch is full, so resume counts are exact
        seed: int = 0,
    ):
        self.dataset, self.batch_size, self.num_workers, self.seed = dataset, batch_size, num_workers, seed
        self.epoch, self.start_batch = 0, 0
        self._loader = DataLoader(
            dataset,
            batch_size=batch_size,
            collate_fn=collate,
            num_workers=num_workers,
            pin_memory=pin_memory and torch.cuda.is_available(),
            persistent_workers=num_workers > 0,
            prefetch_factor=prefetch_factor if num_workers > 0 else None,
            drop_last=drop_last,
        )

    def state_dict(self, position: Position) -> dict[str, int]:
        """Resume point: `position` is the first batch not yet used for training."""
        return {
            "epoch": position.epoch,
            "batch": position.batch,
            "num_workers": self.num_workers,
            "world_size": self.dataset.world_size,
            "batch_size": self.batch_size,
        }

    def load_state_dict(self, state: dict[str, int]) -> None:
        for key, mine in (("num_workers", self.num_workers), ("world_size", self.dataset.world_size),
                          ("batch_size", self.batch_size)):
            if state[key] != mine:
                raise ValueError(f"cannot resume the data position exactly: checkpoint has {key}={state[key]}, now {mine}")
        self.epoch, self.start_batch = state["epoch"], state["batch"]

    def __iter__(self) -> Iterator[tuple[dict[str, Any], Position]]:
        while True:
            self.dataset.set_position(self.epoch, self.start_batch, self.batch_size)
            # Worker seeds come from this generator, so making an iterator leaves the global RNG alone.
            self._loader.generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            index = self.start_batch
            for batch in self._loader:
                yield batch, Position(self.epoch, index)
                index += 1
            if index == 0:  # a whole epoch without one full batch would loop forever
                raise ValueError(
                    f"epoch {self.epoch} of {self.dataset.root} produced no batch of {self.batch_size} rows "
                    f"({self.dataset.num_rows} rows in the folder before the holdout split)"
                )
            self.epoch, self.start_batch = self.epoch + 1, 0
