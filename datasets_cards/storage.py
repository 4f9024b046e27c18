"""Small-file helpers on any fsspec filesystem: atomic writes (temp name, then rename) and reads.

Here, not in pipelines, because the manifest (read by the trainer too) is saved through them.
"""

from __future__ import annotations

import uuid

import fsspec


def write_bytes_atomic(path: str, data: bytes) -> None:
    fs, p = fsspec.core.url_to_fs(path)
    parent, name = p.rsplit("/", 1) if "/" in p else (".", p)
    fs.makedirs(parent, exist_ok=True)
    tmp = f"{parent}/.tmp-{uuid.uuid4().hex}-{name}"
    try:
        with fs.open(tmp, "wb") as f:
            f.write(data)
        fs.mv(tmp, p)
    finally:
        if fs.exists(tmp):
            fs.rm(tmp)


def write_text_atomic(path: str, text: str) -> None:
    write_bytes_atomic(path, text.encode())


def read_text(path: str, **storage_options) -> str | None:
    """The file's text, or None if it does not exist."""
    fs, p = fsspec.core.url_to_fs(path, **storage_options)
    if not fs.exists(p):
        return None
    with fs.open(p, "rb") as f:
        return f.read().decode()
