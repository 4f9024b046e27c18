"""Parquet shard writer: schema from the output card, atomic on any fsspec filesystem.

Rows are buffered and flushed in row groups; the file is written under a
temporary name and renamed on `finalize()`, so a reader (or a resumed run) never
sees a half-written shard. A duplicate row key raises: keys must be unique.
A full or read-only disk raises `StorageError` naming the shard, and leaves no
temporary file behind (where the storage still allows removing it).
"""

from __future__ import annotations

import uuid
from typing import Any, Self

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from datasets_cards import OutputCard
from datasets_cards.codecs import sha256_file
from datasets_cards.storage import is_disk_error, remove_quietly, storage_error


class ShardWriter:
    """Write one shard of an output card.

    >>> with ShardWriter(card, "out/la/droid/shards/shard-00000.parquet") as w:
    ...     w.write_rows(rows)
    >>> w.result  # (rows, bytes, sha256)
    """

    def __init__(self, card: OutputCard, path: str, *, row_group_rows: int | None = None):
        self.card = card
        self.path = path
        self.schema = card.arrow_schema()
        self.row_group_rows = row_group_rows or card.row_group_rows
        self.fs, self._fs_path = fsspec.core.url_to_fs(path)
        parent = self._fs_path.rsplit("/", 1)[0]
        self._tmp_path = f"{parent}/.tmp-{uuid.uuid4().hex}-{self._fs_path.rsplit('/', 1)[-1]}"
        self._buffer: list[dict[str, Any]] = []
        self._keys: set[tuple] = set()
        self._writer: pq.ParquetWriter | None = None
        self._stream = None
        self._rows = 0
        self.result: tuple[int, int, str] | None = None

    def __enter__(self) -> Self:
        try:
            self.fs.makedirs(self._fs_path.rsplit("/", 1)[0], exist_ok=True)
            self._stream = self.fs.open(self._tmp_path, "wb")
        except OSError as e:
            if not is_disk_error(e):
                raise
            raise storage_error(e, self.path) from e
        self._writer = pq.ParquetWriter(self._stream, self.schema, compression="zstd",
                                        use_dictionary=self.card.dictionary_encoding)
        return self

    def write_rows(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            key = tuple(row.get(k) for k in self.card.key)
            if key in self._keys:
                raise ValueError(f"duplicate row key {dict(zip(self.card.key, key))} in {self.path}")
            self._keys.add(key)
        self._buffer.extend(rows)
        while len(self._buffer) >= self.row_group_rows:
            self._flush(self._buffer[: self.row_group_rows])
            self._buffer = self._buffer[self.row_group_rows :]
        if self.card.row_group_per_write and self._buffer:
            self._flush(self._buffer)
            self._buffer = []

    def _flush(self, rows: list[dict[str, Any]]) -> None:
        missing = [c for c in self.schema.names if rows and c not in rows[0]]
        if missing:
            raise ValueError(f"rows for {self.card.name!r} lack columns {missing}")
        try:
            table = pa.Table.from_pylist(rows, schema=self.schema)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
            raise ValueError(f"rows do not match the {self.card.name!r} card schema: {e}") from e
        self._writer.write_table(table)  # type: ignore[union-attr]
        self._rows += len(rows)

    def finalize(self) -> tuple[int, int, str]:
        """Flush, close, rename into place. Returns (rows, bytes, sha256). Idempotent."""
        if self.result is not None:
            return self.result
        try:
            if self._buffer:
                self._flush(self._buffer)
                self._buffer = []
            self._writer.close()  # type: ignore[union-attr]
            self._stream.close()  # type: ignore[union-attr]
            digest = sha256_file(self._tmp_path, self.fs)
            size = self.fs.size(self._tmp_path)
            self.fs.mv(self._tmp_path, self._fs_path)
        except OSError as e:
            if not is_disk_error(e):
                raise
            raise storage_error(e, self.path) from e
        self.result = (self._rows, int(size), digest)
        return self.result

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self.finalize()
        finally:
            if self.result is None:  # failed: leave no temporary file behind
                for closeable in (self._writer, self._stream):
                    try:
                        closeable.close()  # type: ignore[union-attr]
                    except Exception:  # noqa: BLE001, S110 - already failing: the first error is the one to see
                        pass
                remove_quietly(self.fs, self._tmp_path)
