"""Task runners by name: threads (default), dask or ray given a cluster address."""

from __future__ import annotations

import importlib
from collections.abc import Callable

from prefect.task_runners import ThreadPoolTaskRunner

from datasets_cards.registry import Registry

# name → factory(address, max_workers) of a Prefect task runner
TASK_RUNNERS: Registry[Callable] = Registry("task runner")


@TASK_RUNNERS.register("threads")
def _threads(address: str | None = None, max_workers: int | None = None):
    return ThreadPoolTaskRunner(max_workers=max_workers)


def _cluster_runner(extra: str, module: str, name: str) -> Callable:
    """A runner from an optional Prefect integration, with an install hint when it is missing."""

    def build(address: str | None = None, max_workers: int | None = None):
        try:
            runner = getattr(importlib.import_module(module), name)
        except ImportError as e:
            raise ImportError(f"the {extra} task runner needs `pip install -e '.[{extra}]'`") from e
        return runner(address=address) if address else runner()

    return build


TASK_RUNNERS.add("dask", _cluster_runner("dask", "prefect_dask", "DaskTaskRunner"))
TASK_RUNNERS.add("ray", _cluster_runner("ray", "prefect_ray", "RayTaskRunner"))


def make_task_runner(kind: str = "threads", address: str | None = None, max_workers: int | None = None):
    """`threads` runs units in local threads; `dask`/`ray` need the matching extra installed."""
    return TASK_RUNNERS.get(kind)(address=address, max_workers=max_workers)
