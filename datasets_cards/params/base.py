"""What every pipeline's params class shares: strictness, run-time overrides, and the registry.

A pipeline's params live in `datasets_cards/params/<pipeline>.py` and register
themselves with `@PIPELINE_PARAMS.register("<pipeline>")`; the source card's
`params:` block has one entry per registered pipeline, and a pipeline name is
valid wherever cards name pipelines only if its params module exists.
Defaults are the tuned numbers: cards state only what differs for their corpus.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict

from datasets_cards.registry import Registry, modules_in

P = TypeVar("P", bound=BaseModel)


class Params(BaseModel):
    """Base of every params class: unknown fields are errors, values never change after construction."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def model_frames_per_step(self, exterior_cameras: int) -> float:
        """Frames the pipeline's model sees per source step (sizes work units: pipelines/units.py); one by default."""
        return 1.0


PIPELINE_PARAMS: Registry[type[Params]] = Registry("pipeline", builtins=modules_in("datasets_cards.params", exclude=("base",)))


def deep_merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """`base` with `update` laid over it: mappings merge key by key, anything else replaces."""
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def with_overrides(params: P, options: Mapping[str, Any]) -> P:
    """`params` with the run-time options that name its fields laid over it (nested fields merge), validated.

    Options that are not fields (a pipeline's own flags) are ignored here.
    """
    overrides = {k: v for k, v in options.items() if k in type(params).model_fields}
    if not overrides:
        return params
    return type(params).model_validate(deep_merge(params.model_dump(), overrides))
