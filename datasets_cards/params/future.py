"""Parameters of the future pipeline (DIAL §3.2). The pipeline itself is not built yet."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from datasets_cards.params.base import PIPELINE_PARAMS, Params


@PIPELINE_PARAMS.register("future")
class FutureParams(Params):
    horizon: int = 16  # DIAL: target of step t is the feature of step t+H
    model: str = "google/siglip2-base-patch16-224"
    batch_size: int = 64
    extra: dict[str, Any] = Field(default_factory=dict)
