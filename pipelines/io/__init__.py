"""Storage: shards, manifest and small files through fsspec (local, s3://, gs://)."""

from pipelines.io.files import read_text, write_bytes_atomic, write_text_atomic
from pipelines.io.shards import ShardWriter, sha256_of

__all__ = ["ShardWriter", "read_text", "sha256_of", "write_bytes_atomic", "write_text_atomic"]
