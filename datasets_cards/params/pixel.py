"""Parameters of the pixel pipeline (PixelVLA §4.2; pipelines/pixel, annotators/pixel)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from datasets_cards.params.base import PIPELINE_PARAMS, Params


@PIPELINE_PARAMS.register("pixel")
class PixelParams(Params):
    """Pixel-160K: first gripper-close frame → gripper proposal → target mask → visual prompts."""

    camera: str = ""  # the one third-person camera; empty = the card's first exterior camera
    # First gripper-close frame G (annotators/gripper.py): the normalised gripper rising at
    # least `close_rise` above its open level for `min_close_frames` frames (a gripper closed on an
    # object reads anywhere from ~0.3 to 1, so a close is a rise, not a level; shorter runs are noise).
    close_rise: float = 0.15
    min_close_frames: int = 2
    # Gripper track (SAM 2 video over the first-close frames of all episodes, in dataset order).
    gripper_phrase: str = "robot gripper."  # Grounding DINO prompt that seeds and re-seeds the track
    sam_model: str = "facebook/sam2.1-hiera-tiny"  # SAM 2 checkpoint: video tracker and box-prompted masks
    segmenter: str = "transformers"  # mask backend: transformers (SamModel / Sam2Model) | stub
    reseed_min_score: float = 0.5  # SAM 2 object-presence probability under which the track is lost
    reseed_area_ratio: float = 4.0  # mask area growing or shrinking by more than this between frames = lost
    track_checkpoint_every: int = 256  # frames between checkpoints of the tracking pass (bounded state)
    # Cross-check with the end effector projected into the image (fit per camera setup, RANSAC).
    projection_min_episodes: int = 20  # fewer confident masks than this: no projection (a 3×4 camera has 11 unknowns)
    projection_tolerance: float = 0.12  # fraction of the image diagonal a mask centroid may sit off the projection
    # Region proposal: the gripper mask's tightest box scaled about its centre by `proposal_scale`
    # (a scale, not pixels: the gripper and the object it closes on shrink alike with distance).
    proposal_scale: float = 2.0
    # Target.
    phrase_extractor: str = "rules"  # rules | llm (annotators.phrases.PHRASE_EXTRACTORS)
    detector: str = "transformers"  # Grounding DINO backend: transformers | ultralytics | stub | centre (offline dry runs)
    detector_model: str = "IDEA-Research/grounding-dino-tiny"  # Grounding DINO weights: hub id or local folder
    box_threshold: float = 0.3
    text_threshold: float = 0.25
    batch_size: int = 16  # images per detector / SAM forward pass
    # Mask filters (a mask failing one quarantines the episode with that reason).
    min_mask_pixels: int = 30
    max_mask_of_proposal: float = 0.95  # fraction of the proposal's area: more = the mask is the background
    max_mask_of_image: float = 0.5
    min_mask_inside_proposal: float = 0.5  # fraction of the mask's pixels that must lie inside the proposal
    # Visual prompts, drawn with a generator seeded from the episode id (re-runs are byte-identical).
    num_points: int = 8
    num_lines: int = 3
    # The whole episode: propagate the target mask from G forward and backward with SAM 2 video.
    keep_frames: Literal["episode", "first_close"] = "episode"
    lost_min_score: float = 0.5  # object-presence probability under which a propagated frame is object_lost
    jpeg_quality: int = 90  # image JPEG quality
    extra: dict[str, Any] = Field(default_factory=dict)  # extractor settings, e.g. llm: {model, base_url}

    @field_validator("close_rise", "reseed_min_score", "projection_tolerance", "box_threshold", "text_threshold",
                     "max_mask_of_proposal", "max_mask_of_image", "min_mask_inside_proposal", "lost_min_score")
    @classmethod
    def _unit_interval(cls, v: float, info) -> float:
        if not 0.0 <= v <= 1.0:
            raise ValueError(f"{info.field_name} must lie in [0, 1], got {v}")
        return v

    @field_validator("min_close_frames", "track_checkpoint_every", "projection_min_episodes", "batch_size",
                     "min_mask_pixels", "num_points", "num_lines", "jpeg_quality")
    @classmethod
    def _positive_int(cls, v: int, info) -> int:
        if v < 1:
            raise ValueError(f"{info.field_name} must be ≥ 1, got {v}")
        return v

    @field_validator("close_rise")
    @classmethod
    def _positive(cls, v: float, info) -> float:
        if v <= 0:
            raise ValueError(f"{info.field_name} must be > 0 (every frame would be a close), got {v}")
        return v

    @field_validator("proposal_scale", "reseed_area_ratio")
    @classmethod
    def _at_least_one(cls, v: float, info) -> float:
        if v < 1.0:
            raise ValueError(f"{info.field_name} must be ≥ 1, got {v}")
        return v
