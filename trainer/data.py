"""Read output folders' shards into batches: the trainer's one input path.

Phases, in order:
1. `ShardDataset.__init__` (main process): read manifest.json, check every shard
   against the card (schema version major, column types, row count, sha256), list the
   (shard, row group) pieces and, with a holdout, read only the holdout key column to
   know which rows of each piece this side keeps. Bad data raises here, before any worker starts.
2. The epoch order is global: a pure function of (seed, epoch, the folder's pieces, the
   holdout), the same whatever the world size and worker count. Pieces are permuted with
   a (seed, epoch) RNG and grouped into windows of `window` consecutive pieces; the kept
   rows of a window are shuffled with a seeded shuffle buffer of `buffer_size` rows (a
   buffer as large as the window is a full permutation of it). Sample i of an epoch is a
   (piece, row) found from the window offsets; nothing is read to know it.
3. Global batch g (from a sample offset `start`, which resume sets) is the next
   world_size × batch_size samples; rank r takes its contiguous batch_size slice. Rank
   batch k is built by DataLoader worker k % num_workers (a DataLoader takes batches from
   its workers in turn), which reads only the row groups its samples sit in (the current
   window's tables are cached) and decodes (JPEG, RLE) only its own samples.
   Every rank gets floor((epoch length − start) / (world_size × batch_size)) batches per
   epoch: even by construction, never a hang on an uneven last batch; the tail of fewer
   than world_size × batch_size samples is dropped (reshuffled into the next epoch).
4. `ShardLoader`: a DataLoader with pinned memory and persistent workers that yields
   (batch, Position) forever, epoch after epoch. A Position (epoch, global sample offset)
   saved in a checkpoint resumes exactly at the next sample, on any world size, worker
   count or batch size.

`MixtureDataset` interleaves several folders of one output card by weight: a seeded
sequence of source choices per epoch picks, for each global sample, the source whose own
global order supplies the next sample, so proportions hold in expectation without reading
whole datasets. Epoch and resume position reach persistent workers through shared memory
values (a plain attribute set in the main process would not).
"""

from __future__ import annotations

import hashlib
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



def _dist_env(rank: int | None, world_size: int | None) -> tuple[int, int]:
    rank = int(os.environ.get("RANK", "0")) if rank is None else rank
    world_size = int(os.environ.get("WORLD_SIZE", "1")) if world_size is None else world_size
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} outside world size {world_size}")
    return rank, world_size


