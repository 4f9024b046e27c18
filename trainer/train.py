"""The training loop, top to bottom (nanoGPT-style): config, recipes, init or resume, loop.

Recipes turn a collated batch into a loss and evaluate on held-out episodes:
- la: instruction bytes + state at a random step t → the next `horizon` actions
  (position dims relative to the state at t when the source's actions are
  absolute), flow-matching head, vision masked. Eval: LA4VLA Appendix 9 metrics
  on the held-out segments, with the paired state and with a conflicting state
  (the state of a held-out segment instructed in the opposite direction, §5.7).
- gaze: see trainer/models.py for the reconstruction target.
"""

from __future__ import annotations

import math
import os
import random
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from datasets_cards import load_output_card, load_source_card
from trainer.collate import CardCollate, CollateSpec
from trainer.data import Holdout, ShardDataset, ShardLoader
from trainer.metrics import instruction_following_metrics
from trainer.models import GazePolicy, LaPolicy, ModelConfig

CHECKPOINT = "ckpt.pt"
# Instruction words → base-frame unit vectors (+x forward, +y left, +z up; la4vla App. 7.3).
DIRECTION_WORDS = {
    "forward": (1, 0, 0), "backward": (-1, 0, 0), "left": (0, 1, 0), "right": (0, -1, 0),
    "up": (0, 0, 1), "upward": (0, 0, 1), "down": (0, 0, -1), "downward": (0, 0, -1),
}


