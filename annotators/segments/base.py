"""The segment type and the segmenter Protocol shared by the kinematic and VLM segmenters."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from datasets_cards.registry import Registry

# LA4VLA's atomic-action vocabulary (la4vla.txt Table 2 / Appendix 7.5).
VOCABULARY: tuple[str, ...] = (
    "grasp", "place", "lift", "lower", "transport", "wrist_rotate", "reorient",
    "push", "pull", "press", "move", "rotate", "wait",
)


@dataclass(frozen=True)
class Segment:
    """One atomic segment: frames [start, end) of an episode."""

    start: int
    end: int  # exclusive
    subaction: str  # one of VOCABULARY
    instruction: str  # vision-agnostic, e.g. "lift the object upward while holding it"
    segmenter: str = "kinematic"  # kinematic | vlm | vlm_fallback
    flags: tuple[str, ...] = ()  # e.g. ("vlm_invalid_json",)

    def __post_init__(self) -> None:
        if not 0 <= self.start < self.end:
            raise ValueError(f"segment needs 0 ≤ start < end, got start={self.start}, end={self.end}")
        if self.subaction not in VOCABULARY:
            raise ValueError(f"subaction {self.subaction!r} is not in the LA vocabulary {VOCABULARY}")


@dataclass
class SegmentationInput:
    """What a segmenter sees of one episode (numpy only: annotators never read files)."""

    episode_id: str
    task: str  # original instruction
    fps: float
    arm_state: np.ndarray  # T×6 canonical pose (annotators.kinematics.pose): base-frame xyz, extrinsic xyz Euler
    gripper: np.ndarray  # T, 0 = open, 1 = closed
    state_names: Sequence[str] = ()
    keyframe_hints: Sequence[str] = ()  # "1.20s: static", "2.00s: gripper close"
    keyframes: Sequence[int] = ()  # frame indices of all keyframes
    # camera name → (view label, lazily indexable frames: frames[i] -> H×W×3 uint8)
    frames: Mapping[str, tuple[str, Sequence[np.ndarray]]] = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return int(self.arm_state.shape[0])


class Segmenter(Protocol):
    """Split an episode into a contiguous cover of atomic segments."""

    name: str

    def segment(self, item: SegmentationInput) -> list[Segment]: ...


# Segmenters by name. Each entry is a factory `(kinematic, *, cache=None, **settings) -> Segmenter`: the
# kinematic segmenter the pipeline built is the cross-check and the fallback of the others.
SEGMENTERS: Registry = Registry("segmenter", builtins={
    "kinematic": "annotators.segments.kinematic",
    "vlm": "annotators.segments.vlm.segmenter",
})
