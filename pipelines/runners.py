"""Task runners by name: threads (default), dask or ray given a cluster address."""

from __future__ import annotations

from prefect.task_runners import ThreadPoolTaskRunner


def make_task_runner(kind: str = "threads", address: str | None = None, max_workers: int | None = None):
    """`threads` runs units in local threads; `dask`/`ray` need the matching extra installed."""
    if kind == "threads":
        return ThreadPoolTaskRunner(max_workers=max_workers)
    if kind == "dask":
        try:
            from prefect_dask import DaskTaskRunner
        except ImportError as e:
            raise ImportError("the dask task runner needs `pip install -e '.[dask]'`") from e
        return DaskTaskRunner(address=address) if address else DaskTaskRunner()
    if kind == "ray":
        try:
            from prefect_ray import RayTaskRunner
        except ImportError as e:
            raise ImportError("the ray task runner needs `pip install -e '.[ray]'`") from e
        return RayTaskRunner(address=address) if address else RayTaskRunner()
    raise ValueError(f"unknown task runner {kind!r}; choose threads, dask or ray")
