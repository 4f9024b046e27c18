"""A real Dask cluster on 127.0.0.1: `dask scheduler` and two `dask worker` processes, one session long."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from tests.servers.prefect_server import VENV_BIN, free_port, stop_process, wait_until

ROOT = Path(__file__).resolve().parents[2]


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    # cwd and PYTHONPATH: the workers unpickle tasks by reference, so they must import this checkout's code.
    with open(log, "wb") as out:
        return subprocess.Popen([str(VENV_BIN / "dask"), *args], env=env, cwd=ROOT, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)


@contextmanager
def dask_cluster(folder: Path, env: dict[str, str], workers: int = 2) -> Iterator[str]:
    """Yield the scheduler's address; `env` (PREFECT_API_URL …) is what the workers run tasks with."""
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, **env, "PYTHONPATH": str(ROOT)}
    with ExitStack() as stack:
        procs = [_start(["scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"], env,
                        folder / "scheduler.log")]
        stack.callback(lambda: [stop_process(p) for p in reversed(procs)])
        for i in range(workers):  # --nthreads 1: one unit at a time per worker process
            procs.append(_start(["worker", address, "--nworkers", "1", "--nthreads", "1", "--no-dashboard",
                                 "--host", "127.0.0.1", "--local-directory", str(folder / f"worker-{i}")], env,
                                folder / f"worker-{i}.log"))
        from distributed import Client

        def ready() -> bool:
            if any(p.poll() is not None for p in procs):
                raise RuntimeError(f"a dask process exited; logs in {folder}")
            try:
                with Client(address, timeout=5) as client:
                    return len(client.scheduler_info()["workers"]) == workers
            except OSError:
                return False

        wait_until(ready, 120, "dask cluster", interval=1)
        yield address
