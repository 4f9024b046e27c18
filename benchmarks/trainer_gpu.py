"""GPU check of the trainer (device tool, not CI): each recipe for a few hundred steps on
synthetic shards built by the test factories, reporting samples/s, GPU memory and the
fraction of step time spent waiting for data.

    python benchmarks/trainer_gpu.py                 # GPU sizes (a step of a few tens of ms on an H100)
    python benchmarks/trainer_gpu.py --smoke         # tiny CPU run that checks the script works
    python benchmarks/trainer_gpu.py --smoke --recipes la pixel --workers auto   # the default worker count
    torchrun --nproc-per-node N benchmarks/trainer_gpu.py   # N GPUs (DDP): samples/s of the whole job

Target: data-wait fraction < 5 % per recipe, on 1 GPU and on several. Under torchrun each process writes
the same synthetic shards into its own temporary folder (the factories are seeded) and rank 0 prints.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.trainer.factories import (
    gaze_rows,
    la_rows,
    make_future_folder,
    pixel_rows,
    write_output_folder,
)
from trainer.models import ModelConfig
from trainer.train import TrainConfig, train

RECIPES = ("la", "gaze", "future", "pixel")
# future: the Qwen2.5-VL-3B tower's tokens at 224² (64 × 2048); pixel: Fractal-sized 256×320 JPEG frames
GPU = {"steps": 300, "batch_size": 256, "workers": 8, "frames": 20,
       "model": ModelConfig(dim=384, layers=6, heads=6, horizon=16, image_size=128, patch=16, crop_size=32,
                            crop_patch=4),
       "la_episodes": 2000, "gaze_episodes": 300, "future_episodes": 100, "future_tokens": 64, "future_dim": 2048,
       "pixel_episodes": 100, "pixel_size": (256, 320)}
SMOKE = {"steps": 20, "batch_size": 8, "workers": 2, "frames": 8,
         "model": ModelConfig(dim=32, layers=1, heads=2, horizon=4, image_size=32, patch=8, crop_size=8, crop_patch=4,
                              flow_steps=2, foresight=4, chunk=4),
         "la_episodes": 20, "gaze_episodes": 8, "future_episodes": 12, "future_tokens": 4, "future_dim": 8,
         "pixel_episodes": 6, "pixel_size": (48, 64)}


def write_data(recipe: str, root: Path, size: dict[str, Any]) -> Path:
    """The recipe's synthetic output folder under `root`."""
    folder = root / recipe
    if recipe == "la":
        write_output_folder(folder, "la", la_rows(episodes=size["la_episodes"]), rows_per_shard=2000,
                            row_group_rows=512)
    elif recipe == "gaze":
        write_output_folder(folder, "gaze", gaze_rows(episodes=size["gaze_episodes"], frames=size["frames"],
                            size=size["model"].image_size), rows_per_shard=1024, row_group_rows=256, source="bridge")
    elif recipe == "future":
        make_future_folder(folder, episodes=size["future_episodes"], frames=max(24, size["frames"]),
                           tokens=size["future_tokens"], dim=size["future_dim"])
    else:
        height, width = size["pixel_size"]
        write_output_folder(folder, "pixel", pixel_rows(episodes=size["pixel_episodes"], frames=size["frames"],
                            width=width, height=height), rows_per_shard=1024, row_group_rows=64)
    return folder


def measure(recipe: str, size: dict[str, Any], workers: int | None) -> dict[str, Any]:
    """Train `recipe` on its synthetic folder; samples/s, data-wait fraction, step time (workers None: the default)."""
    with tempfile.TemporaryDirectory() as tmp:
        data = write_data(recipe, Path(tmp), size)
        cfg = TrainConfig(recipe=recipe, data=str(data), out=str(Path(tmp) / "ckpt"), steps=size["steps"],
                          batch_size=size["batch_size"], num_workers=workers, log_interval=max(1, size["steps"] // 5),
                          holdout_fraction=0.25, ckpt_interval=10**9, model=size["model"])
        result = train(cfg)
    from trainer.data import default_workers

    return {**result["throughput"], "workers_per_process": default_workers() if workers is None else workers,
            "steps": size["steps"], "batch_size": size["batch_size"], "final_loss": result["losses"][-1],
            "eval": result["eval"]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--smoke", action="store_true", help="tiny CPU setting")
    parser.add_argument("--workers", default=None, help="DataLoader workers per process; 'auto': the trainer's default")
    parser.add_argument("--recipes", nargs="+", default=["la", "gaze"], choices=RECIPES)
    args = parser.parse_args()
    size = SMOKE if args.smoke else GPU
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if distributed:  # one process group for every recipe (train() leaves a group it did not start alone)
        import torch
        import torch.distributed as dist

        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    local = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))  # workers of the node shared by its processes
    if args.workers == "auto":
        workers = None
    else:
        workers = int(args.workers) if args.workers is not None else max(0, size["workers"] // local)
    report = {recipe: measure(recipe, size, workers) for recipe in args.recipes}
    if os.environ.get("RANK", "0") == "0":
        print(json.dumps(report, indent=2))
    if distributed:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
