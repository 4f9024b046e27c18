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
    """LA4VLA Appendix 7.1 (the paper's numbers are lost from our copy; these are ours).

    Windows are counted in frames at `reference_fps` and rescaled to a source's
    own rate (see annotators.keyframes.frames_at), so one set of defaults means
    the same durations on DROID (15 Hz) and on a 5 or 30 Hz corpus.
    Defaults were tuned on two generated samples that are not committed (seeds 1
    and 2, 36 episodes each) and are reported on the committed sample (seed 0),
    which they never saw (benchmarks/la_fidelity.py explains how to repeat it).
    """

    reference_fps: float = 15.0  # rate the frame counts below are expressed at (DROID)
    savgol_window: int = 11  # frames (~0.7 s at 15 Hz); odd, > savgol_order
    savgol_order: int = 3  # cubic keeps the sharp start and end of a pause
    # Edge handling of the filter. "mirror" reflects the signal at the episode's ends; the
    # default "interp" extrapolates the polynomial fitted to the last window, which carries
    # the preceding motion into a short pause that ends the recording.
    savgol_mode: Literal["mirror", "interp", "nearest", "constant", "wrap"] = "mirror"
    position_dims: int = 3  # the first arm-state dims are Cartesian position, the rest angles (rad)
    position_weight: float = 1.0  # weight of each position dim in the motion magnitude ...
    rotation_weight: float = 0.5  # ... and of each rotation dim (three of them, mostly still, would dilute the rest)
    # Normalisation never divides by less than these speeds, so sensor noise on a
    # dim that does not move is not stretched to full scale.
    position_floor: float = 0.1  # m/s
    rotation_floor: float = 0.3  # rad/s (~17°/s)
    threshold_quantile: float = 0.7  # adaptive threshold: this quantile of motion magnitude ...
    threshold_scale: float = 0.3  # ... times this factor (higher counts slow approaches as static)
    rest_quantile: float = 0.1  # the resting level of motion magnitude: this low quantile ...
    rest_scale: float = 3.0  # ... times this is the lowest threshold (0 = the adaptive one alone)
    window: int = 9  # frames in the proportion window (odd; 0.6 s at 15 Hz)
    min_static_proportion: float = 0.5  # share of the window that must be low-motion
    merge_gap: int = 3  # static runs this many frames apart or closer are one interval (noise spikes)
    min_static_frames: int = 2  # shorter merged intervals are dropped
    gripper_minmax: bool = True  # min-max normalise the gripper per episode first (as the paper)
    # Low, because after normalisation a real grasp (fingers stopped by the object at ~0.4-0.6
    # of their travel) that follows a missed, fully closed one only reaches ~0.4-0.6.
    gripper_threshold: float = 0.2
    gripper_window: int = 3  # frames on each side
    gripper_min_separation: int = 5  # frames; closer transitions are merged
    gripper_min_range: float = 0.2  # a gripper that moves less than this (raw 0-1) has no transitions

    @field_validator("savgol_window", "window")
    @classmethod
    def _odd(cls, v: int, info) -> int:
        if v < 3 or v % 2 == 0:
            raise ValueError(f"{info.field_name} must be an odd number ≥ 3, got {v}")
        return v

    @model_validator(mode="after")
    def _order_fits(self) -> KeyframeParams:
        if self.savgol_order >= self.savgol_window:
            raise ValueError(f"savgol_order ({self.savgol_order}) must be < savgol_window ({self.savgol_window})")
        if self.reference_fps <= 0:
            raise ValueError(f"reference_fps must be positive, got {self.reference_fps}")
        return self


