"""GPU check of the trainer (device tool, not CI): each recipe for a few hundred steps on
synthetic shards built by the test factories, reporting samples/s, GPU memory and the
fraction of step time spent waiting for data.

    python benchmarks/trainer_gpu.py                 # GPU sizes (a step of a few tens of ms on an H100)
    python benchmarks/trainer_gpu.py --smoke         # tiny CPU run that checks the script works
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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.trainer.factories import gaze_rows, la_rows, write_output_folder  # noqa: E402
from trainer.models import ModelConfig  # noqa: E402
from trainer.train import TrainConfig, train  # noqa: E402

GPU = dict(steps=300, batch_size=256, workers=8, model=ModelConfig(dim=384, layers=6, heads=6, horizon=16,
           image_size=128, patch=16, crop_size=32, crop_patch=4), la_episodes=2000, gaze_episodes=300, frames=20)
SMOKE = dict(steps=20, batch_size=8, workers=2, model=ModelConfig(dim=32, layers=1, heads=2, horizon=4, image_size=32,
             patch=8, crop_size=8, crop_patch=4, flow_steps=2), la_episodes=20, gaze_episodes=8, frames=8)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--smoke", action="store_true", help="tiny CPU setting")
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args()
    size = SMOKE if args.smoke else GPU
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if distributed:  # one process group for both recipes (train() leaves a group it did not start alone)
        import torch
        import torch.distributed as dist

        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    local = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))  # workers of the node shared by its processes
    workers = args.workers if args.workers is not None else max(0, size["workers"] // local)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_output_folder(root / "la", "la", la_rows(episodes=size["la_episodes"]), rows_per_shard=2000, row_group_rows=512)
        write_output_folder(root / "gaze", "gaze", gaze_rows(episodes=size["gaze_episodes"], frames=size["frames"],
                            size=size["model"].image_size), rows_per_shard=1024, row_group_rows=256, source="bridge")
        report = {}
        for recipe in ("la", "gaze"):
            cfg = TrainConfig(recipe=recipe, data=str(root / recipe), out=str(root / f"ckpt-{recipe}"),
                              steps=size["steps"], batch_size=size["batch_size"], num_workers=workers,
                              log_interval=max(1, size["steps"] // 5), holdout_fraction=0.25, ckpt_interval=10**9, model=size["model"])
            result = train(cfg)
            report[recipe] = {**result["throughput"], "workers_per_process": workers,
                              "final_loss": result["losses"][-1], "eval": result["eval"]}
        if os.environ.get("RANK", "0") == "0":
            print(json.dumps(report, indent=2))
    if distributed:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
