"""Parameters of the la pipeline (LA4VLA §4, Appendix 7): keyframes, kinematic segmenter, VLM, review."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from datasets_cards.params.base import PIPELINE_PARAMS, Params


class KeyframeParams(Params):
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


class KinematicParams(Params):
    """Thresholds of the kinematic segmenter (annotators/segments/kinematic.py).

    Speeds are physical (m/s, rad/s) and durations in seconds, so they mean the
    same on any source rate; the end-effector position is in the base frame.
    """

    smoothing_s: float = 0.3  # Savitzky–Golay window for velocities (order 2); fitted on the fit seeds (0.4 before)
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
    wait_min_s: float = 0.8  # a pause at least this long is `wait`; shorter ones join a neighbour
    min_segment_s: float = 0.3  # shorter runs are absorbed by a neighbour
    direction_share: float = 0.5  # axes with ≥ this share of the largest displacement are named
    min_direction_m: float = 0.01  # ... and only when they moved at least this far


@PIPELINE_PARAMS.register("la")
class LaParams(Params):
    keyframes: KeyframeParams = KeyframeParams()
    kinematic: KinematicParams = KinematicParams()
    segmenter: str = "kinematic"  # a registered segmenter: kinematic | vlm (annotators.segments.SEGMENTERS)
    # VLM request: frames sampled at this rate and size (LA4VLA samples a few fps, small frames)
    vlm_fps: float = 2.0
    vlm_frame_size: tuple[int, int] = (320, 180)  # width, height
    min_segment_frames: int = 3  # shorter VLM segments merge into a neighbour (the kinematic one uses min_segment_s)
    quality_keep: float = 2.0  # keep verified segments with mean quality ≥ this (paper: ≥ 2)
    extra: dict[str, Any] = Field(default_factory=dict)  # segmenter-specific knobs
