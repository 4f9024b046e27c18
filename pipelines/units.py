"""Work-unit size: how many episodes one unit (and one shard) holds when the run does not say.

A unit is sized to about a minute of model time on one GPU, so a cluster spreads work evenly, a lost worker
costs a minute, and shards stay a manageable size. The size is deterministic: the pipeline's output card says
how many model frames make that minute (`unit_frames`, derived in docs/scale.md), the source card how many
steps a corpus's episode has on average (`episode_steps`), and the pipeline's params how many model frames a
step costs (cameras, views, stride). Never timings: a unit size is part of the config hash, so it must come
out the same on every machine and every resume.
"""

from __future__ import annotations

from datasets_cards.output import OutputCard
from datasets_cards.params.base import Params
from datasets_cards.source import SourceCard

FALLBACK_EPISODES_PER_UNIT = 8  # a card that does not say its episode length (user cards, LeRobot datasets)
MAX_EPISODES_PER_UNIT = 1024  # short episodes (Bridge's 36 steps) still make shards a reader can page through


def default_episodes_per_unit(output: OutputCard, card: SourceCard, params: Params | None) -> int:
    """Episodes per unit for `output` from `card`: `unit_frames` ÷ (episode steps × model frames per step)."""
    if card.episode_steps is None:
        return FALLBACK_EPISODES_PER_UNIT
    per_step = params.model_frames_per_step(len(card.cameras_with_view("exterior"))) if params else 1.0
    frames_per_episode = card.episode_steps * (per_step or 1.0)  # no exterior camera: the pipeline refuses it later
    return max(1, min(MAX_EPISODES_PER_UNIT, round(output.unit_frames / frames_per_episode)))
