"""The Episode's state and actions placed in the card's layout (params.future.layout), with validity masks.

DIAL (§4.1.1) mixes embodiments in one vector: the dims both share (wrist poses) at the
same place, the rest padded. The card says what goes where; this module only follows it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from annotators.kinematics import pose_from_state
from annotators.kinematics.pose import PoseError, pose_to_rot6d
from datasets_cards import CardError, Episode, EpisodeError, SourceCard
from datasets_cards.params.future import LayoutParams


@dataclass(frozen=True)
class Placed:
    """T×W state and actions in the layout, and which of the W dims each holds (1) or pads (0)."""

    state: np.ndarray  # float32 T×W
    state_valid: np.ndarray  # uint8 W
    actions: np.ndarray  # float32 T×W'
    action_valid: np.ndarray  # uint8 W'


def place(values: np.ndarray, slots: list[int], width: int, what: str, card: str) -> tuple[np.ndarray, np.ndarray]:
    """T×K values → (T×width with value k at slots[k], zeros elsewhere; the validity mask). width 0: as they are."""
    values = np.asarray(values, dtype=np.float32)
    if width == 0:
        return values, np.ones(values.shape[1], np.uint8)
    if values.shape[1] != len(slots):
        raise CardError(f"source {card!r}: params.future.layout.{what}_slots has {len(slots)} indices, the episode "
                        f"has {values.shape[1]} {what} values; give one index per value")
    placed = np.zeros((len(values), width), np.float32)
    placed[:, slots] = values
    valid = np.zeros(width, np.uint8)
    valid[slots] = 1
    return placed, valid


class LayoutMapper:
    """Episode → Placed, following one card's layout."""

    def __init__(self, layout: LayoutParams, card: SourceCard):
        self.layout, self.card = layout, card
        self.pose: Callable[[np.ndarray], np.ndarray] | None = None
        if layout.state == "pose_rot6d":
            if card.state.rotation == "none":  # a constant identity rotation would be stored as valid data
                raise CardError(f"card {card.name!r}: layout.state pose_rot6d needs a rotation in the state, but "
                                "state.rotation is none; use layout.state raw or declare the rotation")
            self.pose = pose_from_state(card.state, card.name)  # CardError up front for a joint card without URDF

    def state_values(self, episode: Episode) -> np.ndarray:
        state = episode.arm_state
        if self.pose is not None:
            try:
                state = pose_to_rot6d(self.pose(state))
            except PoseError as e:
                raise EpisodeError(f"state is not the declared pose: {e}", episode.episode_id) from e
        if self.layout.gripper:
            state = np.concatenate([state, np.asarray(episode.gripper)[:, None]], axis=1)
        return np.asarray(state, np.float32)

    def __call__(self, episode: Episode) -> Placed:
        layout, name = self.layout, self.card.name
        state, state_valid = place(self.state_values(episode), layout.state_slots, layout.width, "state", name)
        if layout.action == "next_state":
            actions = np.concatenate([state[1:], state[-1:]], axis=0)  # a(t) = s(t+1); the last step holds
            action_valid = state_valid
            if layout.action_slots and layout.action_slots != layout.state_slots:
                actions, action_valid = place(self.state_values(episode), layout.action_slots, layout.width,
                                              "action", name)
                actions = np.concatenate([actions[1:], actions[-1:]], axis=0)
        else:
            actions, action_valid = place(episode.actions, layout.action_slots, layout.width, "action", name)
        return Placed(state, state_valid, actions, action_valid)
