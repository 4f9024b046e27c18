"""Source cards: how to read one corpus into the canonical Episode.

Everything dataset-specific (keys, conventions, rates, per-pipeline thresholds)
lives in a YAML card validated by these models; the pipelines read only cards.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from datasets_cards.constants import PROJECT_ROOT

SourceFormat = Literal["rlds", "lerobot", "hdf5"]
PipelineName = Literal["gaze", "pixel", "future", "la"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CameraSpec(_Strict):
    key: str  # feature key in the source, e.g. "observation/exterior_image_1_left"
    view: str = "exterior"  # exterior | wrist | ego: lets pipelines pick views without names


class StateSpec(_Strict):
    """Where the arm state lives. Several keys are concatenated in order."""

    keys: list[str]  # e.g. ["observation/cartesian_position"]
    dims: list[int] | None = None  # indices kept after concatenation (None = all)
    names: list[str] = Field(default_factory=list)  # human names of the kept dims, e.g. x,y,z,roll,pitch,yaw
    frame: str = "base"  # frame the Cartesian part is expressed in


class GripperSpec(_Strict):
    """The gripper channel and how to normalise it to 0 = open, 1 = closed."""

    key: str  # e.g. "observation/gripper_position"
    index: int | None = None  # index into the key's vector, None for a scalar
    open_value: float  # raw value meaning fully open
    closed_value: float  # raw value meaning fully closed
    source: Literal["state", "action"] = "state"  # LIBERO/CALVIN only log the commanded ±1 action

    @model_validator(mode="after")
    def _distinct(self) -> GripperSpec:
        if self.open_value == self.closed_value:
            raise ValueError(f"gripper open_value and closed_value are both {self.open_value}")
        return self

    def normalise(self, raw):
        """Raw values → [0, 1] with 0 = open, 1 = closed (clipped)."""
        import numpy as np

        scaled = (np.asarray(raw, dtype=np.float32) - self.open_value) / (self.closed_value - self.open_value)
        return np.clip(scaled, 0.0, 1.0)


class ActionSpec(_Strict):
    keys: list[str]  # concatenated in order, e.g. ["action"] or ["action/world_vector", ...]
    names: list[str] = Field(default_factory=list)  # layout, one name per dim
    space: str = "ee_velocity"  # ee_velocity | ee_delta | ee_absolute | joint_velocity | joint_absolute


class KeyframeParams(_Strict):
    """LA4VLA Appendix 7.1. Defaults are tuned on the sample (see README)."""

    savgol_window: int = 9  # frames; odd, > savgol_order
    savgol_order: int = 2
    threshold_quantile: float = 0.25  # adaptive threshold: this quantile of motion magnitude ...
    threshold_scale: float = 1.0  # ... times this factor
    window: int = 5  # frames in the proportion window (odd)
    min_static_proportion: float = 0.6  # share of the window that must be low-motion
    min_static_frames: int = 3  # shorter merged intervals are dropped
    gripper_threshold: float = 0.5  # on the normalised gripper channel
    gripper_window: int = 3  # frames on each side
    gripper_min_separation: int = 5  # frames; closer transitions are merged

    @field_validator("savgol_window", "window")
    @classmethod
    def _odd(cls, v: int, info) -> int:
        if v < 3 or v % 2 == 0:
            raise ValueError(f"{info.field_name} must be an odd number ≥ 3, got {v}")
        return v


class LaParams(_Strict):
    keyframes: KeyframeParams = KeyframeParams()
    segmenter: Literal["kinematic", "vlm"] = "kinematic"
    # VLM request: frames sampled at this rate and size (LA4VLA samples a few fps, small frames)
    vlm_fps: float = 2.0
    vlm_frame_size: tuple[int, int] = (320, 180)  # width, height
    min_segment_frames: int = 3
    quality_keep: float = 2.0  # keep verified segments with mean quality ≥ this (paper: ≥ 2)
    extra: dict[str, Any] = Field(default_factory=dict)  # segmenter-specific knobs


class GazeParams(_Strict):
    box_threshold: float = 0.3  # Grounding DINO `threshold`
    text_threshold: float = 0.25
    margin: float = 0.15  # crop margin, fraction of the box size on each side
    min_crop: int = 64  # pixels, crops are at least this wide and tall
    square: bool = False  # pad the crop to a square
    phase_aware: bool = False  # destination after the grasp (ReconVLA CALVIN script)
    phrase_extractor: Literal["rules", "llm"] = "rules"
    model: str = "IDEA-Research/grounding-dino-tiny"
    batch_size: int = 16
    extra: dict[str, Any] = Field(default_factory=dict)


class PixelParams(_Strict):
    box_enlarge: float = 1.5  # gripper box → region proposal scale
    box_threshold: float = 0.3
    text_threshold: float = 0.25
    sam_model: str = "facebook/sam2.1-hiera-tiny"
    detector_model: str = "IDEA-Research/grounding-dino-tiny"
    extra: dict[str, Any] = Field(default_factory=dict)


class FutureParams(_Strict):
    horizon: int = 16  # DIAL: target of step t is the feature of step t+H
    model: str = "google/siglip2-base-patch16-224"
    batch_size: int = 64
    extra: dict[str, Any] = Field(default_factory=dict)


class PipelineParams(_Strict):
    la: LaParams = LaParams()
    gaze: GazeParams = GazeParams()
    pixel: PixelParams = PixelParams()
    future: FutureParams = FutureParams()


class SourceCard(_Strict):
    """One corpus. See datasets_cards/sources/*.yaml."""

    name: str
    description: str
    format: SourceFormat
    location: str  # local path (relative = to the project root) or an fsspec URL (gs://...)
    homepage: str = ""
    license: str = ""
    split: str = "train"
    fps: float
    instruction_key: str  # e.g. "language_instruction"; "episode_metadata/..." for episode-level
    cameras: dict[str, CameraSpec]  # our camera name → where it lives
    state: StateSpec
    gripper: GripperSpec | None = None  # None for human video (EgoDex): the Episode gets zeros
    action: ActionSpec
    pipelines: list[PipelineName]  # outputs this corpus is used for by default
    params: PipelineParams = PipelineParams()
    episode_id_key: str | None = None  # e.g. "episode_metadata/file_path"; None = reader's index
    reader_options: dict[str, Any] = Field(default_factory=dict)  # format-specific extras

    @field_validator("fps")
    @classmethod
    def _positive(cls, v: float) -> float:
        if v <= 0:
            raise ValueError(f"fps must be positive, got {v}")
        return v

    @field_validator("cameras")
    @classmethod
    def _some_camera(cls, v: dict[str, CameraSpec]) -> dict[str, CameraSpec]:
        if not v:
            raise ValueError("cameras must name at least one camera")
        return v

    def resolve_location(self, override: str | None = None) -> str:
        """Absolute path or URL of the data; relative card paths resolve against the project root."""
        location = override or self.location
        if "://" in location or Path(location).is_absolute():
            return location
        return str(PROJECT_ROOT / location)

    def cameras_with_view(self, view: str) -> list[str]:
        return [name for name, spec in self.cameras.items() if spec.view == view]
