"""The training loop, top to bottom (nanoGPT-style): config, recipes, init or resume, loop.

Recipes (trainer/recipes/<card>.py, chosen by `recipe`) turn a collated batch into a
loss and evaluate on held-out episodes.

Under torchrun (WORLD_SIZE > 1) every process joins a process group (NCCL on GPU, gloo on
CPU), trains on cuda:LOCAL_RANK (or the CPU) and wraps the model in DistributedDataParallel
once it is built from the first batch; DDP copies rank 0's parameters and buffers (the
normalisers each rank computed from its own first batch) to every rank. Every rank gets as
many batches per epoch (trainer/data.py). Rank 0 alone prints, evaluates and writes checkpoints.
"""

from __future__ import annotations

import hashlib
import inspect
import json
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
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from datasets_cards import load_output_card
from trainer.collate import CardCollate, to_device
from trainer.data import Holdout, MixtureDataset, ShardDataset, ShardLoader, parse_data
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
    data: str = ""  # output folder OUT/<pipeline>/<source> (local or fsspec URL); a:0.7,b:0.3 or a YAML: a mixture
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
    num_workers: int | None = None  # None: the cores this process may use / processes on the node, at most 4
    buffer_size: int = 1024  # shuffle buffer (rows) run over each window's rows; >= a window's rows: a permutation
    window: int = 8  # row groups whose rows are shuffled together (the global epoch order)
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
        parse_data(self.data)  # ValueError on a bad weight
        for name in ("steps", "batch_size", "grad_accum", "window"):
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


def make_dataset(cfg: TrainConfig, card: str, columns: list[str], split: str, *, shuffle: bool, decode_row=None,
                 rank: int | None = None, world_size: int | None = None):
    """`cfg.data`'s folder, or the weighted mixture of its folders (each with the holdout split of `split`)."""
    holdout = Holdout(RECIPES.get(cfg.recipe).holdout_column, cfg.holdout_fraction, split)
    sources = parse_data(cfg.data)

    def folder(path: str, one: bool) -> ShardDataset:
        return ShardDataset(path, card, columns=columns, decode_row=decode_row if one else None, shuffle=shuffle,
                            seed=cfg.seed, buffer_size=cfg.buffer_size, window=cfg.window, holdout=holdout,
                            rank=rank, world_size=world_size)

    if len(sources) == 1:
        return folder(sources[0][0], True)
    return MixtureDataset([folder(path, False) for path, _ in sources], [w for _, w in sources], shuffle=shuffle,
                          seed=cfg.seed, decode_row=decode_row, rank=rank, world_size=world_size)


def make_loader(cfg: TrainConfig, recipe, split: str, *, shuffle: bool, workers: int | None, drop_last: bool,
                rank: int | None = None, world_size: int | None = None) -> ShardLoader:
    card = load_output_card(recipe.card)
    collate = CardCollate(card, recipe.spec)
    dataset = make_dataset(cfg, card.name, list(dict.fromkeys(recipe.columns)), split, shuffle=shuffle,
                           decode_row=KeepInstruction(collate), rank=rank, world_size=world_size)
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
    loader = make_loader(cfg, recipe, "eval", shuffle=False, workers=0, drop_last=False, rank=0, world_size=1)
    loader.dataset.set_position(0, 0, cfg.batch_size, drop_last=False)
    model.eval()
    metrics = recipe.evaluate(model, loader._loader, device)
    model.train()
    return metrics


class RecipeLoss(torch.nn.Module):
    """The recipe's loss as a module's forward, so DistributedDataParallel sees every step (its gradient
    hooks need forward to be called); recipes still get the plain model."""

    def __init__(self, recipe, model: torch.nn.Module):
        super().__init__()
        self.recipe, self.model = recipe, model

    def forward(self, batch):
        return self.recipe.loss(self.model, batch)


