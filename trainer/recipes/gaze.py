"""The gaze recipe: action prediction with a gaze-reconstruction auxiliary loss (see trainer/models.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import numpy as np
import torch

from trainer.collate import CollateSpec, to_device
from trainer.models import GazePolicy
from trainer.recipes import RECIPES

if TYPE_CHECKING:
    from trainer.train import TrainConfig


@RECIPES.register("gaze")
class GazeRecipe:
    card = "gaze"
    holdout_column = "episode_id"
    columns: ClassVar[list[str]] = ["episode_id", "instruction", "image", "crop", "state", "gripper", "action"]

    def __init__(self, cfg: TrainConfig, source: str):
        self.cfg = cfg
        m = cfg.model
        self.spec = CollateSpec(image_size=(m.image_size, m.image_size), image_sizes={"crop": (m.crop_size, m.crop_size)},
                                byte_columns={"instruction": m.max_text_bytes})

    def build(self, batch):
        model = GazePolicy(self.cfg.model, batch["state"].shape[-1] + 1, batch["action"].shape[-1])
        model.register_buffer("scale", batch["action"].std(0).clamp(min=1e-3))
        return model

    def losses(self, model, batch):
        state = torch.cat([batch["state"], batch["gripper"][:, None]], -1)
        action, image_tokens = model(batch["image"], batch["instruction"], batch["instruction_mask"], state)
        action_loss = ((action.float() - batch["action"] / model.scale) ** 2).mean()
        valid = batch.get("crop_valid", torch.ones(len(state), dtype=torch.bool, device=state.device)).float()
        target = model.crop_patches(batch["crop"])
        recon = model.recon.loss(target, image_tokens, torch.zeros(image_tokens.shape[:2], dtype=torch.bool,
                                 device=state.device), valid[:, None].expand(-1, target.shape[1]))
        return action_loss, recon

    def loss(self, model, batch):
        action_loss, recon = self.losses(model, batch)
        return action_loss + self.cfg.recon_weight * recon

    @torch.no_grad()
    def evaluate(self, model, batches, device) -> dict[str, float]:
        totals, n = np.zeros(2), 0
        for batch in batches:
            a, r = self.losses(model, to_device(batch, device))
            totals += [a.item(), r.item()]
            n += 1
        if n == 0:
            return {}  # no held-out episode: say nothing rather than report a loss of 0
        return {"action_loss": totals[0] / n, "recon_loss": totals[1] / n, "batches": n}
