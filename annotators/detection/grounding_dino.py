"""Grounding DINO through transformers: offline loading, batched GPU pre-processing, bf16, vectorised top-k.

Only the text goes through the Hugging Face processor (tokenisation is cheap).
Images are resized and normalised on the model's device with the processor's
own settings (shortest/longest edge, mean, std), so a batch costs one
host-to-device copy of uint8 pixels instead of a CPU resize per image, and
the detections are reduced to the best `max_detections` per image on the device.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from annotators.detection.base import DETECTORS, DetectorConfig
from annotators.detection.core import Detections
from annotators.devices import pick_device
from annotators.weights import resolve_weights

FAMILY = "Grounding DINO"


def load_grounding_dino(model: str, device: str = "cpu") -> tuple[Any, Any]:
    """(model in eval mode on `device`, processor) from a local folder or the HF cache."""
    from transformers import AutoModelForZeroShotObjectDetection, AutoProcessor

    path = str(resolve_weights(model, FAMILY))
    processor = AutoProcessor.from_pretrained(path, local_files_only=True)
    net = AutoModelForZeroShotObjectDetection.from_pretrained(path, local_files_only=True)
    return net.to(device).eval(), processor


def resized_shape(height: int, width: int, shortest_edge: int, longest_edge: int) -> tuple[int, int]:
    """The processor's resize rule: shortest edge to `shortest_edge` unless the longest would pass `longest_edge`."""
    from transformers.image_transforms import get_size_with_aspect_ratio

    return tuple(get_size_with_aspect_ratio((height, width), shortest_edge, longest_edge))  # type: ignore[return-value]


@DETECTORS.register("transformers")
class GroundingDinoDetector:
    """Batched open-vocabulary detection; one prompt per image, best boxes first."""

    def __init__(self, config: DetectorConfig | None = None, model: Any = None, processor: Any = None):
        self.config = config or DetectorConfig()
        self.device = pick_device(self.config.device)
        if model is None or processor is None:
            model, processor = load_grounding_dino(self.config.model, self.device)
        self.model, self.processor = model, processor
        ip = processor.image_processor
        size = ip.size if isinstance(ip.size, dict) else ip.size.__dict__
        self.shortest_edge = int(size["shortest_edge"])
        self.longest_edge = int(size.get("longest_edge") or size["shortest_edge"])
        scale = float(getattr(ip, "rescale_factor", 1 / 255)) if getattr(ip, "do_rescale", True) else 1.0
        mean = torch.tensor(ip.image_mean, dtype=torch.float32).view(1, 3, 1, 1)
        std = torch.tensor(ip.image_std, dtype=torch.float32).view(1, 3, 1, 1)
        # pixel * scale_ + shift_ == (pixel * rescale - mean) / std, in one fused op per batch
        self.scale_ = (scale / std).to(self.device)
        self.shift_ = (-mean / std).to(self.device)
        tok = processor.tokenizer
        self.special_ids = torch.tensor(
            sorted({tok.cls_token_id, tok.sep_token_id, tok.pad_token_id, *tok.convert_tokens_to_ids(["."])}),
            device=self.device,
        )

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        """bf16 (or the configured dtype) on CUDA; None (fp32) elsewhere."""
        if not self.device.startswith("cuda") or self.config.dtype in ("float32", "fp32"):
            return None
        return getattr(torch, self.config.dtype)

    def pixel_batch(self, images: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 H×W×3 images → normalised, resized, bottom/right-padded pixel_values and pixel_mask on the device."""
        resized = []
        for image in images:
            h, w = image.shape[:2]
            oh, ow = resized_shape(h, w, self.shortest_edge, self.longest_edge)
            x = torch.from_numpy(np.ascontiguousarray(image)).to(self.device, non_blocking=True)
            x = x.permute(2, 0, 1).unsqueeze(0).float()
            if (oh, ow) != (h, w):
                x = F.interpolate(x, size=(oh, ow), mode="bilinear", align_corners=False, antialias=True)
            resized.append(x)
        height = max(x.shape[-2] for x in resized)
        width = max(x.shape[-1] for x in resized)
        pixels = torch.zeros((len(images), 3, height, width), device=self.device)
        mask = torch.zeros((len(images), height, width), dtype=torch.long, device=self.device)
        for i, x in enumerate(resized):
            h, w = x.shape[-2:]
            pixels[i, :, :h, :w] = x[0] * self.scale_[0] + self.shift_[0]
            mask[i, :h, :w] = 1
        return pixels, mask

    def text_batch(self, phrases: Sequence[str]) -> dict[str, torch.Tensor]:
        text = self.processor.tokenizer(list(phrases), padding="longest", return_tensors="pt")
        return {k: v.to(self.device) for k, v in text.items()}

    @torch.inference_mode()
    def forward(self, pixels: torch.Tensor, mask: torch.Tensor, text: dict[str, torch.Tensor]) -> Any:
        dtype = self.autocast_dtype
        with torch.autocast(device_type="cuda", dtype=dtype or torch.float32, enabled=dtype is not None):
            return self.model(pixel_values=pixels, pixel_mask=mask, **text)

    @torch.inference_mode()
    def postprocess(self, outputs: Any, input_ids: torch.Tensor, sizes: Sequence[tuple[int, int]]) -> list[Detections]:
        """Top `max_detections` boxes per image above `box_threshold` whose phrase matched above `text_threshold`.

        Same scores and boxes as the processor's post_process_grounded_object_detection
        (score = max token probability, boxes scaled to the original size), computed
        for the whole batch on the device with one copy back.
        """
        probs = outputs.logits.float().sigmoid()  # B×Q×L (L = padded text length)
        scores = probs.max(dim=-1).values
        length = input_ids.shape[1]
        is_phrase_token = ~torch.isin(input_ids, self.special_ids)  # B×length
        matched = ((probs[..., :length] > self.config.text_threshold) & is_phrase_token[:, None, :]).any(-1)
        scores = torch.where(matched & (scores > self.config.box_threshold), scores, torch.zeros_like(scores))
        k = min(self.config.max_detections, scores.shape[1])
        top, index = scores.topk(k, dim=1)
        cxcywh = outputs.pred_boxes.float().gather(1, index[..., None].expand(-1, -1, 4))
        xyxy = torch.cat([cxcywh[..., :2] - cxcywh[..., 2:] / 2, cxcywh[..., :2] + cxcywh[..., 2:] / 2], dim=-1)
        hw = torch.tensor([[w, h, w, h] for h, w in sizes], dtype=torch.float32, device=xyxy.device)
        xyxy = xyxy.clamp(0, 1) * hw[:, None, :]
        top, xyxy = top.cpu().numpy(), xyxy.cpu().numpy()
        out = []
        for i in range(len(sizes)):
            keep = top[i] > 0
            out.append(Detections(xyxy[i][keep], top[i][keep], np.zeros(int(keep.sum()), np.int64)))
        return out

    def detect(self, images: Sequence[np.ndarray], phrases: Sequence[str]) -> list[Detections]:
        if len(images) != len(phrases):
            raise ValueError(f"detect() got {len(images)} images and {len(phrases)} phrases")
        results: list[Detections] = []
        step = self.config.batch_size
        for start in range(0, len(images), step):
            batch, prompts = images[start : start + step], phrases[start : start + step]
            pixels, mask = self.pixel_batch(batch)
            text = self.text_batch(prompts)
            outputs = self.forward(pixels, mask, text)
            results.extend(self.postprocess(outputs, text["input_ids"], [im.shape[:2] for im in batch]))
        return results