def default_workers() -> int:
    """DataLoader workers per process: the cores this process may run on (its CPU affinity) shared among the
    processes torchrun started on this node ($LOCAL_WORLD_SIZE), at most 4; 0 (read in the training process)
    when that leaves a single core."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    per_process = cores // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    return min(4, per_process) if per_process > 1 else 0


def parse_data(spec: str) -> list[tuple[str, float]]:
    """`--data`: one folder, `a:0.7,b:0.3` (weights optional, default equal), or a YAML file listing
    `{path, weight}` (a list, or under `sources:`). Returns (folder, weight) pairs, weights summing to 1."""
    spec = spec.strip()
    items: list[tuple[str, float | None]] = []
    if spec.endswith((".yaml", ".yml")) and os.path.isfile(spec):
        import yaml

        with open(spec) as f:
            doc = yaml.safe_load(f)
        entries = doc.get("sources") if isinstance(doc, dict) else doc
        if not isinstance(entries, list) or not entries:
            raise ValueError(f"{spec}: expected a list of {{path, weight}} (or one under `sources:`)")
        for entry in entries:
            if isinstance(entry, str):
                items.append((entry, None))
            elif isinstance(entry, dict) and "path" in entry:
                items.append((str(entry["path"]), None if entry.get("weight") is None else float(entry["weight"])))
            else:
                raise ValueError(f"{spec}: each source needs a `path` (and optionally a `weight`), got {entry!r}")
    else:
        for part in (p.strip() for p in spec.split(",")):
            if not part:
                continue
            path, _, weight = part.rpartition(":")
            try:
                items.append((path, float(weight)) if path else (part, None))
            except ValueError:  # a colon that is no weight (a URL's scheme)
                items.append((part, None))
    if not items:
        raise ValueError("data: give the output folder to train on")
    weights = [1.0 if w is None else w for _, w in items]
    if any(w < 0 for w in weights) or sum(weights) <= 0:
        raise ValueError(f"data: weights must be >= 0 and not all 0, got {weights}")
    return [(path, w / sum(weights)) for (path, _), w in zip(items, weights, strict=True)]


class GlobalOrderDataset(IterableDataset):
    """Rows in a global epoch order (subclasses say how long an epoch is and which rows sit at which
    indices); iteration hands each rank and DataLoader worker its batches of it (see the module doc)."""

    decode_row: Callable[[Row], Row] | None

    def _init_position(self, rank: int | None, world_size: int | None) -> None:
        self.rank, self.world_size = _dist_env(rank, world_size)
        # Shared with persistent workers: epoch, global sample offset, batch size, drop the tail (1) or not (0).
        self._position = multiprocessing.get_context().RawArray("q", 4)
        self._position[2], self._position[3] = 1, 1

    def epoch_length(self, epoch: int) -> int:
        raise NotImplementedError

    def rows_at(self, epoch: int, indices: list[int]) -> list[Row]:
        """The undecoded rows at these indices of the epoch's global order."""
        raise NotImplementedError

    def set_epoch(self, epoch: int) -> None:
        self._position[0], self._position[1] = epoch, 0

    def set_position(self, epoch: int, start: int, batch_size: int, drop_last: bool = True) -> None:
        """The next iteration reads epoch `epoch` from global sample `start` on, in batches of `batch_size`."""
        self._position[0], self._position[1], self._position[2], self._position[3] = epoch, start, batch_size, int(drop_last)

    def rank_batches(self, epoch: int, start: int, batch_size: int, drop_last: bool = True) -> list[tuple[int, int]]:
        """This rank's batches of the epoch from global sample `start`, as [lo, hi) global index ranges: as many
        for every rank, floor(remaining / (world_size × batch_size)); the shorter tail is dropped, or with
        drop_last=False on one process, returned as a last short batch."""
        step = self.world_size * batch_size
        remaining = max(0, self.epoch_length(epoch) - start)
        full = remaining // step
        out = [(start + g * step + self.rank * batch_size, start + g * step + (self.rank + 1) * batch_size)
               for g in range(full)]
        if not drop_last and remaining % step:
            if self.world_size > 1:
                raise ValueError("drop_last=False needs one process: ranks would get uneven batches")
            out.append((start + full * step, start + remaining))
        return out

    def __iter__(self) -> Iterator[Row]:
        info = get_worker_info()
        workers, worker = (info.num_workers, info.id) if info else (1, 0)
        epoch, start, batch_size, drop_last = (int(v) for v in self._position)
        for lo, hi in self.rank_batches(epoch, start, batch_size, bool(drop_last))[worker::workers]:
            for row in self.rows_at(epoch, list(range(lo, hi))):
                yield self.decode_row(row) if self.decode_row else row


# pyarrow reads a null fixed-size list (a lost object's `box`) from Parquet only from 26 on (apache/arrow#35692);
# older versions fail on such a row group with "Expected all lists to be of size=4", which would read as damage.
NULL_FIXED_LIST_PYARROW = 26


def require_null_fixed_list_reads(schema: pa.Schema, columns: list[str]) -> None:
    """Refuse to start with a pyarrow that cannot read the nullable fixed-size list columns to be read."""
    if int(pa.__version__.split(".")[0]) >= NULL_FIXED_LIST_PYARROW:
        return
    risky = [f.name for f in schema if f.name in columns and f.nullable and pa.types.is_fixed_size_list(f.type)]
    if risky:
        raise RuntimeError(f"pyarrow {pa.__version__} cannot read null values of the fixed-size list column(s) "
                           f"{', '.join(risky)} (apache/arrow#35692, fixed in pyarrow {NULL_FIXED_LIST_PYARROW}): "
                           f"pip install 'pyarrow>={NULL_FIXED_LIST_PYARROW}'")


