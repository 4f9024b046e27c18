"""The training loop, top to bottom (nanoGPT-style): config, recipes, init or resume, loop.

Recipes (trainer/recipes/<card>.py, chosen by `recipe`) turn a collated batch into a
loss and evaluate on held-out episodes.
"""

from __future__ import annotations

import math
import os
import pickle
import random
import re
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from datasets_cards import load_output_card
from trainer.collate import CardCollate, to_device
from trainer.data import Holdout, ShardDataset, ShardLoader
from trainer.models import ModelConfig
from trainer.recipes import RECIPES

CHECKPOINT = "ckpt.pt"


class CheckpointError(RuntimeError):
    """A checkpoint that is refused (it holds more than tensors and plain values) or cannot be read."""


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """A checkpoint as `train` saves it, loaded with `weights_only=True`: tensors, numbers, strings, lists,
    tuples and dicts only, so a crafted file cannot run code. Anything else is a CheckpointError naming the file."""
    try:
        checkpoint = torch.load(path, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as e:  # weights_only met a global it does not allow (a class, a callable)
        named = re.search(r"GLOBAL (\S+)", str(e))
        what = f"it calls for {named.group(1)}" if named else " ".join(str(e).split())[:120]
        raise CheckpointError(f"refusing to load checkpoint {path}: it holds more than tensors and plain values "
                              f"({what}); delete it, train into another --out, or pass --resume false") from e
    except (RuntimeError, EOFError, OSError) as e:  # truncated, not a torch file
        raise CheckpointError(f"cannot read checkpoint {path} ({' '.join(str(e).split())[:120]}); delete it, train "
                              "into another --out, or pass --resume false") from e
    if not isinstance(checkpoint, dict) or not {"model", "optimizer", "iter"} <= checkpoint.keys():
        raise CheckpointError(f"{path} is not a checkpoint of this trainer (no model, optimizer and iter); delete it, "
                              "train into another --out, or pass --resume false")
    return checkpoint


@dataclass
class TrainConfig:
    recipe: str = "la"  # a registered recipe: la | gaze | future | pixel
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
    mix: str = ""  # future: more output folders of the same card, comma-separated, trained on alongside `data`
    device: str = "auto"
    model: ModelConfig = field(default_factory=ModelConfig)

    def validate(self) -> None:
        RECIPES.get(self.recipe)  # UnknownNameError listing the recipes
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


def make_loader(cfg: TrainConfig, recipe, split: str, *, shuffle: bool, workers: int, drop_last: bool) -> ShardLoader:
    card = load_output_card(recipe.card)
    collate = CardCollate(card, recipe.spec)
    dataset = ShardDataset(cfg.data, card.name, columns=list(dict.fromkeys(recipe.columns)), decode_row=KeepInstruction(collate),
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
    out = Path(cfg.out)
    # Loaded first: a refused or unreadable checkpoint stops the run before any data is read.
    checkpoint = load_checkpoint(out / CHECKPOINT) if cfg.resume and (out / CHECKPOINT).exists() else None
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if cfg.device == "auto" else cfg.device)
    ctx = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()  # fp32 on CPU
    torch.manual_seed(cfg.seed + int(os.environ.get("RANK", 0)))
    source = ShardDataset(cfg.data, verify_checksums=False).manifest.source
    recipe = RECIPES.get(cfg.recipe)(cfg, source)
    loader = make_loader(cfg, recipe, "train", shuffle=True, workers=cfg.num_workers, drop_last=True)
    batches = iter(loader)
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
        kind, key, *rest = checkpoint["rng"]["numpy"]
        np.random.set_state((kind, key.numpy().astype(np.uint32), *rest))
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
            # Tensors and plain values only (the config as a dict, numpy's key as a tensor): see load_checkpoint.
            kind, key, *rest = np.random.get_state()
            rng = {"torch": torch.get_rng_state(), "python": random.getstate(),
                   "numpy": (kind, torch.from_numpy(key.astype(np.int64)), *rest),
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
