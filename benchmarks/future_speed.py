"""Future pipeline throughput: DIAL's one-image call vs our batched path vs the tower alone, in one run.

The Qwen2.5-VL-3B vision tower's architecture (depth 32, hidden 1280, MLP 3420, 16 heads,
output 2048 after the patch merger, full attention in blocks 7/15/23/31, 112-px windows)
built from its config with random weights (compute does not depend on weight values),
224×224 views (64 tokens a frame), frames decoded from DROID-sized 180×320 JPEGs:

(a) stock  one frame at a time as DIAL's code does it: decode, crop, the Qwen2-VL image
           processor (PIL), the tower's own forward on that one image, tokens back to the host;
(b) ours   the future pipeline's annotate_many on in-memory episodes: JPEG decode and crops
           on its thread pool, batches across episodes, the batched tower (one attention call
           per layer), float16 tokens back, rows assembled;
(c) tower  the tower alone on uint8 frames already on the device: our forward (c1) and the
           stock forward on pre-made pixel patches (c2).
--flow adds (d): the annotate flow on sample-droid (RLDS read, Parquet shards written),
Prefect started before the clock.

Targets (the issue): (b) ≥ 4.5× (a) and ≥ 80 % of (c1). Fraction of bf16 peak: matmul and
attention FLOPs of one frame (counted from the config) × frames/s ÷ the device's dense
bf16 peak (--peak-tflops; known for H100/H200/A100/L40S).

    python -m benchmarks.future_speed --device cuda                 # the GPU numbers (bf16)
    python -m benchmarks.future_speed --smoke                       # CPU smoke: a small tower, fp32

Prints a table and writes JSON with --json. Storage per row is measured through the shard
writer on the tokens of (b) (random weights: about as compressible as real features).
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REAL = {"depth": 32, "hidden_size": 1280, "intermediate_size": 3420, "num_heads": 16, "out_hidden_size": 2048,
        "fullatt_block_indexes": [7, 15, 23, 31], "window_size": 112, "patch_size": 14, "spatial_merge_size": 2,
        "temporal_patch_size": 2}
SMOKE = {**REAL, "depth": 4, "hidden_size": 128, "intermediate_size": 256, "num_heads": 4, "out_hidden_size": 256,
         "fullatt_block_indexes": [1, 3]}
PEAK_BF16_TFLOPS = {"H200": 989.4, "H100": 989.4, "A100": 312.0, "L40S": 362.1}  # dense, SXM where it matters


def tower_flops(cfg: dict[str, Any], size: tuple[int, int]) -> float:
    """Multiply-add FLOPs (×2) of one image through patch embed, blocks (windowed and full attention), merger."""
    p, m, d = cfg["patch_size"], cfg["spatial_merge_size"], cfg["hidden_size"]
    s = (size[0] // p) * (size[1] // p)
    window = min(s, (cfg["window_size"] // p) ** 2)
    flops = 2 * s * (3 * cfg["temporal_patch_size"] * p * p) * d
    for layer in range(cfg["depth"]):
        span = s if layer in cfg["fullatt_block_indexes"] else window
        flops += 2 * s * d * 4 * d  # qkv and the output projection
        flops += 2 * 2 * s * span * d  # QK^T and AV
        flops += 2 * s * d * 3 * cfg["intermediate_size"]  # SwiGLU MLP
    merged, unit = s // (m * m), d * m * m
    flops += 2 * merged * (unit * unit + unit * cfg["out_hidden_size"])
    return float(flops)


def build_encoder(cfg: dict[str, Any], device: str, batch_size: int):
    import torch
    from transformers.models.qwen2_5_vl.configuration_qwen2_5_vl import (
        Qwen2_5_VLVisionConfig,
    )
    from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import (
        Qwen2_5_VisionTransformerPretrainedModel,
    )

    from annotators.vision import VisionEncoderConfig
    from annotators.vision.qwen import QwenVisionEncoder

    config = Qwen2_5_VLVisionConfig(**cfg)
    config._attn_implementation = "sdpa"
    torch.manual_seed(0)
    with torch.device(device):
        tower = Qwen2_5_VisionTransformerPretrainedModel(config)
    settings = VisionEncoderConfig(model="random", device=device, batch_size=batch_size, dtype="bfloat16")
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    return QwenVisionEncoder(settings, tower=tower.to(dtype=dtype).eval().requires_grad_(False))


def jpeg_frames(n: int, seed: int = 0) -> list[bytes]:
    """DROID-sized JPEGs (180×320) with some structure, so the codec does real work."""
    from datasets_cards import encode_jpeg

    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (45, 80, 3), dtype=np.uint8)
    import cv2

    smooth = cv2.resize(base, (320, 180), interpolation=cv2.INTER_CUBIC)
    return [encode_jpeg(np.clip(smooth.astype(int) + rng.integers(-8, 9, smooth.shape), 0, 255).astype(np.uint8), 90)
            for _ in range(n)]


def sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def run_stock(encoder, frames: list[bytes], device: str) -> float:
    """(a) One frame at a time: decode, crop, the PIL image processor, the stock tower forward, tokens to host."""
    import torch
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (
        Qwen2VLImageProcessorPil,
    )

    from annotators.vision.views import image_to_view, view_box
    from datasets_cards import decode_image

    processor = Qwen2VLImageProcessorPil()
    tower, dtype = encoder.tower, encoder.dtype

    def one(data: bytes) -> np.ndarray:
        image = decode_image(data)
        view = image_to_view(image, view_box(*image.shape[:2], (0.0, 1.0), (0.0, 1.0), 0.95), (224, 224))
        inputs = processor(images=[view], return_tensors="pt")
        with torch.inference_mode():
            out = tower(inputs["pixel_values"].to(device, dtype), grid_thw=inputs["image_grid_thw"].to(device))
        return out.pooler_output.float().cpu().numpy()

    one(frames[0])
    sync(device)
    start = time.perf_counter()
    for data in frames:
        one(data)
    sync(device)
    return len(frames) / (time.perf_counter() - start)


def run_ours(encoder, frames: list[bytes], episode_frames: int, batch_size: int, workers: int) -> tuple[float, list]:
    """(b) The future pipeline's annotate_many on in-memory JPEG episodes (decode threads, cross-episode batches)."""
    from datasets_cards import Episode, FrameSequence, load_source_card
    from pipelines.future.pipeline import FuturePipeline

    card = load_source_card("droid")
    pipe = FuturePipeline(card, {"batch_size": batch_size, "decode_workers": workers}, encoder=encoder)

    def episodes(count: int):
        for e in range(count):
            chunk = frames[(e * episode_frames) % len(frames):][:episode_frames]
            chunk = (chunk * (episode_frames // max(1, len(chunk)) + 1))[:episode_frames]
            state = np.zeros((episode_frames, 6), np.float32)
            cams = {"exterior_1_left": FrameSequence(chunk)}
            yield Episode(f"bench-{e}", "droid", "pick", 15.0, cams, state, np.zeros(episode_frames, np.float32),
                          np.zeros((episode_frames, 7), np.float32))

    warm = list(pipe.annotate_many(episodes(1)))
    count = max(1, len(frames) // episode_frames)
    start = time.perf_counter()
    results = list(pipe.annotate_many(episodes(count)))
    elapsed = time.perf_counter() - start
    rows = [r for _, rs in results for r in rs]
    pipe.pool.shutdown()
    return len(rows) / elapsed, rows or [r for _, rs in warm for r in rs]


def run_tower(encoder, batch_size: int, batches: int, device: str, stock: bool) -> float:
    """(c) The tower alone on device tensors: our forward from uint8 frames, or the stock one from patches."""
    import torch

    images = torch.randint(0, 256, (batch_size, 224, 224, 3), dtype=torch.uint8, device=device)
    with torch.inference_mode():
        patches = encoder.patchify(images)

        def step():
            return encoder.stock_forward(patches, batch_size) if stock else encoder.forward(images)

        step()
        sync(device)
        start = time.perf_counter()
        for _ in range(batches):
            step()
        sync(device)
    return batches * batch_size / (time.perf_counter() - start)


def run_flow(encoder, batch_size: int, limit: int) -> float | None:
    """(d) The annotate flow on sample-droid: RLDS read, decode, encode, Parquet shards (Prefect up before)."""
    from datasets_cards import list_sources
    from pipelines import base
    from pipelines.base import PIPELINES
    from pipelines.flows.annotate import annotate
    from pipelines.future.pipeline import FuturePipeline

    if "sample-droid" not in list_sources():
        return None

    class Injected(FuturePipeline):
        def __init__(self, source, options=None):
            super().__init__(source, options, encoder=encoder)

    with tempfile.TemporaryDirectory() as tmp, PIPELINES.override("future", Injected):
        base._cached.cache_clear()
        args = {"source": "sample-droid", "pipeline": "future", "limit": 1, "retries": 0,
                "options": {"batch_size": batch_size}}
        annotate(out=f"{tmp}/warm", **args)  # Prefect, TensorFlow and the reader warm
        start = time.perf_counter()
        manifest = annotate(out=f"{tmp}/run", **{**args, "limit": limit})
        elapsed = time.perf_counter() - start
    base._cached.cache_clear()
    return manifest.rows / elapsed


def storage(rows: list[dict]) -> dict[str, float]:
    """Bytes per row written through the shard writer (the card's schema), and without dictionary encoding."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from datasets_cards import load_output_card
    from pipelines.io import ShardWriter

    card = load_output_card("future")
    with tempfile.TemporaryDirectory() as tmp:
        with ShardWriter(card, f"{tmp}/shard.parquet") as writer:
            writer.write_rows(rows)
        n, size, _ = writer.result
    table = pa.Table.from_pylist(rows, schema=card.arrow_schema())
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd", use_dictionary=False, row_group_size=len(rows))
    return {"rows": n, "bytes_per_row": size / n, "bytes_per_row_no_dictionary": len(sink.getvalue()) / n,
            "feature_bytes": len(rows[0]["feature"]) * 2}


def measure(device: str = "cuda", *, smoke: bool = False, batch_size: int = 256, frames: int = 4096,
            stock_frames: int = 256, tower_batches: int = 16, episode_frames: int = 300, workers: int = 8,
            flow: bool = False, flow_episodes: int = 12, peak_tflops: float | None = None) -> dict[str, Any]:
    """(a), (b), (c1), (c2) [and (d)] in one run on `device`; the SMOKE tower when `smoke`, else the real one."""
    import torch

    cfg = SMOKE if smoke else REAL
    encoder = build_encoder(cfg, device, batch_size)
    jpegs = jpeg_frames(frames)
    report: dict[str, Any] = {
        "device": torch.cuda.get_device_name(0) if device.startswith("cuda") else platform.processor() or "cpu",
        "dtype": str(encoder.dtype).removeprefix("torch."), "architecture": cfg, "batch_size": batch_size,
        "frames": {"a": stock_frames, "b": len(jpegs), "c": tower_batches * batch_size},
        "fast_attention_used": encoder.geometry.window_length is not None, "torch": torch.__version__,
    }
    fps: dict[str, float] = {}
    fps["a_stock_one_image"] = run_stock(encoder, jpegs[:stock_frames], device)
    fps["b_ours_pipeline"], rows = run_ours(encoder, jpegs, episode_frames, batch_size, workers)
    fps["c1_tower_alone_ours"] = run_tower(encoder, batch_size, tower_batches, device, stock=False)
    fps["c2_tower_alone_stock"] = run_tower(encoder, batch_size, tower_batches, device, stock=True)
    if flow:
        fps["d_flow_sample_droid"] = run_flow(encoder, batch_size, flow_episodes)
    report["frames_per_s"] = {k: v for k, v in fps.items() if v is not None}  # unrounded: ratios are taken of them
    report["ratios"] = {"ours_over_stock": fps["b_ours_pipeline"] / fps["a_stock_one_image"],
                        "ours_over_tower": fps["b_ours_pipeline"] / fps["c1_tower_alone_ours"],
                        "tower_ours_over_stock_tower": fps["c1_tower_alone_ours"] / fps["c2_tower_alone_stock"]}
    report["targets_met"] = {"ours >= 4.5x stock": report["ratios"]["ours_over_stock"] >= 4.5,
                             "ours >= 80% of tower": report["ratios"]["ours_over_tower"] >= 0.8}
    flops = tower_flops(cfg, (224, 224))
    report["gflops_per_frame"] = round(flops / 1e9, 2)
    peak = peak_tflops or next((v for k, v in PEAK_BF16_TFLOPS.items() if k in report["device"]), None)
    if peak and device.startswith("cuda"):
        report["fraction_of_bf16_peak"] = {k: round(v * flops / (peak * 1e12), 4) for k, v in fps.items() if v}
    report["storage"] = storage(rows[: min(len(rows), 256)])
    return report


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--smoke", action="store_true", help="CPU, a 4-block tower, few frames")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--frames", type=int, default=4096, help="frames through (b)")
    parser.add_argument("--stock-frames", type=int, default=256, help="frames through (a)")
    parser.add_argument("--tower-batches", type=int, default=16)
    parser.add_argument("--episode-frames", type=int, default=300)
    parser.add_argument("--workers", type=int, default=8, help="decode threads of (b)")
    parser.add_argument("--flow", action="store_true", help="also (d), the flow on sample-droid")
    parser.add_argument("--flow-episodes", type=int, default=12)
    parser.add_argument("--peak-tflops", type=float, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.smoke:
        args.device = "cpu"
        args.batch_size, args.frames, args.stock_frames = 32, 192, 24
        args.tower_batches, args.episode_frames, args.workers = 3, 64, 2
        args.flow_episodes = 2
    report = measure(args.device, smoke=args.smoke, batch_size=args.batch_size, frames=args.frames,
                     stock_frames=args.stock_frames, tower_batches=args.tower_batches,
                     episode_frames=args.episode_frames, workers=args.workers, flow=args.flow,
                     flow_episodes=args.flow_episodes, peak_tflops=args.peak_tflops)
    print(f"{'path':<26}{'frames/s':>12}")
    for name, value in report["frames_per_s"].items():
        print(f"{name:<26}{value:>12.1f}")
    print(json.dumps({k: v for k, v in report.items() if k not in ("frames_per_s", "architecture")}, indent=1))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