class ShardDataset(GlobalOrderDataset):
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
        buffer_size: int = 1024,  # rows of the seeded shuffle buffer run over each window's rows
        window: int = 8,  # pieces (row groups) whose rows are shuffled together
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
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self.decode_row = decode_row
        self.shuffle, self.seed, self.buffer_size, self.window = shuffle, seed, buffer_size, window
        self._init_position(rank, world_size)
        self.holdout = holdout
        self.pieces = self._check_shards(verify_checksums)
        # Row indices each piece keeps (None: all): read once here, so the order never depends on who reads.
        self.kept: list[np.ndarray | None] = [None] * len(self.pieces)
        if holdout is not None:
            self.kept = self._holdout_rows(holdout)
        self.kept_counts = np.array([p.rows if k is None else len(k) for p, k in zip(self.pieces, self.kept, strict=True)],
                                    dtype=np.int64)
        self._layouts: dict[int, tuple[list[int], np.ndarray]] = {}
        self._windows: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
        self._tables: dict[int, pa.Table] = {}

    @property
    def num_rows(self) -> int:
        """Rows in the folder (before the holdout split)."""
        return sum(p.rows for p in self.pieces)

    def _fs(self) -> tuple[fsspec.AbstractFileSystem, str]:
        return fsspec.core.url_to_fs(self.root, **self.storage_options)

    def _check_shards(self, verify_checksums: bool) -> list[Piece]:
        fs, base = self._fs()
        expected = self.card.arrow_schema()
        require_null_fixed_list_reads(expected, self.columns)
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
            names = list(dict.fromkeys([*self.columns, *([self.holdout_column] if self.holdout_column else [])]))
            for name in names:
                want = expected.field(name).type
                if name not in schema.names or schema.field(name).type != want:
                    got = schema.field(name).type if name in schema.names else "missing"
                    raise ShardIntegrityError(f"{where}: column {name!r} is {got}, card says {want}")
            if meta.num_rows != record.rows:
                raise ShardIntegrityError(f"{where} has {meta.num_rows} rows, manifest says {record.rows}")
            pieces += [Piece(record.path, i, meta.row_group(i).num_rows) for i in range(meta.num_row_groups)]
        return pieces

    @property
    def holdout_column(self) -> str | None:
        return getattr(self, "holdout", None) and self.holdout.column

    def _read_piece(self, piece: Piece, columns: list[str]) -> pa.Table:
        fs, base = self._fs()
        try:
            with fs.open(f"{base}/{piece.shard}", "rb") as f:
                return pq.ParquetFile(f).read_row_group(piece.row_group, columns=columns)
        except (OSError, pa.ArrowException) as e:  # damaged pages (checksums off, or changed since)
            raise ShardIntegrityError(f"shard {self.root}/{piece.shard} row group {piece.row_group} cannot "
                                      f"be read ({type(e).__name__}: {str(e).strip()})") from e

    def _holdout_rows(self, holdout: Holdout) -> list[np.ndarray | None]:
        kept: list[np.ndarray | None] = []
        for piece in self.pieces:
            keys = self._read_piece(piece, [holdout.column]).column(0).to_pylist()
            kept.append(np.array([i for i, key in enumerate(keys) if holdout.keeps(key)], dtype=np.int64))
        return kept

    # ---- the global order ---------------------------------------------------------------------------------

    def _layout(self, epoch: int) -> tuple[list[int], np.ndarray]:
        """The epoch's piece order and the global index at which each window starts (one more: the end)."""
        if epoch not in self._layouts:
            order = list(range(len(self.pieces)))
            if self.shuffle:
                random.Random(f"pieces-{self.seed}-{epoch}").shuffle(order)
            counts = self.kept_counts[order] if order else np.zeros(0, np.int64)
            sizes = [int(counts[w : w + self.window].sum()) for w in range(0, len(order), self.window)]
            self._layouts = {epoch: (order, np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)]))}
        return self._layouts[epoch]

    def _window(self, epoch: int, w: int) -> tuple[np.ndarray, np.ndarray]:
        """(piece, row) of every sample of window w, in the epoch's order."""
        key = (epoch, w)
        if key not in self._windows:
            order, _ = self._layout(epoch)
            piece_ids, rows = [], []
            for p in order[w * self.window : (w + 1) * self.window]:
                kept = self.kept[p] if self.kept[p] is not None else np.arange(self.pieces[p].rows, dtype=np.int64)
                piece_ids.append(np.full(len(kept), p, np.int64))
                rows.append(kept)
            piece_ids = np.concatenate(piece_ids) if piece_ids else np.zeros(0, np.int64)
            rows = np.concatenate(rows) if rows else np.zeros(0, np.int64)
            if self.shuffle and len(rows) > 1:
                rng = random.Random(f"rows-{self.seed}-{epoch}-{w}")
                if self.buffer_size >= len(rows):
                    perm = list(range(len(rows)))
                    rng.shuffle(perm)
                else:
                    perm = list(shuffle_buffer(iter(range(len(rows))), self.buffer_size, rng))
                piece_ids, rows = piece_ids[perm], rows[perm]
            if len(self._windows) >= 4:
                self._windows.pop(next(iter(self._windows)))
            self._windows[key] = (piece_ids, rows)
        return self._windows[key]

    def epoch_length(self, epoch: int = 0) -> int:
        return int(self.kept_counts.sum())

    def order(self, epoch: int, indices: list[int]) -> list[tuple[int, int]]:
        """(piece, row) of global samples `indices` of the epoch."""
        _, starts = self._layout(epoch)
        out = []
        for i in indices:
            w = int(np.searchsorted(starts, i, side="right")) - 1
            if not 0 <= i < starts[-1]:
                raise IndexError(f"sample {i} outside epoch of {int(starts[-1])} samples")
            piece_ids, rows = self._window(epoch, w)
            out.append((int(piece_ids[i - starts[w]]), int(rows[i - starts[w]])))
        return out

    def rows_at(self, epoch: int, indices: list[int]) -> list[Row]:
        located = self.order(epoch, indices)
        by_piece: dict[int, list[int]] = {}
        for k, (p, _) in enumerate(located):
            by_piece.setdefault(p, []).append(k)
        out: list[Row | None] = [None] * len(located)
        for p, ks in by_piece.items():
            if p not in self._tables:
                if len(self._tables) >= 2 * self.window:  # keep about the current window's row groups
                    self._tables.pop(next(iter(self._tables)))
                self._tables[p] = self._read_piece(self.pieces[p], self.columns)
            taken = self._tables[p].take(pa.array([located[k][1] for k in ks], pa.int64()))
            for k, row in zip(ks, table_to_rows(taken), strict=True):
                out[k] = row
        return out  # type: ignore[return-value]


