"""Parameters of the future pipeline (DIAL §3.2–3.4, §4.1): frozen vision features of every frame, stored once.

The target of step t is the feature of step t+H; H is chosen at training time
(trainer/recipes/future.py), so nothing here fixes it. What is fixed here: the encoder,
what it sees of a frame (`view`, DIAL's crops), how many tokens are kept (`pool`), which
frames and cameras are stored (`stride`, `cameras`), extra augmented views, and where
the source's state and actions go in the vectors the rows carry (`layout`).

The suite's shared layout (width 20), which the droid and egodex cards use so robot and
human rows train together (DIAL §4.1.1: shared end-effector dims, the rest padded and
masked):

    0–2 right wrist xyz · 3–8 right wrist 6-D rotation · 9–11 left wrist xyz ·
    12–17 left wrist 6-D rotation · 18 right gripper · 19 left gripper

A 6-D rotation is the first two columns of the rotation matrix, column after column
(Zhou et al. 2019): [r00, r10, r20, r01, r11, r21]. A single-arm robot fills the right
wrist and the right gripper.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from datasets_cards.params.base import PIPELINE_PARAMS, Params


class ViewParams(Params):
    """What the encoder sees of a frame (annotators/vision/views.py): a band, a centre crop, a resize."""

    rows: tuple[float, float] = (0.0, 1.0)  # kept band of rows, fractions of the height (DIAL: 0.17–0.83 for 256² sources; EgoDex 0.3–1.0)
    cols: tuple[float, float] = (0.0, 1.0)  # kept band of columns, fractions of the width
    crop: float = 0.95  # then a crop keeping this fraction of each side of the band (DIAL's 0.95), centred in view 0
    size: tuple[int, int] = (224, 224)  # (H, W) the encoder gets (DIAL: 224×224 → 64 Qwen2.5-VL tokens)

    @field_validator("rows", "cols")
    @classmethod
    def _band(cls, v: tuple[float, float], info) -> tuple[float, float]:
        if not 0.0 <= v[0] < v[1] <= 1.0:
            raise ValueError(f"view.{info.field_name} must be [low, high] with 0 ≤ low < high ≤ 1, got {list(v)}")
        return v

    @field_validator("crop")
    @classmethod
    def _crop(cls, v: float) -> float:
        if not 0.0 < v <= 1.0:
            raise ValueError(f"view.crop must lie in (0, 1], got {v}")
        return v

    @field_validator("size")
    @classmethod
    def _size(cls, v: tuple[int, int]) -> tuple[int, int]:
        if min(v) < 1:
            raise ValueError(f"view.size must be positive (H, W), got {list(v)}")
        return v


class AugmentParams(Params):
    """Colour jitter of the extra views (DIAL trains with GR00T's ColorJitter; the crop place is drawn too)."""

    brightness: float = 0.3  # factor uniform in [1 − b, 1 + b]
    contrast: float = 0.4
    saturation: float = 0.5
    hue: float = 0.08  # shift uniform in [−h, h] of a turn

    @field_validator("brightness", "contrast", "saturation", "hue")
    @classmethod
    def _non_negative(cls, v: float, info) -> float:
        if v < 0 or (info.field_name == "hue" and v > 0.5):
            raise ValueError(f"augment.{info.field_name} must be ≥ 0 (hue ≤ 0.5), got {v}")
        return v


class LayoutParams(Params):
    """Where the Episode's state and actions go in the `state` and `actions` vectors of the rows."""

    width: int = 0  # length of the vectors; 0 = the Episode's own state (+ gripper) and actions, unpadded, all valid
    # What of the Episode's state is placed: "raw" = the arm state as read; "pose_rot6d" = xyz and the 6-D
    # rotation of the end-effector pose, read through the card's state.rotation (euler, quaternion, ...).
    state: Literal["raw", "pose_rot6d"] = "raw"
    gripper: bool = True  # the gripper (0 open, 1 closed) follows the state values (false: sources without one)
    state_slots: list[int] = Field(default_factory=list)  # index in the vector of each state value, in order
    # "raw" = the Episode's actions; "next_state" = the placed state of step t+1 (the last step keeps its own):
    # DIAL's rule for human data, also a way to give robots the same action space.
    action: Literal["raw", "next_state"] = "raw"
    action_slots: list[int] = Field(default_factory=list)  # index of each action value (next_state: as state_slots)

    @model_validator(mode="after")
    def _slots(self) -> LayoutParams:
        for name in ("state_slots", "action_slots"):
            slots = getattr(self, name)
            if self.width == 0 and slots:
                raise ValueError(f"layout.{name} needs layout.width > 0 (got width 0 and {len(slots)} slots)")
            if self.width and not slots and not (name == "action_slots" and self.action == "next_state"):
                raise ValueError(f"layout.width is {self.width}: give layout.{name}, one index per value")
            bad = [s for s in slots if not 0 <= s < self.width]
            if bad or len(set(slots)) != len(slots):
                raise ValueError(f"layout.{name} must be distinct indices in [0, {self.width}), got {slots}")
        return self


@PIPELINE_PARAMS.register("future")
class FutureParams(Params):
    """DIAL foresight targets (dial.txt §3.2–3.4; pipelines/future, annotators/vision)."""

    encoder: str = "qwen2_5_vl"  # a registered backend: qwen2_5_vl | siglip | dinov2 | stub (annotators.vision)
    model: str | None = None  # a local folder or a hub id found in the HF cache; None: the encoder's own default
    #                           (qwen2_5_vl: Qwen/Qwen2.5-VL-3B-Instruct, DIAL's; siglip: SigLIP 2 base; dinov2: base)
    dtype: Literal["bfloat16", "float16", "float32"] = "bfloat16"  # on CUDA; CPU runs float32. Stored: float16
    fast_attention: bool = True  # qwen2_5_vl: one attention call per layer for all windows (false: stock forward)
    batch_size: int = 128  # frames per forward pass, taken across episodes
    pool: int = 1  # average pool×pool neighbouring tokens (2: 8×8 = 64 Qwen tokens → 16, a quarter of the bytes)
    cameras: list[str] = Field(default_factory=list)  # cameras to encode; empty = the card's first exterior (or ego) camera
    stride: int = 1  # encode frames 0, s, 2s, ... and always the last one (the trainer rounds t+H down to them)
    views: int = 0  # extra augmented views per frame (random crop place + colour jitter, one draw per episode)
    view: ViewParams = Field(default_factory=ViewParams)
    augment: AugmentParams = Field(default_factory=AugmentParams)
    layout: LayoutParams = Field(default_factory=LayoutParams)
    # Frames per camera in the whole corpus, for card.md's storage projection (DROID 1.0.1: about 27 M);
    # None: the source's episode count × this run's mean episode length.
    corpus_steps: int | None = None
    extra: dict[str, Any] = Field(default_factory=dict)  # encoder-specific settings

    def model_frames_per_step(self, exterior_cameras: int) -> float:
        # each encoded camera, every `stride`-th step, once plus its augmented views
        return max(len(self.cameras), 1) * (1 + self.views) / self.stride

    @field_validator("batch_size", "pool", "stride")
    @classmethod
    def _positive(cls, v: int, info) -> int:
        if v < 1:
            raise ValueError(f"{info.field_name} must be ≥ 1, got {v}")
        return v

    @field_validator("views")
    @classmethod
    def _views(cls, v: int) -> int:
        if v < 0:
            raise ValueError(f"views must be ≥ 0, got {v}")
        return v