@dataclass
class TrainConfig:
    recipe: str = "la"  # la | gaze
    data: str = ""  # output folder OUT/<pipeline>/<source> (local or fsspec URL)
    out: str = "checkpoints"
    steps: int = 200
    batch_size: int = 32
    grad_accum: int = 1
    lr: float = 3e-4
    min_lr: float = 3e-5
    warmup: int = 20
    lr_decay_steps: int = 0  # cosine reaches min_lr here; 0: `steps` (set it to stop a run early on the same schedule)
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    seed: int = 0
    num_workers: int = 4
    buffer_size: int = 1024
    holdout_fraction: float = 0.1  # share of episodes held out for evaluation
    log_interval: int = 10
    eval_interval: int = 0  # 0: evaluate only at the end
    ckpt_interval: int = 100
    resume: bool = True  # continue from out/ckpt.pt when it exists
    action_space: str = "auto"  # auto: from the source card named in the manifest
    recon_weight: float = 0.5  # gaze: weight of the reconstruction loss
    device: str = "auto"
    model: ModelConfig = field(default_factory=ModelConfig)

    def validate(self) -> None:
        if self.recipe not in RECIPES:
            raise ValueError(f"recipe {self.recipe!r} unknown; known: {sorted(RECIPES)}")
        if not self.data:
            raise ValueError("data: give the output folder to train on")
        for name in ("steps", "batch_size", "grad_accum"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.min_lr <= self.lr:
            raise ValueError(f"need 0 <= min_lr <= lr, got {self.min_lr}, {self.lr}")
        if not 0 < self.holdout_fraction < 1:
            raise ValueError(f"holdout_fraction must be in (0, 1), got {self.holdout_fraction}")
        self.model.validate()


def get_lr(it: int, cfg: TrainConfig) -> float:
    """Linear warmup, then cosine decay from lr to min_lr at `steps`."""
    if it < cfg.warmup:
        return cfg.lr * (it + 1) / (cfg.warmup + 1)
    decay_steps = cfg.lr_decay_steps or cfg.steps
    progress = min(1.0, (it - cfg.warmup) / max(1, decay_steps - cfg.warmup))
    return cfg.min_lr + 0.5 * (1 + math.cos(math.pi * progress)) * (cfg.lr - cfg.min_lr)


def first_direction(instruction: str) -> str | None:
    for word in instruction.lower().replace(",", " ").split():
        if word in DIRECTION_WORDS:
            return word.removesuffix("ward") if word in ("upward", "downward") else word
    return None


class LaRecipe:
    card = "la"
    holdout_column = "source_episode_id"
    columns = ["source_episode_id", "instruction", "state", "gripper", "actions", "state_names", "action_names"]

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


class GazeRecipe:
    card = "gaze"
    holdout_column = "episode_id"
    columns = ["episode_id", "instruction", "image", "crop", "state", "gripper", "action"]

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


RECIPES = {"la": LaRecipe, "gaze": GazeRecipe}


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def make_loader(cfg: TrainConfig, recipe, split: str, *, shuffle: bool, workers: int, drop_last: bool) -> ShardLoader:
    card = load_output_card(recipe.card)
    collate = CardCollate(card, recipe.spec)
    columns = recipe.columns + (["action_names", "state_names"] if recipe.card == "la" else [])
    dataset = ShardDataset(cfg.data, card.name, columns=list(dict.fromkeys(columns)), decode_row=KeepInstruction(collate),
                           shuffle=shuffle, seed=cfg.seed, buffer_size=cfg.buffer_size,
                           holdout=Holdout(recipe.holdout_column, cfg.holdout_fraction, split))
    return ShardLoader(dataset, collate, cfg.batch_size, num_workers=workers, drop_last=drop_last, seed=cfg.seed)


class KeepInstruction:
    """Row decoder that also keeps the instruction string (the la probe reads its direction words)."""

    def __init__(self, collate: CardCollate):
        self.collate = collate

    def __call__(self, row):
        text = row.get("instruction")
        out = self.collate.decode_row(row)
        out["instruction_str"] = text
        return out


def evaluate(cfg, recipe, model, device) -> dict[str, float]:
    loader = make_loader(cfg, recipe, "eval", shuffle=False, workers=0, drop_last=False)
    loader.dataset.set_position(0, 0, cfg.batch_size)
    model.eval()
    metrics = recipe.evaluate(model, loader._loader, device)
    model.train()
    return metrics


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Train `cfg.recipe` on `cfg.data`; returns the per-step losses of this run and the final eval."""
    cfg.validate()
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if cfg.device == "auto" else cfg.device)
    ctx = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()  # fp32 on CPU
    out = Path(cfg.out)
    torch.manual_seed(cfg.seed + int(os.environ.get("RANK", 0)))
    source = ShardDataset(cfg.data, verify_checksums=False).manifest.source
    recipe = RECIPES[cfg.recipe](cfg, source)
    loader = make_loader(cfg, recipe, "train", shuffle=True, workers=cfg.num_workers, drop_last=True)
    batches = iter(loader)
    checkpoint = torch.load(out / CHECKPOINT, weights_only=False) if cfg.resume and (out / CHECKPOINT).exists() else None
    if checkpoint:
        loader.load_state_dict(checkpoint["data"])
        batches = iter(loader)
    batch, position = next(batches)
    model = recipe.build(batch).to(device)  # shapes (and normalisers, overwritten on resume) from the first batch
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr)
    it = 0
    if checkpoint:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        it = checkpoint["iter"]
        torch.set_rng_state(checkpoint["rng"]["torch"])
        if device.type == "cuda":
            torch.cuda.set_rng_state(checkpoint["rng"]["cuda"])
        random.setstate(checkpoint["rng"]["python"])
        np.random.set_state(checkpoint["rng"]["numpy"])
    batch = to_device(batch, device)
    losses: list[float] = []
    wait, t_log, samples = 0.0, time.perf_counter(), 0
    total_wait, t_start, first_it = 0.0, time.perf_counter(), it
    while it < cfg.steps:
        lr = get_lr(it, cfg)
        for group in optimizer.param_groups:
            group["lr"] = lr
        step_loss = 0.0
        for _ in range(cfg.grad_accum):
            with ctx:
                loss = recipe.loss(model, batch) / cfg.grad_accum
            t0 = time.perf_counter()
            batch, position = next(batches)  # fetch the next batch while the GPU runs the forward pass
            batch = to_device(batch, device)
            wait += time.perf_counter() - t0
            total_wait += time.perf_counter() - t0
            loss.backward()
            step_loss += loss.item()
            samples += cfg.batch_size
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        it += 1
        losses.append(step_loss)
        if cfg.log_interval and it % cfg.log_interval == 0:
            elapsed = time.perf_counter() - t_log
            print(f"step {it} loss {step_loss:.4f} lr {lr:.2e} samples/s {samples / elapsed:.1f} "
                  f"data-wait {wait / elapsed:.1%}", flush=True)
            wait, t_log, samples = 0.0, time.perf_counter(), 0
        if cfg.eval_interval and it % cfg.eval_interval == 0:
            print(f"step {it} eval {evaluate(cfg, recipe, model, device)}", flush=True)
        if it % cfg.ckpt_interval == 0 or it == cfg.steps:
            out.mkdir(parents=True, exist_ok=True)
            rng = {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state(),
                   "cuda": torch.cuda.get_rng_state() if device.type == "cuda" else None}
            torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "iter": it,
                        "config": asdict(cfg), "data": loader.state_dict(position), "rng": rng}, out / CHECKPOINT)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t_start
    throughput = {
        "samples_per_s": (it - first_it) * cfg.batch_size * cfg.grad_accum / seconds,
        "data_wait_fraction": total_wait / seconds,
        "step_ms": 1000 * seconds / max(1, it - first_it),
        "max_gpu_mem_gb": torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None,
    }
    return {"losses": losses, "throughput": throughput, "eval": evaluate(cfg, recipe, model, device)}
