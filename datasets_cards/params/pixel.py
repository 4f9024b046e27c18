"""Parameters of the pixel pipeline (PixelVLA §4.2). The pipeline itself is not built yet."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from datasets_cards.params.base import PIPELINE_PARAMS, Params


@PIPELINE_PARAMS.register("pixel")
class PixelParams(Params):
    box_enlarge: float = 1.5  # gripper box → region proposal scale
    box_threshold: float = 0.3
    text_threshold: float = 0.25
    sam_model: str = "facebook/sam2.1-hiera-tiny"
    detector_model: str = "IDEA-Research/grounding-dino-tiny"
    extra: dict[str, Any] = Field(default_factory=dict)
