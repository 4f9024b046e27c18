"""Small-file helpers on any fsspec filesystem: atomic writes (temp name, then rename) and reads.

Here, not in pipelines, because the manifest (read by the trainer too) is saved through them.

A write the storage refuses for a reason the user can fix (a full disk or quota, a read-only file
system, no permission, a path through a file) raises `StorageError`: one line naming the file, the
reason and what to do. Nothing half-written is left under the final name: data goes to a hidden
`.tmp-*` name first, which is removed when the write fails (a killed run's leftovers are removed
by the next run).
"""

from __future__ import annotations

import errno
import uuid

import fsspec

# errno → (what happened, what to do): the refusals a user can fix.
_DISK_ERRORS = {
    errno.ENOSPC: ("no space left on the device (ENOSPC)", "free space and re-run: finished work is kept"),
    errno.EDQUOT: ("disk quota exceeded (EDQUOT)", "free space or raise the quota and re-run: finished work is kept"),
    errno.EROFS: ("the file system is read-only (EROFS)", "write to a writable folder, or remount it, and re-run"),
    errno.EACCES: ("permission denied (EACCES)", "write to a folder you may write to, and re-run"),
    errno.EPERM: ("operation not permitted (EPERM)", "write to a folder you may write to, and re-run"),
    errno.ENOTDIR: ("a part of the path is a file, not a folder (ENOTDIR)", "is the output root a file? pass a folder"),
    errno.EEXIST: ("a part of the path is a file, not a folder (EEXIST)", "is the output root a file? pass a folder"),
    errno.EISDIR: ("it is a folder (EISDIR)", "remove or rename that folder, and re-run"),
}


class StorageError(OSError):
    """The storage refused a write for a reason the user can fix; the message is one line naming the file."""

    def __init__(self, code: int, message: str, path: str):
        super().__init__(code, message)
        self.filename = path
        self.message = message

    def __str__(self) -> str:
        return self.message


def is_disk_error(error: BaseException) -> bool:
    """A full or read-only disk, no permission, a path through a file: fixable by the user, not a bug."""
    return isinstance(error, OSError) and error.errno in _DISK_ERRORS


def storage_error(error: OSError, path: str, doing: str = "write") -> StorageError:
    """`error` (a disk error, see `is_disk_error`) as a one-line StorageError naming `path`."""
    if isinstance(error, StorageError):
        return error
    what, hint = _DISK_ERRORS[error.errno]  # type: ignore[index]
    return StorageError(error.errno, f"cannot {doing} {path}: {what}; {hint}", path)  # type: ignore[arg-type]


def remove_quietly(fs: fsspec.AbstractFileSystem, path: str) -> None:
    """Remove `path` if it is there; a storage that refuses (read-only) leaves it, hidden under its temp name."""
    try:
        if fs.exists(path):
            fs.rm(path)
    except OSError:
        pass


def write_bytes_atomic(path: str, data: bytes) -> None:
    """Write `data` to `path` (any fsspec URL) under a temp name, then rename: readers see all or nothing."""
    fs, p = fsspec.core.url_to_fs(path)
    parent, name = p.rsplit("/", 1) if "/" in p else (".", p)
    tmp = f"{parent}/.tmp-{uuid.uuid4().hex}-{name}"
    try:
        fs.makedirs(parent, exist_ok=True)
        with fs.open(tmp, "wb") as f:
            f.write(data)
        fs.mv(tmp, p)
    except OSError as e:
        if not is_disk_error(e):
            raise
        raise storage_error(e, path) from e
    finally:
        remove_quietly(fs, tmp)


def write_text_atomic(path: str, text: str) -> None:
    write_bytes_atomic(path, text.encode())


def read_text(path: str, **storage_options) -> str | None:
    """The file's text, or None if it does not exist."""
    fs, p = fsspec.core.url_to_fs(path, **storage_options)
    if not fs.exists(p):
        return None
    with fs.open(p, "rb") as f:
        return f.read().decode()
