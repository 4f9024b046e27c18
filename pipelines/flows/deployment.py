"""The flow prefect.yaml deploys: the annotate flow's parameters plus the task runner its units run on.

A flow's task runner is fixed before its run starts, so it cannot be one of its own parameters: this flow
takes `task_runner` (threads | dask | ray), `address` (the Dask scheduler or Ray cluster) and `workers`
(threads) and runs `annotate` as a subflow on that runner. It carries the name `annotate`, so deployments
stay `annotate/<name>`; both runs are named `<pipeline>-<source>`, the subflow under its parent.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from datasets_cards.manifest import Manifest
from pipelines.flows.annotate import (
    DEFAULT_RETRIES,
    run_annotate,
    run_name,
)
from pipelines.flows.arguments import RunArgumentError


@flow(name="annotate", flow_run_name=run_name)
def annotate_deployment(
    source: str = "sample-droid",
    pipeline: str = "la",
    out: str = "outputs",
    limit: int | None = None,
    episodes_per_shard: int | None = None,  # None: about a GPU-minute per unit (pipelines/units.py)
    location: str | None = None,
    options: dict[str, Any] | None = None,
    overwrite: bool = False,
    retries: int = DEFAULT_RETRIES,
    task_runner: str = "threads",
    address: str | None = None,
    workers: int | None = None,
) -> Manifest:
    """Annotate `source` with `pipeline` into OUT/<pipeline>/<source>/, units on `task_runner` (see annotate)."""
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise RunArgumentError(f"workers must be an integer >= 1, got {workers!r}")
    return run_annotate(task_runner, address, workers, source=source, pipeline=pipeline, out=out, limit=limit,
                        episodes_per_shard=episodes_per_shard, location=location, options=options,
                        overwrite=overwrite, retries=retries)
