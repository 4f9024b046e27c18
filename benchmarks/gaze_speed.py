"""Gaze pipeline throughput on one GPU: peer-style loop vs our pipeline vs the model alone.

Measured in one run, on the same device, with the real-size grounding-dino-tiny
architecture (GroundingDinoConfig() defaults: Swin-T backbone, BERT-base text
encoder, 900 queries) built from its config with random weights (compute does
not depend on weight values) and a BERT-sized vocabulary written on the fly:

(a) peer    one frame at a time through the HF processor and the model in fp32,
            then post_process_grounded_object_detection (the way Embodied-CoT's and
            Grounded-SAM-2's scripts do it); frames decoded from the sample's JPEGs;
(b) ours    the gaze flow end to end on the sample's Bridge-schema RLDS shards:
            read → decode → batched bf16 detection → consistency → crops → Parquet
            shards (model loaded and Prefect started before the clock starts);
(c) model   the model alone, batched, bf16 autocast, on pre-made device tensors.

Detections are capped (top `max_detections` queries) everywhere so random scores
do not change the work. Targets: (b) ≥ 5× (a) and ≥ 80 % of (c).

    python -m benchmarks.gaze_speed --device cuda --batch-size 16            # the GPU numbers
    python -m benchmarks.gaze_speed --device cpu --frames 2 --episodes 1 --shortest-edge 224   # CPU smoke

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


def save_random_grounding_dino_tiny(folder: Path, words: set[str], shortest_edge: int, longest_edge: int) -> Path:
    """grounding-dino-tiny's architecture with random weights, saved like a hub checkpoint."""
    import torch
    from transformers import BertTokenizer, GroundingDinoConfig, GroundingDinoForObjectDetection, GroundingDinoProcessor
    from transformers.models.grounding_dino.image_processing_pil_grounding_dino import GroundingDinoImageProcessorPil

    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = BertTokenizer(str(write_bert_sized_vocab(folder / "vocab.txt", words)))
    torch.manual_seed(0)
    GroundingDinoForObjectDetection(GroundingDinoConfig()).eval().save_pretrained(folder)
    image_processor = GroundingDinoImageProcessorPil(size={"shortest_edge": shortest_edge, "longest_edge": longest_edge})
    GroundingDinoProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(folder)
    return folder


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


def our_pipeline(model_dir: Path, device: str, episodes: int, batch_size: int, out: Path) -> tuple[float, int]:
    """(b) frames/s of the gaze flow from the sample's RLDS shards to written Parquet shards."""
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
    return manifest.rows / (time.perf_counter() - start), manifest.rows


def model_alone(model_dir: Path, device: str, batch_size: int, frames: int, shortest_edge: int) -> float:
    """(c) frames/s of the batched bf16 forward pass on pre-made device tensors, same capped top-k."""
    import torch

    from annotators.detection import DetectorConfig
    from annotators.detection.grounding_dino import GroundingDinoDetector

    detector = GroundingDinoDetector(DetectorConfig(model=str(model_dir), device=device, batch_size=batch_size))
    pixels = torch.randn(batch_size, 3, shortest_edge, shortest_edge, device=device)
    mask = torch.ones(batch_size, shortest_edge, shortest_edge, dtype=torch.long, device=device)
    text = detector.text_batch(["green ball."] * batch_size)
    steps = max(1, frames // batch_size)
    detector.forward(pixels, mask, text)  # warm-up
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        outputs = detector.forward(pixels, mask, text)
        detector.postprocess(outputs, text["input_ids"], [(256, 256)] * batch_size)
    sync(device)
    return steps * batch_size / (time.perf_counter() - start)


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
    parser.add_argument("--shortest-edge", type=int, default=800, help="processor resize (800 = the model's default)")
    parser.add_argument("--max-detections", type=int, default=10)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    from datasets_cards import load_source_card

    params = load_source_card("sample-bridge").params.gaze
    jpegs, prompts, total = sample_frames(args.episodes)
    frames = min(args.frames or total, total)
    words = {w.rstrip(".") for p in prompts for w in p.split()}
    with tempfile.TemporaryDirectory(prefix="gaze-speed-") as tmp:
        model_dir = save_random_grounding_dino_tiny(Path(tmp) / "model", words, args.shortest_edge,
                                                    int(args.shortest_edge * 1333 / 800))
        results = {
            "device": device_name(args.device),
            "batch_size": args.batch_size,
            "input": f"sample-bridge 256×256 frames resized to {args.shortest_edge}×{args.shortest_edge}",
            "a_peer_fps": peer_loop(model_dir, args.device, jpegs[:frames], prompts[:frames], args.max_detections,
                                    params.box_threshold, params.text_threshold),
        }
        results["b_ours_fps"], results["b_frames"] = our_pipeline(model_dir, args.device, args.episodes,
                                                                  args.batch_size, Path(tmp) / "out")
        results["c_model_fps"] = model_alone(model_dir, args.device, args.batch_size, max(frames, args.batch_size),
                                             args.shortest_edge)
    results["b_over_a"] = results["b_ours_fps"] / results["a_peer_fps"]
    results["b_over_c"] = results["b_ours_fps"] / results["c_model_fps"]
    print(f"device: {results['device']}; batch {args.batch_size}; {results['input']}")
    print(f"(a) peer loop, fp32, 1 image      {results['a_peer_fps']:8.2f} frames/s ({frames} frames)")
    print(f"(b) our pipeline, shards → shards {results['b_ours_fps']:8.2f} frames/s ({results['b_frames']} frames)")
    print(f"(c) model alone, batched bf16     {results['c_model_fps']:8.2f} frames/s")
    print(f"(b)/(a) = {results['b_over_a']:.2f}× (target ≥ 5×); (b)/(c) = {results['b_over_c']:.0%} (target ≥ 80 %)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