class KinematicParams(_Strict):
    """Thresholds of the kinematic segmenter (annotators/segments/kinematic.py).

    Speeds are physical (m/s, rad/s) and durations in seconds, so they mean the
    same on any source rate; the end-effector position is in the base frame.
    """

    smoothing_s: float = 0.4  # Savitzky–Golay window for velocities (order 2)
    static_speed: float = 0.02  # m/s; slower translation counts as standing still ...
    static_rotation_speed: float = 0.1  # ... if rotation is slower than this too (rad/s)
    rotation_lever: float = 0.1  # m; rotation dominates when |ω| × lever > translational speed
    vertical_ratio: float = 1.0  # vertical when |vz| ≥ this × horizontal speed
    gripper_smoothing_s: float = 0.2  # window of the gripper rate (the gripper signal is clean; keep edges sharp)
    gripper_rate: float = 0.3  # 1/s on the 0-1 gripper; faster change = grasp (closing) / place (opening)
    split_prominence: float = 0.02  # m/s; a speed dip this deep inside a motion run starts a new segment
    # Gripper ≥ this = closed = HOLDING (an object stops the fingers part-way: a 3-5 cm object
    # in an 8.5 cm gripper reads 0.4-0.65), unless contact_closed_level says it closed on nothing.
    holding_threshold: float = 0.25
    # Gripper ≥ this means it closed on nothing (a parallel gripper shuts fully when empty):
    # motion near the table then counts as contact (push/pull/press). None: closed = HOLDING.
    contact_closed_level: float | None = 0.9
    contact_band_m: float = 0.03  # contact only within this height above the episode's lowest point
    tool_axis_share: float = 0.7  # rotation about the tool z axis ≥ this share = wrist_rotate / rotate
    euler: str = "xyz"  # scipy convention of the orientation dims (DROID: extrinsic xyz)
    wait_min_s: float = 0.8  # a pause at least this long is `wait`; shorter ones join a neighbour
    min_segment_s: float = 0.3  # shorter runs are absorbed by a neighbour
    direction_share: float = 0.5  # axes with ≥ this share of the largest displacement are named
    min_direction_m: float = 0.01  # ... and only when they moved at least this far


class LaParams(_Strict):
    keyframes: KeyframeParams = KeyframeParams()
    kinematic: KinematicParams = KinematicParams()
    segmenter: Literal["kinematic", "vlm"] = "kinematic"
    # VLM request: frames sampled at this rate and size (LA4VLA samples a few fps, small frames)
    vlm_fps: float = 2.0
    vlm_frame_size: tuple[int, int] = (320, 180)  # width, height
    min_segment_frames: int = 3
    quality_keep: float = 2.0  # keep verified segments with mean quality ≥ this (paper: ≥ 2)
    extra: dict[str, Any] = Field(default_factory=dict)  # segmenter-specific knobs


class GazeParams(_Strict):
    """ReconVLA gaze crops (reconvla.txt §3.3; pipelines/gaze, annotators/gaze.py)."""

    box_threshold: float = 0.3  # Grounding DINO `threshold`: minimum box confidence
    text_threshold: float = 0.25  # Grounding DINO `text_threshold`: minimum score of a matched phrase token
    margin: float = 0.15  # crop margin, fraction of the box size on each side
    min_crop: int = 64  # pixels, crops are at least this wide and tall
    square: bool = False  # square crop window, zero-padded to a square where the image clips it
    phase_aware: bool = False  # destination after the grasp (ReconVLA CALVIN script)
    phrase_extractor: Literal["rules", "llm"] = "rules"
    model: str = "IDEA-Research/grounding-dino-tiny"
    batch_size: int = 16
    detector: str = "transformers"  # detection backend: transformers | ultralytics (official extra)
    max_detections: int = 10  # boxes kept per frame (best first) before the best is chosen
    low_score: float = 0.35  # detected boxes scoring below this are kept but flagged low_score
    # Temporal consistency: a box that overlaps its neighbours less than jump_iou AND whose
    # centre moves faster than max_centre_speed (image diagonals per second) jumps.
    jump_iou: float = 0.1
    max_centre_speed: float = 1.0
    consistency_neighbours: int = 2  # detections on each side a box is compared with
    max_gap_s: float = 0.5  # gaps between reliable boxes up to this long are interpolated, longer ones flagged
    grasp_threshold: float = 0.5  # phase_aware: gripper ≥ this (0 open, 1 closed) = holding → destination
    jpeg_quality: int = 90  # image and crop JPEG quality
    cameras: list[str] = Field(default_factory=list)  # cameras to annotate; empty = every exterior camera
    extra: dict[str, Any] = Field(default_factory=dict)

    @field_validator("box_threshold", "text_threshold", "low_score", "jump_iou", "grasp_threshold")
    @classmethod
    def _unit_interval(cls, v: float, info) -> float:
        if not 0.0 <= v <= 1.0:
            raise ValueError(f"{info.field_name} must lie in [0, 1], got {v}")
        return v

    @field_validator("batch_size", "max_detections", "min_crop", "consistency_neighbours", "jpeg_quality")
    @classmethod
    def _positive_int(cls, v: int, info) -> int:
        if v < 1:
            raise ValueError(f"{info.field_name} must be ≥ 1, got {v}")
        return v


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