class MixtureDataset(GlobalOrderDataset):
    """Folders of one output card interleaved by weight (shuffle), or one after another (no shuffle: eval).

    Each global sample of an epoch first draws its source from a (seed, epoch) sequence of weighted
    choices (blocks of BLOCK draws, each block its own seeded generator, so any index is found without
    drawing all before it twice), then takes that source's next sample in the source's own global order.
    The epoch ends at the first draw of a source already used up: sources are sampled by weight, not
    read in full (a source with a small weight and many rows leaves rows unseen that epoch)."""

    BLOCK = 4096

    def __init__(self, sources: list[ShardDataset], weights: list[float], *, shuffle: bool = True, seed: int = 0,
                 decode_row: Callable[[Row], Row] | None = None, rank: int | None = None,
                 world_size: int | None = None):
        super().__init__()
        if len(sources) != len(weights) or not sources:
            raise ValueError("MixtureDataset: one weight per source, at least one source")
        cards = {s.card.name for s in sources}
        if len(cards) > 1:
            raise ValueError(f"a mixture needs folders of one output card, got {sorted(cards)}: "
                             + ", ".join(f"{s.root} ({s.card.name})" for s in sources))
        self.sources, self.shuffle, self.seed, self.decode_row = sources, shuffle, seed, decode_row
        total = float(sum(weights))
        self.weights = np.array([w / total for w in weights], dtype=np.float64)
        self.card, self.root = sources[0].card, ",".join(s.root for s in sources)
        self._init_position(rank, world_size)
        self._epochs: dict[int, tuple[int, list[np.ndarray]]] = {}
        self._blocks: dict[tuple[int, int], np.ndarray] = {}

    @property
    def num_rows(self) -> int:
        return sum(s.num_rows for s in self.sources)

    def _block(self, epoch: int, b: int) -> np.ndarray:
        key = (epoch, b)
        if key not in self._blocks:
            if len(self._blocks) >= 4:
                self._blocks.pop(next(iter(self._blocks)))
            rng = np.random.default_rng([self.seed, epoch, b])
            self._blocks[key] = rng.choice(len(self.sources), size=self.BLOCK, p=self.weights)
        return self._blocks[key]

    def _epoch(self, epoch: int) -> tuple[int, list[np.ndarray]]:
        """The epoch's length and, per block, how many samples each source gave before it."""
        if epoch not in self._epochs:
            lengths = np.array([s.epoch_length(epoch) for s in self.sources], dtype=np.int64)
            before, used, b = [], np.zeros(len(self.sources), np.int64), 0
            while True:
                choices = self._block(epoch, b)
                before.append(used.copy())
                counts = np.stack([np.cumsum(choices == c) for c in range(len(self.sources))])  # S×BLOCK
                over = np.nonzero(((used[:, None] + counts) > lengths[:, None]).any(0))[0]
                if len(over):
                    length = b * self.BLOCK + int(over[0])
                    break
                used += counts[:, -1]
                b += 1
            self._epochs = {epoch: (length, before)}
        return self._epochs[epoch]

    def epoch_length(self, epoch: int = 0) -> int:
        if not self.shuffle:
            return sum(s.epoch_length(epoch) for s in self.sources)
        return self._epoch(epoch)[0]

    def locate(self, epoch: int, i: int) -> tuple[int, int]:
        """(source, index in that source's global order) of global sample i."""
        if not self.shuffle:
            for s, source in enumerate(self.sources):
                if i < source.epoch_length(epoch):
                    return s, i
                i -= source.epoch_length(epoch)
            raise IndexError("sample outside the epoch")
        length, before = self._epoch(epoch)
        if not 0 <= i < length:
            raise IndexError(f"sample {i} outside epoch of {length} samples")
        b, k = divmod(i, self.BLOCK)
        choices = self._block(epoch, b)
        c = int(choices[k])
        return c, int(before[b][c] + np.count_nonzero(choices[:k] == c))

    def rows_at(self, epoch: int, indices: list[int]) -> list[Row]:
        located = [self.locate(epoch, i) for i in indices]
        out: list[Row | None] = [None] * len(located)
        for s, source in enumerate(self.sources):
            ks = [k for k, (c, _) in enumerate(located) if c == s]
            if ks:
                for k, row in zip(ks, source.rows_at(epoch, [located[k][1] for k in ks]), strict=True):
                    out[k] = row
        return out  # type: ignore[return-value]


