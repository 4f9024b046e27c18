"""Task runners by name: threads (default), dask or ray given a cluster address."""

from __future__ import annotations

from prefect.task_runners import ThreadPoolTaskRunner

from datasets_cards.registry import Registry

# name → factory(address, max_workers) of a Prefect task runner
TASK_RUNNERS: Registry = Registry("task runner")


@TASK_RUNNERS.register("threads")
def _threads(address: str | None = None, max_workers: int | None = None):
    return ThreadPoolTaskRunner(max_workers=max_workers)


@TASK_RUNNERS.register("dask")
def _dask(address: str | None = None, max_workers: int | None = None):
    try:
        from prefect_dask import DaskTaskRunner
    except ImportError as e:
        raise ImportError("the dask task runner needs `pip install -e '.[dask]'`") from e
    return DaskTaskRunner(address=address) if address else DaskTaskRunner()


@TASK_RUNNERS.register("ray")
def _ray(address: str | None = None, max_workers: int | None = None):
    try:
        from prefect_ray import RayTaskRunner
    except ImportError as e:
        raise ImportError("the ray task runner needs `pip install -e '.[ray]'`") from e
    return RayTaskRunner(address=address) if address else RayTaskRunner()


def make_task_runner(kind: str = "threads", address: str | None = None, max_workers: int | None = None):
    """`threads` runs units in local threads; `dask`/`ray` need the matching extra installed."""
    return TASK_RUNNERS.get(kind)(address=address, max_workers=max_workers)
