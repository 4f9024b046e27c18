"""Gaze pipeline throughput on one GPU: peer-style loop vs our pipeline vs the model alone.

Measured in one run, on the same device, with the real-size grounding-dino-tiny
architecture (GroundingDinoConfig() defaults: Swin-T backbone, BERT-base text
encoder, 900 queries) built from its config with random weights (compute does
not depend on weight values) and a BERT-sized vocabulary written on the fly:

(a) peer    one frame at a time through the HF processor (its default 800 px resize) and
            the model in fp32, then post_process_grounded_object_detection (the way
            Embodied-CoT's and Grounded-SAM-2's scripts do it); frames decoded from the
            sample's JPEGs;
(b) ours    the gaze flow end to end on the sample's Bridge-schema RLDS shards at the
            frames' native 256×256 (the processor's edge set to the source's frame size):
            read → decode → batched bf16 detection → consistency → crops → Parquet
            shards (model loaded and Prefect started before the clock starts);
(c) model   the model alone, batched, bf16 autocast, on pre-made device tensors of (b)'s size.

--scaling B1 B2 ... adds a sweep of our detector path (detect() on uint8 frames) over the
robot sources' native resolutions and batch sizes, next to the 800 px upscale.

Detections are capped (top `max_detections` queries) everywhere so random scores
do not change the work. Targets: (b) ≥ 5× (a) and ≥ 80 % of (c).

    python -m benchmarks.gaze_speed --device cuda --batch-size 16            # the GPU numbers
    python -m benchmarks.gaze_speed --device cpu --frames 2 --episodes 1 --small   # CPU smoke

Needs the sample (`make sample-data`). Prints a table and writes JSON with --json.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

BERT_VOCAB_SIZE = 30522
BERT_IDS = {0: "[PAD]", 100: "[UNK]", 101: "[CLS]", 102: "[SEP]", 103: "[MASK]", 1010: ",", 1012: ".", 1029: "?"}


def write_bert_sized_vocab(path: Path, words: set[str]) -> Path:
    """A vocabulary with BERT's size and special-token ids (the model hard-codes some) holding `words`."""
    tokens = [BERT_IDS.get(i, f"[unused{i}]") for i in range(1030)]
    tokens += sorted(w for w in words if w not in tokens)
    tokens += [f"[filler{i}]" for i in range(BERT_VOCAB_SIZE - len(tokens))]
    path.write_text("\n".join(tokens) + "\n")
    return path


def small_grounding_dino_config():
    """A small Grounding DINO (Swin 32-wide, BERT 64-wide, 100 queries): CPU smoke runs and tests."""
    import transformers as hf

    return hf.GroundingDinoConfig(
        backbone_config=hf.SwinConfig(embed_dim=32, depths=[1, 1, 2, 1], num_heads=[1, 2, 2, 4],
                                      window_size=7, out_features=["stage2", "stage3", "stage4"]),
        text_config=hf.BertConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128),
        d_model=64, encoder_layers=2, decoder_layers=2, encoder_ffn_dim=128, decoder_ffn_dim=128,
        encoder_attention_heads=2, decoder_attention_heads=2, num_queries=100)


def save_random_grounding_dino_tiny(folder: Path, words: set[str], shortest_edge: int, longest_edge: int,
                                    small: bool = False) -> Path:
    """grounding-dino-tiny's architecture (or the small one) with random weights, saved like a hub checkpoint."""
    import torch
    from transformers import (
        BertTokenizer,
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        GroundingDinoProcessor,
    )
    from transformers.models.grounding_dino.image_processing_pil_grounding_dino import (
        GroundingDinoImageProcessorPil,
    )

    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = BertTokenizer(str(write_bert_sized_vocab(folder / "vocab.txt", words)))
    torch.manual_seed(0)
    config = small_grounding_dino_config() if small else GroundingDinoConfig()
    GroundingDinoForObjectDetection(config).eval().save_pretrained(folder)
    image_processor = GroundingDinoImageProcessorPil(size={"shortest_edge": shortest_edge, "longest_edge": longest_edge})
    GroundingDinoProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(folder)
    return folder


