"""Pixel pipeline memory: the SAM 2 streaming tracker over 100 / 1,000 / 10,000 frames, pruned vs unbounded.

The pixel pipeline tracks the gripper through one frame per episode of a whole corpus as a
single video (87,000 frames for Fractal). transformers' Sam2VideoInferenceSession keeps every
frame's pixels and outputs; StreamingTracker prunes it after each frame to what SAM 2 reads
next (annotators/segmentation/video.py). For each frame count, in a fresh child process so
that peak memory is that run's alone:

  seed on frame 0 (a box), then step() through N-1 synthetic frames (Fractal-sized 256×320,
  a bright square drifting over noise, a pool of 64 cycled; made before the clock starts);
  measured: frames/s of the steps, peak RSS (psutil, sampled every step and every 5 ms by a
  thread; CPU) or torch.cuda.max_memory_allocated (CUDA), its growth over the RSS right after
  the seed, and what the session holds at the end: frames with outputs, frames of pixels,
  and the bytes of all its tensors.

Pruning off ("unbounded", transformers' behaviour) runs only for counts ≤ --unbounded-max: its
state grows by one frame of pixels and outputs per step without limit.

The model: by default a tiny random-weight SAM 2 video config (tests/annotators/segmentation/
tiny_sam.py: 64-px input, 128-wide features) with the real memory windows (num_maskmem 7,
max_object_pointers_in_encoder 16), so the counts are the real checkpoint's and the bytes are
small; --model PATH runs a real checkpoint (e.g. facebook/sam2.1-hiera-tiny, 1024 px).

    python -m benchmarks.pixel_memory --frames 100 1000 10000               # CPU, tiny model
    python -m benchmarks.pixel_memory --model ~/sam2.1-hiera-tiny --device cuda --frames 100 1000 10000

Prints a table; --json writes the rows.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Self

import numpy as np

FRAME_SHAPE = (256, 320)  # Fractal's camera
POOL = 64


def synthetic_frames(count: int, shape: tuple[int, int] = FRAME_SHAPE, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """`count` frames of a bright square drifting over noise, and the square's box on frame 0."""
    rng = np.random.default_rng(seed)
    h, w = shape
    frames = rng.integers(0, 70, (count, h, w, 3), dtype=np.uint8)
    side = h // 5
    for t in range(count):
        x, y = (10 + 7 * t) % (w - side), (5 + 3 * t) % (h - side)
        frames[t, y : y + side, x : x + side] = (230, 200, 60)
    return frames, np.array([10, 5, 10 + side, 5 + side], dtype=np.float32)


def build_tracker(model: str | None, device: str, prune: bool):
    from annotators.segmentation import SegmenterConfig, StreamingTracker

    if model:
        return StreamingTracker(SegmenterConfig(model=model, device=device), prune=prune)
    import torch
    from transformers import Sam2VideoModel

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "annotators" / "segmentation"))
    from tiny_sam import lively, tiny_sam2_video_config

    torch.manual_seed(0)
    net = Sam2VideoModel(tiny_sam2_video_config(64, num_maskmem=7, max_object_pointers=16))
    lively(net)
    return StreamingTracker(SegmenterConfig(model="tiny-random", device=device), model=net.to(device).eval(),
                            prune=prune)


class RssSampler:
    """Peak resident set size of this process, sampled by a thread every `interval` s and on demand."""

    def __init__(self, interval: float = 0.005):
        import psutil

        self.process, self.interval, self.peak = psutil.Process(), interval, 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)

    def sample(self) -> int:
        rss = self.process.memory_info().rss
        self.peak = max(self.peak, rss)
        return rss

    def loop(self) -> None:
        while not self.stop.wait(self.interval):
            self.sample()

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


def run_one(frames: int, prune: bool, model: str | None, device: str) -> dict[str, Any]:
    """One measured stream, in this process."""
    import torch

    tracker = build_tracker(model, device, prune)
    pool, box = synthetic_frames(min(POOL, frames))
    cuda = tracker.device.startswith("cuda")
    with RssSampler() as rss:
        tracker.seed(pool[0], box=box)
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        base_rss = rss.sample()
        base_cuda = torch.cuda.memory_allocated() if cuda else 0
        start = time.perf_counter()
        for t in range(1, frames):
            tracker.step(pool[t % len(pool)])
            rss.sample()
        if cuda:
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - start
    size = tracker.session_size()
    row = {"frames": frames, "pruned": prune, "frames_per_s": round((frames - 1) / max(elapsed, 1e-9), 1),
           "peak_rss_mib": round(rss.peak / 2**20, 1), "rss_growth_mib": round((rss.peak - base_rss) / 2**20, 1),
           "held_output_frames": size["outputs"], "held_pixel_frames": size["pixels"],
           "session_mib": round(size["bytes"] / 2**20, 3)}
    if cuda:
        row["cuda_peak_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        row["cuda_growth_mib"] = round((torch.cuda.max_memory_allocated() - base_cuda) / 2**20, 1)
    return row


def run_child(frames: int, prune: bool, args: argparse.Namespace) -> dict[str, Any]:
    """run_one in a fresh interpreter (peak memory of that run alone)."""
    command = [sys.executable, "-m", "benchmarks.pixel_memory", "--single", str(frames), "--device", args.device]
    command += ["--prune" if prune else "--no-prune"] + (["--model", args.model] if args.model else [])
    command += ["--threads", str(args.threads)] if args.threads else []
    done = subprocess.run(command, check=False, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1],
                          env={**os.environ, "TRANSFORMERS_VERBOSITY": "error"})
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--model", default=None, help="a SAM 2 video checkpoint folder or hub id (default: tiny random)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: 1 for the tiny model on CPU, whose ops are too small to "
                             "split and slow down badly when threads contend for cores; else torch's default)")
    parser.add_argument("--unbounded-max", type=int, default=1000, help="largest count also run with pruning off")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--single", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--prune", action=argparse.BooleanOptionalAction, default=True, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    import torch

    if args.threads is None and not args.model and not args.device.startswith("cuda"):
        args.threads = 1
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.single is not None:
        print(json.dumps(run_one(args.single, args.prune, args.model, args.device)))
        return []

    rows = []
    for frames in args.frames:
        rows.append(run_child(frames, True, args))
        if frames <= args.unbounded_max:
            rows.append(run_child(frames, False, args))
    cuda = args.device.startswith("cuda")
    device = torch.cuda.get_device_name(0) if cuda else (platform.processor() or "cpu")
    print(f"model: {args.model or 'tiny random SAM 2 video (64 px, num_maskmem 7, 16 object pointers)'}; "
          f"device: {device}, {torch.get_num_threads()} threads; frames {FRAME_SHAPE[0]}×{FRAME_SHAPE[1]}")
    memory = ("cuda_peak_mib", "cuda_growth_mib") if cuda else ("peak_rss_mib", "rss_growth_mib")
    header = ["frames", "session", "frames/s", memory[0], memory[1], "held outputs", "held pixels", "session MiB"]
    print("".join(f"{h:>16}" for h in header))
    for row in rows:
        cells = [row["frames"], "pruned" if row["pruned"] else "unbounded", row["frames_per_s"], row[memory[0]],
                 row[memory[1]], row["held_output_frames"], row["held_pixel_frames"], row["session_mib"]]
        print("".join(f"{c:>16}" for c in cells))
    print("growth = peak minus the value right after seed(); held = frames the session holds at the end")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return rows


if __name__ == "__main__":
    main()
