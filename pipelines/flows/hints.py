"""Error hints in the words of the interface that started the run: the command line or a deployment.

`annotate --out X` on the command line is `prefect deployment run ... --param out=X` for a deployment.
"""

from __future__ import annotations

import json
from typing import Any

import prefect.runtime.deployment


def in_deployment() -> bool:
    """True inside a flow run started from a deployment (its subflows included)."""
    try:
        return prefect.runtime.deployment.id is not None
    except Exception:  # noqa: BLE001  no API to ask (a flow called outside Prefect): not a deployment
        return False


def flag(name: str, value: Any = None) -> str:
    """How the user sets parameter `name`: `--out X` / `--overwrite`, or `--param out=X` / `--param overwrite=true`."""
    if in_deployment():
        shown = json.dumps(value) if isinstance(value, bool) else "…" if value is None else value
        return f"--param {name}={shown}"
    option = f"--{name.replace('_', '-')}"
    return option if value is None or isinstance(value, bool) else f"{option} {value}"


def sample_hint(pipeline: str, sample: str) -> str:
    """Where to try the pipeline on the embedded sample instead: prefect.yaml names its deployments
    `<pipeline>-<source>` (tests/pipelines/test_prefect_deployment.py holds it to that)."""
    if in_deployment():
        return f"the deployment annotate/{pipeline}-{sample}"
    return f"`annotate {sample} --pipeline {pipeline}`"
