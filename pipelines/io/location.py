"""Locations: whether a corpus can be read from here (asked before any reader loads TensorFlow), and
local paths made absolute for the logs."""

from __future__ import annotations

import os

import fsspec


def location_problem(location: str) -> str | None:
    """None when `location` exists and this machine can read it; else why not, in a few words."""
    try:
        fs, path = fsspec.core.url_to_fs(location)
    except ImportError as e:  # the protocol's filesystem is not installed: "Install gcsfs to access ..."
        return f"no filesystem for it here, {e}"
    except ValueError as e:  # an unknown protocol
        return str(e)
    try:
        return None if fs.exists(path) else "nothing is there"
    except Exception as e:  # noqa: BLE001  no network, no credentials: the backend's own error, on one line
        return f"{type(e).__name__}: {' '.join(str(e).split())[:200]}"


def absolute(location: str) -> str:
    """A local path made absolute (a worker's `outputs` is relative to where it runs); URLs as they are."""
    return location if "://" in location else os.path.abspath(location)
