"""Storage: shards, manifest and small files through fsspec (local, s3://, gs://)."""

from datasets_cards.storage import read_text, write_bytes_atomic, write_text_atomic
from pipelines.io.shards import ShardWriter

__all__ = ["ShardWriter", "read_text", "write_bytes_atomic", "write_text_atomic"]
