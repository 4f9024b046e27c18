"""The code version recorded in every manifest: package version + git commit when known."""

from __future__ import annotations

import functools
import subprocess
from importlib.metadata import PackageNotFoundError, version

from datasets_cards.constants import PROJECT_ROOT


@functools.cache
def code_version() -> str:
    try:
        pkg = version("robot-annotate")
    except PackageNotFoundError:
        pkg = "0+unknown"
    try:
        commit = subprocess.run(
            ["git", "-C", str(PROJECT_ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return pkg
    return f"{pkg}+g{commit}" if commit else pkg
