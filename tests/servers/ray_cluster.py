"""A real local Ray cluster: `ray start --head` and a second node by `ray start --address`, one session long."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.servers.prefect_server import VENV_BIN, free_port

ROOT = Path(__file__).resolve().parents[2]
OBJECT_STORE_BYTES = 200 * 1024 * 1024  # the least Ray accepts comfortably; the units pass small records


@contextmanager
def ray_cluster(temp_dir: Path, env: dict[str, str]) -> Iterator[str]:
    """Yield the head's address. `temp_dir` must be short: Ray's socket paths have a length limit.

    Stopped by `ray stop --force`, which stops every Ray process of this user on the machine."""
    port = free_port()
    address = f"127.0.0.1:{port}"
    # cwd and PYTHONPATH: the workers unpickle tasks by reference, so they must import this checkout's code.
    env = {**os.environ, **env, "PYTHONPATH": str(ROOT), "RAY_TMPDIR": str(temp_dir)}
    common = ["--num-cpus", "1", "--object-store-memory", str(OBJECT_STORE_BYTES), "--disable-usage-stats"]

    def ray(*args: str) -> None:
        subprocess.run([str(VENV_BIN / "ray"), *args], env=env, cwd=ROOT, check=True, capture_output=True,
                       timeout=180)

    try:
        ray("start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port), "--include-dashboard",
            "false", "--temp-dir", str(temp_dir), *common)
        ray("start", "--address", address, "--node-ip-address", "127.0.0.1", *common)
        yield address
    finally:
        subprocess.run([str(VENV_BIN / "ray"), "stop", "--force"], env=env, capture_output=True, timeout=120,
                       check=False)
