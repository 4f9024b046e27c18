"""Pixel pipeline, target-mask stage: a Grounded-SAM-2-style loop vs our batched path vs the models alone.

The stage (PixelVLA §4.2): on each episode's first gripper-close frame, Grounding DINO on the crop
of the region proposal with the target noun, the best box kept (back in full-frame pixels), then SAM 2
with that box prompt → one mask at the frame's resolution. Measured in one run, on one device, on
the same synthetic frames, proposals and prompt, after a warm-up:

(a) peer   one frame at a time as Grounded-SAM-2's demo scripts do: the JPEG read from disk with PIL,
           crop, the HF Grounding DINO processor + fp32 model + post_process_grounded_object_detection,
           best box, the HF Sam2Processor (box prompt) + fp32 Sam2Model + post_process_masks;
(b) ours   the pixel pipeline's code path (PixelPipeline._detect + segment) on decoded frames in
           memory, `--batch` episodes a call: GroundingDinoDetector.detect on the crops, best box,
           SamSegmenter.segment; bf16 autocast on CUDA (fp32 on CPU);
(c) model  the Grounding DINO forward + the Sam2Model forward alone, same calls and autocast as (b),
           on device tensors made beforehand: (b)/(c) shows what our pre/post-processing costs.

Models: the real architectures with random weights (compute does not depend on weight values):
grounding-dino-tiny (hf.GroundingDinoConfig() defaults: Swin-T, BERT-base, 900 queries; processor edge
800/1333) with a BERT-sized vocabulary written on the fly, and SAM 2.1 hiera-tiny (1024², hub layout:
a Sam2VideoConfig loaded into Sam2Model). `--smoke`: small configs and inputs, for a CPU check.
Boxes: thresholds 0 and the best `TOP_K` queries kept on both paths, so random scores never skip SAM
or change the post-processing work. The HF SAM 2 image processor needs torchvision; without it the
peer uses a PIL stand-in doing the same steps (resize to S×S, rescale, normalise) — the table says so.

    .venv/bin/python -m benchmarks.pixel_speed --smoke                                  # CPU, a couple of minutes
    .venv/bin/python -m benchmarks.pixel_speed --device cuda --frames 512 --batch 8 16 32   # the GPU numbers
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from benchmarks.gaze_speed import (
    device_name,
    small_grounding_dino_config,
    sync,
    write_bert_sized_vocab,
)

TOP_K = 10  # detections kept per image on both paths (DetectorConfig.max_detections in the pipeline)
NOUNS = ("red block", "blue cup", "green bowl", "yellow sponge")
HIERA_TINY = {  # facebook/sam2.1-hiera-tiny's image encoder
    "hidden_size": 96, "num_attention_heads": 1, "blocks_per_stage": [1, 2, 7, 2],
    "embed_dim_per_stage": [96, 192, 384, 768], "num_attention_heads_per_stage": [1, 2, 4, 8],
    "window_size_per_stage": [8, 4, 14, 7], "global_attention_blocks": [5, 7, 9],
    "window_positional_embedding_background_size": [7, 7],
}
SMOKE_HIERA = {"hidden_size": 16, "num_attention_heads": 1, "blocks_per_stage": [1, 1, 2, 1],
               "embed_dim_per_stage": [16, 32, 64, 128], "num_attention_heads_per_stage": [1, 1, 2, 2],
               "window_size_per_stage": [4, 4, 4, 2], "global_attention_blocks": [3],
               "window_positional_embedding_background_size": [2, 2]}


def grounding_dino(smoke: bool, folder: Path) -> tuple[Any, Any, str]:
    """(GroundingDinoForObjectDetection, its processor, a description) with random weights."""
    import transformers as hf

    words = {w for noun in NOUNS for w in noun.split()}
    tokenizer = hf.BertTokenizer(str(write_bert_sized_vocab(folder / "vocab.txt", words)))
    if smoke:
        config = small_grounding_dino_config()
        edge, what = 224, "small Grounding DINO (Swin 32-wide, BERT 64-wide, 100 queries)"
    else:
        config, edge, what = hf.GroundingDinoConfig(), 800, "grounding-dino-tiny (Swin-T, BERT-base, 900 queries)"
    torch.manual_seed(0)
    model = hf.GroundingDinoForObjectDetection(config).eval()
    size = {"shortest_edge": edge, "longest_edge": edge * 1333 // 800}
    processor = hf.GroundingDinoProcessor(image_processor=image_processor_classes()[0](size=size), tokenizer=tokenizer)
    return model, processor, f"{what}, processor edge {size['shortest_edge']}/{size['longest_edge']}"


def sam2(smoke: bool) -> tuple[Any, int, str]:
    """(Sam2Model, its input size, a description) with random weights, configured like the hub checkpoint."""
    from transformers import Sam2Model, Sam2VideoConfig

    size, hiera, hidden = (256, SMOKE_HIERA, 64) if smoke else (1024, HIERA_TINY, 256)
    vision = {"backbone_config": {"model_type": "sam2_hiera_det_model", "image_size": [size, size], **hiera},
              "backbone_channel_list": hiera["embed_dim_per_stage"][::-1],
              "backbone_feature_sizes": [[size // 4] * 2, [size // 8] * 2, [size // 16] * 2],
              "fpn_hidden_size": hidden}
    decoder = {"hidden_size": hidden, **({"mlp_dim": 128, "num_attention_heads": 2, "iou_head_hidden_dim": 64}
                                         if smoke else {})}
    config = Sam2VideoConfig(vision_config=vision, image_size=size, mask_decoder_config=decoder,
                             prompt_encoder_config={"hidden_size": hidden, "image_size": size})
    torch.manual_seed(0)
    what = "small SAM 2 (Hiera 16-wide, 5 blocks)" if smoke else "SAM 2.1 hiera-tiny"
    return Sam2Model(config).eval(), size, f"{what}, {size}×{size}"


def image_processor_classes() -> tuple[type, type, str]:
    """The HF image processors a demo gets (torchvision-backed), or PIL ones where torchvision is missing."""
    try:
        import torchvision  # noqa: F401
        from transformers import GroundingDinoImageProcessor, Sam2ImageProcessor
        return GroundingDinoImageProcessor, Sam2ImageProcessor, "HF (torchvision)"
    except ImportError:
        import transformers.models.grounding_dino.image_processing_pil_grounding_dino as pil

        return pil.GroundingDinoImageProcessorPil, sam2_pil_processor_class(), "HF PIL; SAM 2's: a PIL stand-in"


def sam2_pil_processor_class() -> type:
    """Sam2ImageProcessor's steps on the PIL backend (resize to S×S bilinear, rescale, normalise) and its
    post_process_masks (bilinear to the original size, > threshold), for machines without torchvision."""
    from transformers import image_utils
    from transformers.image_processing_backends import PilBackend

    class Sam2ImageProcessorPil(PilBackend):
        resample = image_utils.PILImageResampling.BILINEAR
        image_mean, image_std = image_utils.IMAGENET_DEFAULT_MEAN, image_utils.IMAGENET_DEFAULT_STD
        size: ClassVar[dict[str, int]] = {"height": 1024, "width": 1024}
        do_resize = do_rescale = do_normalize = do_convert_rgb = True

        def preprocess(self, images: Any, segmentation_maps: Any = None, **kwargs: Any) -> Any:
            out = super().preprocess(images, **kwargs)
            out["original_sizes"] = torch.tensor([im.size[::-1] for im in (images if isinstance(images, list)
                                                                             else [images])])
            return out

        def post_process_masks(self, masks: Any, original_sizes: Any, mask_threshold: float = 0.0,
                               *args: Any, **kwargs: Any) -> list[torch.Tensor]:
            return [F.interpolate(m, [int(s) for s in size], mode="bilinear", align_corners=False) > mask_threshold
                    for m, size in zip(masks, original_sizes)]

    return Sam2ImageProcessorPil


def synthetic_frames(n: int, height: int, width: int, seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """`n` uint8 scenes (gradient, coloured blocks, sensor noise) and a region proposal box (xyxy) in each."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    frames, proposals = [], []
    for _ in range(n):
        image = (rng.uniform(40, 200, 3) + 40 * (yy / height)[..., None] - 30 * (xx / width)[..., None])
        for _ in range(rng.integers(3, 7)):
            y0, x0 = rng.integers(0, height - 20), rng.integers(0, width - 20)
            image[y0:y0 + rng.integers(10, height // 3), x0:x0 + rng.integers(10, width // 3)] = rng.uniform(0, 255, 3)
        frames.append(np.clip(image + rng.normal(0, 4, image.shape), 0, 255).astype(np.uint8))
        bw, bh = rng.uniform(0.3, 0.6) * width, rng.uniform(0.3, 0.6) * height
        x0, y0 = rng.uniform(0, width - bw), rng.uniform(0, height - bh)
        proposals.append(np.array([x0, y0, x0 + bw, y0 + bh], np.float32))
    return frames, proposals


def crop_box(box: np.ndarray) -> tuple[int, int, int, int]:
    x0, y0, x1, y1 = (round(float(v)) for v in box)  # as PixelPipeline._detect rounds the proposal
    return x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)


def crops_of(images: Sequence[np.ndarray], proposals: Sequence[np.ndarray]) -> list[np.ndarray]:
    return [image[y0:y1, x0:x1] for image, (x0, y0, x1, y1) in zip(images, map(crop_box, proposals))]


Pass = Callable[[], list[tuple[int, ...]]]  # one timed pass over all frames → the shape and dtype of each mask


def peer_pass(paths: Sequence[Path], proposals: Sequence[np.ndarray], prompts: Sequence[str], device: str,
              gd: Any, gd_processor: Any, sam: Any, sam_processor: Any) -> Pass:
    """(a) one frame at a time, fp32, the HF processors and post-processing (warmed up)."""
    from PIL import Image

    def one(path: Path, proposal: np.ndarray, prompt: str) -> tuple[int, ...]:
        image = Image.open(path).convert("RGB")
        x0, y0, x1, y1 = crop_box(proposal)
        crop = image.crop((x0, y0, x1, y1))
        inputs = gd_processor(images=crop, text=prompt, return_tensors="pt").to(device)
        with torch.no_grad():
            outputs = gd(**inputs)
        top = outputs.logits.max(-1).values.topk(TOP_K, dim=1).indices[0]  # the same cap as ours
        outputs.logits, outputs.pred_boxes = outputs.logits[:, top], outputs.pred_boxes[:, top]
        found = gd_processor.post_process_grounded_object_detection(
            outputs, inputs.input_ids, threshold=0.0, text_threshold=0.0, target_sizes=[crop.size[::-1]])[0]
        box = found["boxes"][found["scores"].argmax()].tolist() if len(found["scores"]) else [0, 0, x1 - x0, y1 - y0]
        box = [box[0] + x0, box[1] + y0, box[2] + x0, box[3] + y0]
        inputs = sam_processor(images=image, input_boxes=[[box]], return_tensors="pt").to(device)
        with torch.no_grad():
            outputs = sam(pixel_values=inputs["pixel_values"], input_boxes=inputs["input_boxes"],
                          multimask_output=False)
        mask = sam_processor.post_process_masks(outputs.pred_masks.cpu(), inputs["original_sizes"])[0]
        return (*mask.shape[-2:], mask.dtype == torch.bool)

    one(paths[0], proposals[0], prompts[0])  # warm-up
    return lambda: [one(*a) for a in zip(paths, proposals, prompts)]


def target_masks(detector: Any, segmenter: Any, frames: Sequence[np.ndarray], proposals: Sequence[np.ndarray],
                 prompts: Sequence[str], batch: int) -> list[Any]:
    """(b) the pipeline's stage, `batch` episodes a call: detect on the proposals' crops, best box, segment."""
    results = []
    for start in range(0, len(frames), batch):
        images, props = frames[start:start + batch], proposals[start:start + batch]
        boxes = []
        for detections, (x0, y0, x1, y1) in zip(detector.detect(crops_of(images, props), prompts[start:start + batch]),
                                                map(crop_box, props)):
            best = detections.best()
            box = best.xyxy[0] if len(best) else np.array([0, 0, x1 - x0, y1 - y0], np.float32)
            boxes.append(box + np.array([x0, y0, x0, y0], np.float32))
        results.extend(segmenter.segment(images, boxes))
    return results


def our_passes(gd: Any, gd_processor: Any, sam: Any, device: str, frames: list[np.ndarray],
               proposals: list[np.ndarray], prompts: list[str], batch: int) -> tuple[Pass, Callable[[], None]]:
    """(b) and (c) at one batch size, warmed up."""
    from annotators.detection import DetectorConfig
    from annotators.detection.grounding_dino import GroundingDinoDetector
    from annotators.segmentation import SegmenterConfig
    from annotators.segmentation.sam import SamSegmenter

    detector = GroundingDinoDetector(DetectorConfig(device=device, box_threshold=0.0, text_threshold=0.0,
                                                    max_detections=TOP_K, batch_size=batch), gd, gd_processor)
    segmenter = SamSegmenter(config=SegmenterConfig(device=device, batch_size=batch), model=sam)

    def ours(n: int = len(frames)) -> list[tuple[int, ...]]:
        masks = target_masks(detector, segmenter, frames[:n], proposals[:n], prompts[:n], batch)
        return [(*m.mask.shape, m.mask.dtype == bool) for m in masks]

    # (c): every call's tensors made beforehand on the device (the proposals as SAM's boxes), forwards only
    inputs = []
    for start in range(0, len(frames), batch):
        images, props = frames[start:start + batch], proposals[start:start + batch]
        pixels, pixel_mask = detector.pixel_batch(crops_of(images, props))
        inputs.append((pixels, pixel_mask, detector.text_batch(prompts[start:start + batch]),
                       *segmenter.inputs(images, props)))

    def models(calls: list[tuple[Any, ...]] = inputs) -> None:
        for pixels, pixel_mask, text, sam_pixels, sam_boxes in calls:
            detector.forward(pixels, pixel_mask, text)
            segmenter.forward(sam_pixels, sam_boxes)

    ours(batch)  # warm-up at this batch size
    models(inputs[:1])
    return ours, models


def timed(fn: Callable[[], Any], device: str) -> tuple[float, Any]:
    sync(device)
    start = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - start, out


def measure(device: str = "cuda", frames: int = 256, batches: Sequence[int] = (16,),
            size: tuple[int, int] = (256, 320), repeats: int = 3, smoke: bool = False) -> dict[str, Any]:
    """(a), (b) at each batch, (c) at each batch: frames/s (fastest of `repeats` interleaved passes) and whether
    every path returned one bool mask per frame at the frame's size."""
    from PIL import Image
    from transformers import Sam2Processor

    n = frames
    frame_list, proposals = synthetic_frames(n, *size)
    prompts = [f"{NOUNS[i % len(NOUNS)]}." for i in range(n)]
    with tempfile.TemporaryDirectory(prefix="pixel-speed-") as tmp:
        gd, gd_processor, gd_what = grounding_dino(smoke, Path(tmp))
        sam, sam_size, sam_what = sam2(smoke)
        gd, sam = gd.to(device), sam.to(device)
        _, sam_ip_class, processors = image_processor_classes()
        sam_processor = Sam2Processor(image_processor=sam_ip_class(size={"height": sam_size, "width": sam_size}))
        paths = [Path(tmp) / f"{i:05d}.jpg" for i in range(n)]
        for path, frame in zip(paths, frame_list):  # written once; the peer reads them from disk on every pass
            Image.fromarray(frame).save(path, quality=95)
        passes: dict[tuple[str, int], Callable[[], Any]] = {
            ("a", 1): peer_pass(paths, proposals, prompts, device, gd, gd_processor, sam, sam_processor)}
        for b in batches:
            passes[("b", b)], passes[("c", b)] = our_passes(gd, gd_processor, sam, device, frame_list, proposals,
                                                            prompts, b)
        seconds = {key: float("inf") for key in passes}
        outputs: dict[tuple[str, int], Any] = {}
        for _ in range(repeats):  # rounds interleave the paths, so a busy spell on the machine hits them alike
            for key, fn in passes.items():
                elapsed, outputs[key] = timed(fn, device)
                seconds[key] = min(seconds[key], elapsed)
    expected = [(*f.shape[:2], True) for f in frame_list]
    return {"device": device_name(device), "models": f"{gd_what}; {sam_what}", "processors": processors,
            "frames": n, "size": list(size), "repeats": repeats,
            "dtype": "bf16 autocast" if device.startswith("cuda") else "fp32",
            "fps": {f"{p}{b}": n / sec for (p, b), sec in seconds.items()},
            "masks_ok": {f"{p}{b}": out == expected for (p, b), out in outputs.items() if out is not None}}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--frames", type=int, default=None, help="first-close frames (episodes); default 256, smoke 8")
    parser.add_argument("--batch", type=int, nargs="+", default=None, help="our batch sizes; default 16, smoke 1 4")
    parser.add_argument("--size", type=int, nargs=2, default=(256, 320), metavar=("H", "W"), help="frame size")
    parser.add_argument("--repeats", type=int, default=None, help="rounds of passes (fastest counts); default 3, smoke 5")
    parser.add_argument("--smoke", action="store_true", help="small models and inputs, on the CPU")
    args = parser.parse_args(argv)
    device = "cpu" if args.smoke else args.device
    n, batches = args.frames or (8 if args.smoke else 256), args.batch or ([1, 4] if args.smoke else [16])
    result = measure(device, n, batches, tuple(args.size), args.repeats or (5 if args.smoke else 3), args.smoke)
    fps, dtype = result["fps"], result["dtype"]

    command = " ".join([".venv/bin/python -m benchmarks.pixel_speed", *(sys.argv[1:] if argv is None else argv)])
    print(f"\n### Pixel target-mask stage on {result['device']}\n")
    print(f"- models (random weights): {result['models']}")
    print(f"- input: {n} synthetic {args.size[0]}×{args.size[1]} first-close frames (one episode each), a proposal "
          f"of 30–60 % of each side, prompts {', '.join(NOUNS)}; top {TOP_K} queries, thresholds 0; "
          f"fastest of {result['repeats']} interleaved passes after a warm-up")
    print("- (a) peer, batch 1, fp32: JPEG read from disk (PIL) → crop → Grounding DINO processor + model + "
          "post_process_grounded_object_detection → best box → Sam2Processor (box) + Sam2Model + "
          f"post_process_masks; image processors: {result['processors']}")
    print(f"- (b) ours, {dtype}: decoded frames in memory → GroundingDinoDetector.detect on the crops → best box → "
          "SamSegmenter.segment, `batch` episodes a call" + ("" if dtype != "fp32" else " (bf16 is CUDA-only)"))
    print(f"- (c) model alone, {dtype}: Grounding DINO + Sam2Model forwards of (b)'s calls on "
          "device tensors made beforehand")
    print("- masks ok: one bool mask per frame at the frame's H×W (random weights: mask contents not compared)\n")
    print("| path | batch | dtype | frames/s | × (a) | (b)/(c) | masks ok |")
    print("|---|---:|---|---:|---:|---:|---|")
    names = {"a": "(a) peer loop", "b": "(b) ours", "c": "(c) model alone"}
    for key, value in fps.items():
        path, b = key[0], int(key[1:])
        share = f"{value / fps[f'c{b}']:.0%}" if path == "b" else ""
        print(f"| {names[path]} | {b} | {'fp32' if path == 'a' else dtype} | {value:.3g} | "
              f"{value / fps['a1']:.2f}× | {share} | {result['masks_ok'].get(key, '')} |")
    print(f"\nTarget (the issue): (b) ≥ 5× (a) on a GPU. Reproduce: `{command}`")
    return result


if __name__ == "__main__":
    main()
