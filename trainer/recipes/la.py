"""The la recipe: instruction bytes + state at a random step t → the next `horizon` actions.

Position dims are taken relative to the state at t when the source's actions are absolute;
a flow-matching head predicts the chunk, vision masked. Eval: LA4VLA Appendix 9 metrics on
the held-out segments, with the paired state and with a conflicting state (the state of a
held-out segment instructed in the opposite direction, §5.7).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch

from datasets_cards import load_source_card
from trainer.collate import CollateSpec, to_device
from trainer.metrics import instruction_following_metrics
from trainer.models import LaPolicy
from trainer.recipes import RECIPES

if TYPE_CHECKING:
    from trainer.train import TrainConfig

# Instruction words → base-frame unit vectors (+x forward, +y left, +z up; la4vla App. 7.3).
DIRECTION_WORDS = {
    "forward": (1, 0, 0), "backward": (-1, 0, 0), "left": (0, 1, 0), "right": (0, -1, 0),
    "up": (0, 0, 1), "upward": (0, 0, 1), "down": (0, 0, -1), "downward": (0, 0, -1),
}



def first_direction(instruction: str) -> str | None:
    for word in instruction.lower().replace(",", " ").split():
        if word in DIRECTION_WORDS:
            return word.removesuffix("ward") if word in ("upward", "downward") else word
    return None


@RECIPES.register("la")
class LaRecipe:
    card = "la"
    holdout_column = "source_episode_id"
    columns: ClassVar[list[str]] = ["source_episode_id", "instruction", "state", "gripper", "actions", "state_names", "action_names"]

    def __init__(self, cfg: TrainConfig, source: str):
        self.cfg = cfg
        space = cfg.action_space if cfg.action_space != "auto" else load_source_card(source).action.space
        self.absolute = space.endswith("absolute")
        self.spec = CollateSpec(byte_columns={"instruction": cfg.model.max_text_bytes})

    def build(self, batch: dict[str, Any]) -> torch.nn.Module:
        state_dim = batch["state"].shape[-1] + 1
        model = LaPolicy(self.cfg.model, state_dim, batch["actions"].shape[-1])
        # Which action dims are positions of state dims (subtracted when actions are absolute).
        names, snames = batch["action_names"][0], batch["state_names"][0]
        index = [snames.index(n) if (self.absolute and n in snames) else -1 for n in names]
        model.register_buffer("state_index", torch.tensor(index))
        trans = [names.index(n) for n in ("x", "y", "z")] if {"x", "y", "z"} <= set(names) else [0, 1, 2]
        model.register_buffer("translation", torch.tensor(trans))
        chunk, mask = self.chunks(model, batch, torch.zeros(len(batch["state"]), dtype=torch.long))
        std = chunk[mask].std(0) if mask.sum() > 1 else torch.ones(chunk.shape[-1])
        model.register_buffer("scale", std.clamp(min=1e-3))  # per-dim normaliser of the chunk
        return model

    def chunks(self, model, batch, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Action chunk from step t of every row (relative to state at t where absolute) and its mask."""
        actions, lengths = batch["actions"], batch["actions_mask"].sum(1)
        steps = t[:, None] + torch.arange(self.cfg.model.horizon, device=t.device)[None]
        mask = steps < lengths[:, None]
        idx = torch.minimum(steps, (lengths - 1)[:, None])
        chunk = torch.gather(actions, 1, idx[..., None].expand(-1, -1, actions.shape[-1]))
        state_t = batch["state"][torch.arange(len(t)), t]
        rel = model.state_index >= 0
        offset = torch.zeros_like(chunk[:, 0])
        offset[:, rel] = state_t[:, model.state_index[rel]]
        return chunk - offset[:, None], mask

    def state_at(self, batch, t):
        rows = torch.arange(len(t), device=t.device)
        return torch.cat([batch["state"][rows, t], batch["gripper"][rows, t, None]], -1)

    def loss(self, model, batch) -> torch.Tensor:
        lengths = batch["actions_mask"].sum(1)
        t = (torch.rand(len(lengths), device=lengths.device) * lengths).long().clamp(max=lengths - 1)
        chunk, mask = self.chunks(model, batch, t)
        return model.loss(batch["instruction"], batch["instruction_mask"], self.state_at(batch, t), chunk / model.scale, mask)

    def displacement(self, model, chunk, mask) -> torch.Tensor:
        """Endpoint displacement (N×3) over the horizon: last relative position, or the sum of increments."""
        xyz = chunk[..., model.translation]
        if self.absolute:
            last = (mask.sum(1) - 1).clamp(min=0)
            return xyz[torch.arange(len(xyz)), last]
        return (xyz * mask[..., None]).sum(1)

    @torch.no_grad()
    def evaluate(self, model, batches, device) -> dict[str, float]:
        pred, truth, conflict, labels = [], [], [], []
        for batch in batches:
            batch = to_device(batch, device)
            keep = [i for i, s in enumerate(batch["instruction_str"]) if first_direction(s)]
            t = torch.zeros(len(batch["state"]), dtype=torch.long, device=device)
            chunk, mask = self.chunks(model, batch, t)
            state = self.state_at(batch, t)
            words = [first_direction(s) for s in batch["instruction_str"]]
            opposite = [next((j for j, w in enumerate(words) if w and w != words[i] and
                              np.dot(DIRECTION_WORDS[w], DIRECTION_WORDS[words[i]]) < 0), i) if words[i] else i
                        for i in range(len(words))]
            text, tmask = batch["instruction"], batch["instruction_mask"]
            paired = model.sample(text, tmask, state) * model.scale
            swapped = model.sample(text, tmask, state[opposite]) * model.scale
            for out, sink in ((paired, pred), (swapped, conflict)):
                sink.append(self.displacement(model, out, mask)[keep].cpu())
            truth.append(self.displacement(model, chunk, mask)[keep].cpu())
            labels += [words[i] for i in keep]
        if not labels:
            return {}  # no held-out segment with a direction word
        pred, truth, conflict = (torch.cat(x).numpy() for x in (pred, truth, conflict))
        directions = np.array([DIRECTION_WORDS[w] for w in labels], dtype=np.float64)
        paired = instruction_following_metrics(pred, truth, directions, labels)
        conf = instruction_following_metrics(conflict, truth, directions, labels)
        return {"trials": len(labels), **{f"paired/{k}": v for k, v in paired.items()},
                **{f"conflicting/{k}": v for k, v in conf.items()}}
