"""FLOPs per frame of the suite's models at the real architecture sizes, counted by torch's FlopCounterMode.

One forward pass on the CPU (random weights; the count depends only on shapes) of:
Grounding DINO tiny at each robot source's native frame (or the smallest its 900 queries allow:
208 px for LIBERO and CALVIN) and at the processor's 800 px upscale
(gaze; pixel runs it on the proposal's crop at 800 px), SAM 2.1 hiera-tiny at 1024² with one box
(pixel's target mask; also a lower bound for a frame of SAM 2 video propagation, which adds memory
attention), and the Qwen2.5-VL-3B vision tower at 224² (future; also its count from the config,
future_speed.tower_flops, which the GPU run uses for the share of peak). docs/cost.md turns these into
GPU-hours at an assumed share of the GPU's bf16 peak, until `make bench-gpu` measures frames/s.

    python -m benchmarks.model_flops            # a few minutes on 2 CPU cores (the 800 px passes dominate)
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.gaze_speed import PROCESSOR_EDGE, ROBOT_FRAMES, smallest_edge
from benchmarks.pixel_speed import grounding_dino, sam2


def counted(fn: Any) -> float:
    """FLOPs (multiply-adds × 2) of one call."""
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


def grounding_dino_gflops(shapes: dict[str, tuple[int, int]]) -> dict[str, float]:
    from annotators.detection.grounding_dino import resized_shape

    with tempfile.TemporaryDirectory() as tmp:
        model, processor, _ = grounding_dino(False, Path(tmp))
    text = processor.tokenizer(["red block."], return_tensors="pt")
    out = {}
    for name, (h, w) in shapes.items():
        edge = smallest_edge(h, w, model.config.num_queries)  # LIBERO, CALVIN: 208 px (see smallest_edge)
        native = resized_shape(h, w, edge, round(max(h, w) * edge / min(h, w)))
        for label, size in (("native", native), ("800 px", resized_shape(h, w, *PROCESSOR_EDGE))):
            key = f"{size[0]}x{size[1]}"
            if key not in out:
                pixels = torch.randn(1, 3, *size)
                out[key] = counted(lambda p=pixels: model(pixel_values=p, **text)) / 1e9
            out[f"{name} {h}x{w} {label}"] = out[key]
    return out


def sam2_gflops() -> float:
    model, size, _ = sam2(False)
    pixels, boxes = torch.randn(1, 3, size, size), torch.tensor([[[100.0, 100.0, 400.0, 400.0]]])
    return counted(lambda: model(pixel_values=pixels, input_boxes=boxes, multimask_output=False)) / 1e9


def qwen_tower_gflops() -> dict[str, float]:
    from benchmarks.future_speed import REAL, build_encoder, tower_flops

    encoder = build_encoder(REAL, "cpu", 1)
    image = torch.randint(0, 256, (1, 224, 224, 3), dtype=torch.uint8)
    return {"counted": counted(lambda: encoder.forward(image)) / 1e9, "from_config": tower_flops(REAL, (224, 224)) / 1e9}


def main() -> dict[str, Any]:
    report = {"grounding_dino_tiny_gflops": grounding_dino_gflops(ROBOT_FRAMES),
              "sam2_hiera_tiny_1024_box_gflops": sam2_gflops(),
              "qwen25_vl_3b_tower_224_gflops": qwen_tower_gflops()}
    print(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
