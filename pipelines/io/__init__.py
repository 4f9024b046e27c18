"""Storage: shards, manifest, small files and the output lease through fsspec (local, s3://, gs://)."""

from datasets_cards.storage import (
    StorageError,
    read_text,
    write_bytes_atomic,
    write_text_atomic,
)
from pipelines.io.lease import LeaseHeldError, LeaseLostError, OutputLease
from pipelines.io.shards import ShardWriter

__all__ = [
    "LeaseHeldError", "LeaseLostError", "OutputLease", "ShardWriter", "StorageError", "read_text",
    "write_bytes_atomic", "write_text_atomic",
]