@dataclass(frozen=True)
class Position:
    epoch: int
    batch: int  # index of this rank's batch within its epoch, counted from where this run started it
    sample: int = 0  # global sample offset of the global batch it belongs to: the resume point


STATE_FORMAT = 2  # data state of checkpoints: {format, epoch, sample, batch_size, seed}


class ShardLoader:
    """Batches forever over a ShardDataset or MixtureDataset, each tagged with its Position for exact resume."""

    def __init__(
        self,
        dataset: GlobalOrderDataset,
        collate: Callable[[list[Row]], dict[str, Any]],
        batch_size: int,
        *,
        num_workers: int | None = None,  # None: default_workers()
        pin_memory: bool = True,
        prefetch_factor: int = 4,
        drop_last: bool = True,  # even batches on every rank; False (one process only): a last short batch
        seed: int = 0,
    ):
        num_workers = default_workers() if num_workers is None else num_workers
        self.dataset, self.batch_size, self.num_workers, self.seed = dataset, batch_size, num_workers, seed
        self.drop_last = drop_last
        self.epoch, self.start = 0, 0
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

    def batches_per_epoch(self, epoch: int | None = None, start: int = 0) -> int:
        """Batches every rank gets in the epoch from global sample `start` (the same on every rank)."""
        epoch = self.epoch if epoch is None else epoch
        return len(self.dataset.rank_batches(epoch, start, self.batch_size, self.drop_last))

    def state_dict(self, position: Position) -> dict[str, int]:
        """Resume point: `position` is the first batch not yet used for training."""
        return {"format": STATE_FORMAT, "epoch": position.epoch, "sample": position.sample,
                "batch_size": self.batch_size, "seed": self.seed}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Continue at the saved global sample: exact on any world size and worker count. Another batch size
        or seed would change the order of what is left, so they are refused."""
        if state.get("format") != STATE_FORMAT:
            raise ValueError("the checkpoint's data position is of an older trainer (per rank and worker, before "
                             "the global epoch order): it cannot be resumed exactly; train into another --out, or "
                             "pass --resume false")
        for key, mine in (("batch_size", self.batch_size), ("seed", self.seed)):
            if state[key] != mine:
                raise ValueError(f"cannot resume the data position exactly: checkpoint has {key}={state[key]}, now {mine}")
        self.epoch, self.start = int(state["epoch"]), int(state["sample"])

    def __iter__(self) -> Iterator[tuple[dict[str, Any], Position]]:
        step = self.dataset.world_size * self.batch_size
        while True:
            self.dataset.set_position(self.epoch, self.start, self.batch_size, self.drop_last)
            # Worker seeds come from this generator, so making an iterator leaves the global RNG alone.
            self._loader.generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            index = 0
            for batch in self._loader:
                yield batch, Position(self.epoch, index, self.start + index * step)
                index += 1
            if index == 0 and self.start == 0:  # a whole epoch without one full batch would loop forever
                raise ValueError(
                    f"epoch {self.epoch} of {self.dataset.root} produced no batch of {self.batch_size} rows on each of "
                    f"{self.dataset.world_size} processes ({self.dataset.num_rows} rows before the holdout split)"
                )
            self.epoch, self.start = self.epoch + 1, 0