def _rng_state(device: torch.device) -> dict[str, Any]:
    kind, key, *rest = np.random.get_state()  # numpy's key as a tensor: see load_checkpoint
    return {"torch": torch.get_rng_state(), "python": random.getstate(),
            "numpy": (kind, torch.from_numpy(key.astype(np.int64)), *rest),
            "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None}


def _set_rng_state(rng: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(rng["torch"])
    if device.type == "cuda" and rng.get("cuda") is not None:
        torch.cuda.set_rng_state(rng["cuda"], device)
    random.setstate(rng["python"])
    kind, key, *rest = rng["numpy"]
    np.random.set_state((kind, key.numpy().astype(np.uint32), *rest))


def _state_hash(model: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Train `cfg.recipe` on `cfg.data`; returns the per-step losses of this run and the final eval
    (under torchrun: on rank 0; other ranks return an empty eval)."""
    cfg.validate()
    out = Path(cfg.out)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    # Loaded first: a refused or unreadable checkpoint stops the run before any data is read.
    checkpoint = load_checkpoint(out / CHECKPOINT) if cfg.resume and (out / CHECKPOINT).exists() else None
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if cfg.device == "auto" else cfg.device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank if world > 1 else 0)
        torch.cuda.set_device(device)
    started_group = world > 1 and not dist.is_initialized()
    if started_group:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        return _train(cfg, out, checkpoint, device, rank, world)
    finally:
        if started_group:
            dist.destroy_process_group()


def _train(cfg: TrainConfig, out: Path, checkpoint, device: torch.device, rank: int, world: int) -> dict[str, Any]:
    ctx = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()  # fp32 on CPU
    torch.manual_seed(cfg.seed + rank)
    source = ShardDataset(parse_data(cfg.data)[0][0], verify_checksums=False).manifest.source
    recipe = RECIPES.get(cfg.recipe)(cfg, source)
    loader = make_loader(cfg, recipe, "train", shuffle=True, workers=cfg.num_workers, drop_last=True)
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
        ranks = checkpoint.get("rng_ranks") or [checkpoint["rng"]]
        _set_rng_state(ranks[rank] if len(ranks) == world else ranks[0], device)
        if len(ranks) != world and rank > 0:  # another world size: the sample order is exact, the noise is not
            torch.manual_seed(cfg.seed + rank + 1_000_003 * it)
    loss_fn: torch.nn.Module = RecipeLoss(recipe, model)
    if world > 1:  # copies rank 0's parameters and buffers (normalisers) to every rank, once
        constant_buffers = ({"forward_sync_buffers": False} if "forward_sync_buffers" in
                            inspect.signature(DistributedDataParallel.__init__).parameters else {"broadcast_buffers": False})
        loss_fn = DistributedDataParallel(loss_fn, device_ids=[device.index] if device.type == "cuda" else None,
                                          find_unused_parameters=getattr(recipe, "find_unused_parameters", False),
                                          **constant_buffers)
    batch = to_device(batch, device)
    losses: list[float] = []
    stats_path = os.environ.get("TRAINER_STATS")  # test hook: what this rank saw and its parameters' hash
    stats: dict[str, Any] = {"rank": rank, "world_size": world, "batches": {}, "samples": []}
    wait, t_log, samples = 0.0, time.perf_counter(), 0
    total_wait, t_start, first_it = 0.0, time.perf_counter(), it
    while it < cfg.steps:
        lr = get_lr(it, cfg)
        for group in optimizer.param_groups:
            group["lr"] = lr
        step_loss = 0.0
        for micro in range(cfg.grad_accum):
            if stats_path:  # a list per batch: kept only when a test asks
                stats["batches"][position.epoch] = stats["batches"].get(position.epoch, 0) + 1
                stats["samples"].append([position.epoch, position.sample])
            sync = world == 1 or micro == cfg.grad_accum - 1
            with ctx, (nullcontext() if sync else loss_fn.no_sync()):
                loss = loss_fn(batch) / cfg.grad_accum
            t0 = time.perf_counter()
            batch, position = next(batches)  # fetch the next batch while the GPU runs the forward pass
            batch = to_device(batch, device)
            wait += time.perf_counter() - t0
            total_wait += time.perf_counter() - t0
            with nullcontext() if sync else loss_fn.no_sync():
                loss.backward()
            step_loss += loss.item()
            samples += cfg.batch_size
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        it += 1
        losses.append(step_loss)
        if rank == 0 and cfg.log_interval and it % cfg.log_interval == 0:
            elapsed = time.perf_counter() - t_log
            print(f"step {it} loss {step_loss:.4f} lr {lr:.2e} samples/s {samples * world / elapsed:.1f} "
                  f"data-wait {wait / elapsed:.1%}", flush=True)
            wait, t_log, samples = 0.0, time.perf_counter(), 0
        if rank == 0 and cfg.eval_interval and it % cfg.eval_interval == 0:
            print(f"step {it} eval {evaluate(cfg, recipe, model, device)}", flush=True)
        if it % cfg.ckpt_interval == 0 or it == cfg.steps:
            rng = _rng_state(device)
            ranks = [rng]
            if world > 1:
                ranks = [None] * world
                dist.all_gather_object(ranks, {k: v for k, v in rng.items() if k != "cuda"} | {"cuda": None})
                ranks[rank] = rng
            if rank == 0:
                out.mkdir(parents=True, exist_ok=True)
                # Tensors and plain values only (the config as a dict): see load_checkpoint.
                torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "iter": it,
                            "config": asdict(cfg), "data": loader.state_dict(position), "rng": rng,
                            "rng_ranks": ranks, "world_size": world}, out / CHECKPOINT)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - t_start
    throughput = {
        "samples_per_s": (it - first_it) * cfg.batch_size * cfg.grad_accum * world / seconds,
        "data_wait_fraction": total_wait / seconds,
        "step_ms": 1000 * seconds / max(1, it - first_it),
        "max_gpu_mem_gb": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None,
        "world_size": world,
    }
    if stats_path:
        stats["state_sha256"] = _state_hash(model)
        Path(f"{stats_path}.rank{rank}.json").write_text(json.dumps(stats))
    result = {"losses": losses, "throughput": throughput, "eval": evaluate(cfg, recipe, model, device) if rank == 0 else {}}
    if world > 1:
        dist.barrier()
    return result