def with_processor_edge(folder: Path, out: Path, shortest_edge: int, longest_edge: int) -> Path:
    """The same checkpoint (weights and config linked, not copied) with a processor that resizes to another edge."""
    from transformers import AutoProcessor

    out.mkdir(parents=True, exist_ok=True)
    for item in folder.iterdir():
        if item.name.startswith("model") or item.name == "config.json":
            (out / item.name).symlink_to(item.resolve())
    processor = AutoProcessor.from_pretrained(folder, local_files_only=True)
    processor.image_processor.size = {"shortest_edge": shortest_edge, "longest_edge": longest_edge}
    processor.save_pretrained(out)
    return out


def sample_frames(episodes: int) -> tuple[list[bytes], list[str], int]:
    """JPEG frames and detector prompts of the first sample-bridge episodes, and their total."""
    from annotators.phrases import extract_phrases, to_detector_prompt
    from datasets_cards import load_source_card
    from pipelines.formats import open_reader

    card = load_source_card("sample-bridge")
    jpegs, prompts = [], []
    for episode in open_reader(card).read(0, episodes):
        prompt = to_detector_prompt(extract_phrases(episode.instruction).object)
        for camera in card.cameras:
            jpegs.extend(episode.frames[camera].encoded)
            prompts.extend([prompt] * episode.num_frames)
    return jpegs, prompts, len(jpegs)


def sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def peer_loop(model_dir: Path, device: str, jpegs: list[bytes], prompts: list[str], max_detections: int,
              threshold: float, text_threshold: float) -> float:
    """(a) frames/s, one image at a time, processor + fp32 model + HF post-processing."""
    import io

    import torch
    from PIL import Image
    from transformers import AutoModelForZeroShotObjectDetection, AutoProcessor

    processor = AutoProcessor.from_pretrained(model_dir, local_files_only=True)
    model = AutoModelForZeroShotObjectDetection.from_pretrained(model_dir, local_files_only=True).to(device).eval()

    def one(data: bytes, prompt: str) -> None:
        image = Image.open(io.BytesIO(data)).convert("RGB")
        inputs = processor(images=image, text=prompt, return_tensors="pt").to(device)
        with torch.no_grad():
            outputs = model(**inputs)
        # cap: keep the best queries only, so random scores do not change the post-processing work
        top = outputs.logits.max(-1).values.topk(max_detections, dim=1).indices[0]
        outputs.logits, outputs.pred_boxes = outputs.logits[:, top], outputs.pred_boxes[:, top]
        processor.post_process_grounded_object_detection(
            outputs, inputs.input_ids, threshold=threshold, text_threshold=text_threshold,
            target_sizes=[image.size[::-1]])

    one(jpegs[0], prompts[0])  # warm-up
    sync(device)
    start = time.perf_counter()
    for data, prompt in zip(jpegs, prompts):
        one(data, prompt)
    sync(device)
    return len(jpegs) / (time.perf_counter() - start)


