"""Parameters of the gaze pipeline (ReconVLA §3.3)."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from datasets_cards.params.base import PIPELINE_PARAMS, Params


@PIPELINE_PARAMS.register("gaze")
class GazeParams(Params):
    """ReconVLA gaze crops (reconvla.txt §3.3; pipelines/gaze, annotators/gaze.py)."""

    box_threshold: float = 0.3  # Grounding DINO `threshold`: minimum box confidence
    text_threshold: float = 0.25  # Grounding DINO `text_threshold`: minimum score of a matched phrase token
    margin: float = 0.15  # crop margin, fraction of the box size on each side
    min_crop: int = 64  # pixels, crops are at least this wide and tall (exactly, when box + margins is smaller)
    square: bool = False  # square crop window, zero-padded to a square where the image clips it
    phase_aware: bool = False  # destination while the gripper holds the object (ReconVLA CALVIN script)
    phrase_extractor: str = "rules"  # a registered extractor: rules | llm (annotators.phrases.PHRASE_EXTRACTORS)
    model: str = "IDEA-Research/grounding-dino-tiny"  # Grounding DINO weights: hub id (HF cache) or local folder
    batch_size: int = 16  # frames per detector forward pass
    detector: str = "transformers"  # detection backend: transformers | ultralytics (official extra) | stub (finds nothing) | centre (one central box: offline dry runs)
    max_detections: int = 10  # boxes kept per frame (best first) before the best is chosen
    low_score: float = 0.35  # detected boxes scoring below this are kept but flagged low_score
    # Temporal consistency: a box that overlaps its neighbours less than jump_iou AND whose
    # centre moves faster than max_centre_speed (image diagonals per second) jumps.
    jump_iou: float = 0.1
    max_centre_speed: float = 1.0
    consistency_neighbours: int = 2  # detections on each side a box is compared with
    max_gap_s: float = 0.5  # gaps between reliable boxes up to this long are interpolated, longer ones flagged
    # phase_aware: holding = a close of the normalised gripper (annotators/gripper.py): a rise of at least
    # close_rise above its open level for min_close_frames frames (an object stops the fingers anywhere from
    # ~0.3 to 1, so a fixed level misses wide objects), from the midpoint of the rise to the release.
    close_rise: float = 0.15
    min_close_frames: int = 2
    # A close settling at or above this (the card's fully closed) held nothing: a missed grasp keeps the
    # object phrase. Only for a measured gripper; a commanded one (card gripper.source: action) reads 1 anyway.
    empty_close: float = 0.9
    jpeg_quality: int = 90  # image and crop JPEG quality
    cameras: list[str] = Field(default_factory=list)  # cameras to annotate; empty = every exterior camera
    extra: dict[str, Any] = Field(default_factory=dict)  # extractor settings, e.g. llm: {model, base_url}

    def model_frames_per_step(self, exterior_cameras: int) -> float:
        return float(len(self.cameras) or exterior_cameras)  # every annotated camera is detected on

    @field_validator("box_threshold", "text_threshold", "low_score", "jump_iou", "empty_close")
    @classmethod
    def _unit_interval(cls, v: float, info) -> float:
        if not 0.0 <= v <= 1.0:
            raise ValueError(f"{info.field_name} must lie in [0, 1], got {v}")
        return v

    @field_validator("close_rise")
    @classmethod
    def _positive(cls, v: float, info) -> float:
        if not 0.0 < v <= 1.0:
            raise ValueError(f"{info.field_name} must lie in (0, 1], got {v}")
        return v

    @field_validator("batch_size", "max_detections", "min_crop", "consistency_neighbours", "jpeg_quality",
                     "min_close_frames")
    @classmethod
    def _positive_int(cls, v: int, info) -> int:
        if v < 1:
            raise ValueError(f"{info.field_name} must be ≥ 1, got {v}")
        return v