def our_pipeline(model_dir: Path, device: str, episodes: int, batch_size: int, out: Path) -> tuple[float, int, float]:
    """(b) frames/s of the gaze flow from the sample's RLDS shards to written Parquet shards, rows, shard bytes/row."""
    from datasets_cards import load_source_card
    from pipelines.base import worker_pipeline
    from pipelines.flows.annotate import annotate

    options = {"model": str(model_dir), "device": device, "batch_size": batch_size, "montage": 0}
    worker_pipeline("gaze", load_source_card("sample-bridge"), options)  # load the model once (cached per process)
    annotate(source="sample-bridge", pipeline="gaze", out=str(out / "warm-up"), limit=1, options=options)
    sync(device)
    start = time.perf_counter()
    manifest = annotate(source="sample-bridge", pipeline="gaze", out=str(out / "timed"), limit=episodes,
                        episodes_per_shard=max(1, episodes // 4), options=options)
    sync(device)
    elapsed = time.perf_counter() - start
    return manifest.rows / elapsed, manifest.rows, sum(s.bytes for s in manifest.shards) / max(1, manifest.rows)


def model_alone(model_dir: Path, device: str, batch_size: int, frames: int, shape: tuple[int, int]) -> float:
    """(c) frames/s of the batched bf16 forward pass on pre-made device tensors of `shape`, same capped top-k."""
    import torch

    from annotators.detection import DetectorConfig
    from annotators.detection.grounding_dino import GroundingDinoDetector

    detector = GroundingDinoDetector(DetectorConfig(model=str(model_dir), device=device, batch_size=batch_size))
    pixels = torch.randn(batch_size, 3, *shape, device=device)
    mask = torch.ones(batch_size, *shape, dtype=torch.long, device=device)
    text = detector.text_batch(["green ball."] * batch_size)
    steps = max(1, frames // batch_size)
    detector.forward(pixels, mask, text)  # warm-up
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        outputs = detector.forward(pixels, mask, text)
        detector.postprocess(outputs, text["input_ids"], [shape] * batch_size)
    sync(device)
    return steps * batch_size / (time.perf_counter() - start)


# Robot camera resolutions (H, W) the scaling sweep runs at: the sources' native frames.
ROBOT_FRAMES = {"LIBERO": (128, 128), "CALVIN": (200, 200), "DROID": (180, 320), "Bridge": (256, 256),
                "Fractal": (256, 320)}
PROCESSOR_EDGE = (800, 1333)  # the Grounding DINO processor's default resize (shortest, longest edge)


def smallest_edge(height: int, width: int, queries: int) -> int:
    """The smallest shortest edge, from the frame's own up, at which Grounding DINO's encoder has at least
    `queries` tokens (its 4 feature levels, strides 8 to 64): it picks its top-`queries` proposals there,
    so grounding-dino-tiny (900 queries) cannot run on LIBERO's 128² or CALVIN's 200² frames as they are."""
    edge = min(height, width)
    while True:
        h, w = round(height * edge / min(height, width)), round(width * edge / min(height, width))
        if sum(-(-h // s) * -(-w // s) for s in (8, 16, 32, 64)) >= queries:
            return edge
        edge += 8


def resolution_scaling(model_dir: Path, device: str, batches: list[int], frames: int,
                       resolutions: dict[str, tuple[int, int]] = ROBOT_FRAMES,
                       upscale_frames: int | None = None) -> list[dict[str, Any]]:
    """Our detector path (GroundingDinoDetector.detect: uint8 frames → resize on device → forward → top-k) in
    frames/s per source resolution and batch size, at the native size (or the smallest the model's query count
    allows, smallest_edge) and at the processor's 800 px upscale (on the first `upscale_frames` frames: on a CPU
    one 800 px frame costs what ten native ones do)."""
    import numpy as np
    from transformers import AutoProcessor

    from annotators.detection import DetectorConfig
    from annotators.detection.grounding_dino import (
        GroundingDinoDetector,
        load_grounding_dino,
        resized_shape,
    )

    model, _ = load_grounding_dino(str(model_dir), device)  # once: each pass only changes the processor's edge

    def detect_fps(edge: tuple[int, int], batch: int, images: list[Any]) -> float:
        processor = AutoProcessor.from_pretrained(model_dir, local_files_only=True)
        processor.image_processor.size = {"shortest_edge": edge[0], "longest_edge": edge[1]}
        detector = GroundingDinoDetector(DetectorConfig(device=device, batch_size=batch), model, processor)
        prompts = ["green ball."] * len(images)
        detector.detect(images[:batch], prompts[:batch])  # warm-up
        sync(device)
        start = time.perf_counter()
        detector.detect(images, prompts)
        sync(device)
        return len(images) / (time.perf_counter() - start)

    queries = model.config.num_queries
    rows = []
    upscaled: dict[tuple[int, int], float] = {}  # sources that upscale to the same shape share one measurement
    for name, (h, w) in resolutions.items():
        images = [np.random.default_rng(i).integers(0, 256, (h, w, 3), dtype=np.uint8) for i in range(frames)]
        edge = smallest_edge(h, w, queries)
        native = (edge, round(max(h, w) * edge / min(h, w)))
        for batch in batches:
            fps = detect_fps(native, batch, images)
            rows.append({"source": name, "frame": [h, w], "resize": "native",
                         "model_input": list(resized_shape(h, w, *native)), "batch": batch, "frames_per_s": fps})
        shape = resized_shape(h, w, *PROCESSOR_EDGE)
        if shape not in upscaled:  # the upscale at the first batch size only: it costs what the native sweep costs ×N
            upscaled[shape] = detect_fps(PROCESSOR_EDGE, batches[0], images[:upscale_frames or frames])
        rows.append({"source": name, "frame": [h, w], "resize": "800 px", "model_input": list(shape),
                     "batch": batches[0], "frames_per_s": upscaled[shape]})
    return rows


def measure(device: str = "cuda", batch_size: int = 16, episodes: int = 12, frames: int | None = None,
            peer_edge: int = PROCESSOR_EDGE[0], max_detections: int = 10, small: bool = False,
            scaling_batches: list[int] | None = None, scaling_frames: int = 0) -> dict[str, Any]:
    """(a), (b), (c) in one run; (a) at the processor's `peer_edge`, (b) and (c) at the frames' native size.

    With `scaling_frames` > 0 also resolution_scaling() over ROBOT_FRAMES at `scaling_batches`."""
    from datasets_cards import decode_image, load_source_card

    params = load_source_card("sample-bridge").params.gaze
    jpegs, prompts, total = sample_frames(episodes)
    frames = min(frames or total, total)
    native = decode_image(jpegs[0]).shape[:2]
    words = {w.rstrip(".") for p in prompts for w in p.split()} | {"green", "ball"}
    with tempfile.TemporaryDirectory(prefix="gaze-speed-") as tmp:
        peer_dir = save_random_grounding_dino_tiny(Path(tmp) / "model", words, peer_edge,
                                                   int(peer_edge * PROCESSOR_EDGE[1] / PROCESSOR_EDGE[0]), small)
        native_dir = with_processor_edge(peer_dir, Path(tmp) / "native", min(native), max(native))
        results: dict[str, Any] = {
            "device": device_name(device), "batch_size": batch_size,
            "model": "small Grounding DINO (Swin 32-wide, 100 queries)" if small else "grounding-dino-tiny (Swin-T, "
                     "BERT-base, 900 queries)",
            "input": f"sample-bridge {native[0]}×{native[1]} frames; (a) resized to {peer_edge} px (the processor's "
                     f"default), (b) and (c) at native size",
            "a_peer_fps": peer_loop(peer_dir, device, jpegs[:frames], prompts[:frames], max_detections,
                                    params.box_threshold, params.text_threshold),
            "a_frames": frames,
        }
        results["b_ours_fps"], results["b_frames"], results["b_bytes_per_row"] = our_pipeline(native_dir, device, episodes, batch_size,
                                                                  Path(tmp) / "out")
        results["c_model_fps"] = model_alone(native_dir, device, batch_size, max(frames, batch_size), native)
        if scaling_frames:
            results["scaling"] = resolution_scaling(peer_dir, device, scaling_batches or [batch_size], scaling_frames)
    results["b_over_a"] = results["b_ours_fps"] / results["a_peer_fps"]
    results["b_over_c"] = results["b_ours_fps"] / results["c_model_fps"]
    return results


def device_name(device: str) -> str:
    import torch

    if device.startswith("cuda"):
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--episodes", type=int, default=12, help="sample-bridge episodes for (a) and (b)")
    parser.add_argument("--frames", type=int, default=None, help="frames for (a) and (c) (default: all of --episodes)")
    parser.add_argument("--peer-edge", type=int, default=PROCESSOR_EDGE[0], help="(a)'s processor resize (800 = the "
                        "model's default); (b) and (c) run at the frames' native size")
    parser.add_argument("--max-detections", type=int, default=10)
    parser.add_argument("--small", action="store_true", help="a small Grounding DINO (CPU smoke)")
    parser.add_argument("--scaling", type=int, nargs="*", default=None, metavar="BATCH",
                        help="also the resolution × batch sweep at these batch sizes")
    parser.add_argument("--scaling-frames", type=int, default=8)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    results = measure(args.device, args.batch_size, args.episodes, args.frames, args.peer_edge, args.max_detections,
                      args.small, args.scaling, args.scaling_frames if args.scaling is not None else 0)
    print(f"device: {results['device']}; batch {args.batch_size}; {results['model']}; {results['input']}")
    print(f"(a) peer loop, fp32, 1 image      {results['a_peer_fps']:8.2f} frames/s ({results['a_frames']} frames)")
    print(f"(b) our pipeline, shards → shards {results['b_ours_fps']:8.2f} frames/s ({results['b_frames']} frames)")
    print(f"(c) model alone, batched bf16     {results['c_model_fps']:8.2f} frames/s")
    print(f"(b)/(a) = {results['b_over_a']:.2f}× (target ≥ 5×); (b)/(c) = {results['b_over_c']:.0%} (target ≥ 80 %)")
    for row in results.get("scaling", []):
        print(f"{row['source']:<8} {row['frame']} {row['resize']:>7} → {row['model_input']} batch {row['batch']:>3}: "
              f"{row['frames_per_s']:.3g} frames/s")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
