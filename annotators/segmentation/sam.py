"""SAM 2 / SAM 1 through transformers: a mask from a box prompt, batched, offline, bf16 on CUDA.

Whatever the folder holds is loaded: a SAM 2 checkpoint (config `model_type` sam2 or
sam2_video, as the hub's facebook/sam2.1-hiera-* are) → `Sam2Model`, a SAM 1 checkpoint
(`sam`) → `SamModel`.

Pre- and post-processing run on the model's device with the processor's own settings
(mean, std, rescale factor from preprocessor_config.json, or from an injected processor),
like the Grounding DINO detector: transformers' Sam2 image and video processors require
torchvision, which the default environment does not install, so they cannot even be built
here. The arithmetic is the processors':
- SAM 2: resize to image_size × image_size (bilinear, antialiased), boxes scaled by
  image_size / W and image_size / H; masks bilinearly upsampled to the original size, > 0.
- SAM 1: longest edge to image_size (aspect kept), zero-padded bottom/right to a square,
  boxes scaled by the resize ratio; masks upsampled to the padded square, the padding
  cropped, upsampled to the original size, > 0 (SamImageProcessor.post_process_masks).

Box prompts are run with multimask_output=False: a box is not ambiguous the way a single
click is (SAM's own guidance for box prompts), and SAM 2's single-output head already falls
back to the most stable of its three masks when the single one is unstable
(dynamic_multimask_via_stability). The score is the predicted IoU of the returned mask.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from annotators.devices import pick_device
from annotators.segmentation.base import SEGMENTERS, MaskResult, SegmenterConfig
from annotators.weights import resolve_weights

FAMILY = "SAM"
SAM2_TYPES = ("sam2", "sam2_video")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)



def autocast_dtype(device: str, dtype: str) -> torch.dtype | None:
    """bf16 (or the configured dtype) on CUDA; None (fp32) elsewhere."""
    if not device.startswith("cuda") or dtype in ("float32", "fp32"):
        return None
    return getattr(torch, dtype)


@contextlib.contextmanager
def inference(device: str, dtype: str) -> Iterator[None]:
    """inference_mode, plus bf16 autocast on CUDA."""
    amp = autocast_dtype(device, dtype)
    with torch.inference_mode(), torch.autocast("cuda", dtype=amp or torch.float32, enabled=amp is not None):
        yield


def model_type(path: str | Path) -> str:
    return json.loads((Path(path) / "config.json").read_text()).get("model_type", "")


@dataclass(frozen=True)
class PixelSettings:
    """The processor's normalisation: pixel * scale → (x - mean) / std."""

    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    rescale: float = 1 / 255

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PixelSettings:
        rescale = float(d.get("rescale_factor", 1 / 255)) if d.get("do_rescale", True) else 1.0
        if not d.get("do_normalize", True):
            return cls((0.0, 0.0, 0.0), (1.0, 1.0, 1.0), rescale)
        return cls(tuple(d.get("image_mean") or IMAGENET_MEAN), tuple(d.get("image_std") or IMAGENET_STD), rescale)

    @classmethod
    def from_folder(cls, path: str | Path) -> PixelSettings:
        """From preprocessor_config.json (or the video one); the processors' defaults when neither exists."""
        for name in ("preprocessor_config.json", "video_preprocessor_config.json"):
            file = Path(path) / name
            if file.exists():
                return cls.from_dict(json.loads(file.read_text()))
        return cls()

    @classmethod
    def from_processor(cls, processor: Any) -> PixelSettings:
        """From a transformers processor (its image_processor) or an image processor."""
        ip = getattr(processor, "image_processor", processor)
        return cls.from_dict({k: getattr(ip, k) for k in ("image_mean", "image_std", "rescale_factor", "do_rescale",
                                                          "do_normalize") if getattr(ip, k, None) is not None})


class Pixels:
    """uint8 H×W×3 frames → normalised model input on the device (resize on the device, one upload of uint8)."""

    def __init__(self, settings: PixelSettings, device: str):
        self.device = device
        mean = torch.tensor(settings.mean, dtype=torch.float32).view(1, 3, 1, 1)
        std = torch.tensor(settings.std, dtype=torch.float32).view(1, 3, 1, 1)
        self.scale_ = (settings.rescale / std).to(device)
        self.shift_ = (-mean / std).to(device)

    def __call__(self, image: np.ndarray, size: tuple[int, int], pad_to: tuple[int, int] | None = None) -> torch.Tensor:
        """1×3×h×w (or padded to `pad_to`, zeros after normalisation, as SamImageProcessor pads)."""
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected an H×W×3 RGB image, got shape {image.shape}")
        x = torch.from_numpy(np.ascontiguousarray(image)).to(self.device, non_blocking=True)
        x = x.permute(2, 0, 1).unsqueeze(0).float()
        if tuple(x.shape[-2:]) != tuple(size):
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
        x = x * self.scale_ + self.shift_
        if pad_to is not None and tuple(pad_to) != tuple(size):
            x = F.pad(x, (0, pad_to[1] - size[1], 0, pad_to[0] - size[0]))
        return x


def upsample_masks(logits: torch.Tensor, original: tuple[int, int], square: int | None = None,
                   resized: tuple[int, int] | None = None) -> torch.Tensor:
    """Low-res mask logits N×1×h×w → bool N×H×W at the original size (the processors' post_process_masks).

    SAM 2: straight to the original size. SAM 1 (`square`, `resized` given): to the padded square,
    crop the padding, then to the original size.
    """
    x = logits.float()
    if square is not None and resized is not None:
        x = F.interpolate(x, (square, square), mode="bilinear", align_corners=False)
        x = x[..., : resized[0], : resized[1]]
    x = F.interpolate(x, original, mode="bilinear", align_corners=False)
    return x[:, 0] > 0


def longest_edge_shape(height: int, width: int, longest: int) -> tuple[int, int]:
    """SamImageProcessor's resize rule: the longest edge to `longest`, rounded half up."""
    scale = longest / max(height, width)
    return int(height * scale + 0.5), int(width * scale + 0.5)


def load_sam(model: str, device: str = "cpu") -> tuple[Any, PixelSettings]:
    """(Sam2Model or SamModel in eval mode on `device`, the processor's pixel settings) from a folder or the HF cache."""
    from transformers import Sam2Model, SamModel

    path = resolve_weights(model, FAMILY)
    kind = model_type(path)
    if kind in SAM2_TYPES:
        cls = Sam2Model
    elif kind == "sam":
        cls = SamModel
    else:
        raise ValueError(f"{path} holds a {kind!r} model, not SAM 2 (sam2, sam2_video) or SAM (sam)")
    from transformers.utils import logging

    verbosity = logging.get_verbosity()
    logging.set_verbosity_error()  # "a sam2_video checkpoint into Sam2Model" is the documented way to load it
    try:
        net = cls.from_pretrained(str(path), local_files_only=True)
    finally:
        logging.set_verbosity(verbosity)
    return net.to(device).eval(), PixelSettings.from_folder(path)


@SEGMENTERS.register("transformers")
class SamSegmenter:
    """Batched box-prompted SAM 2 (or SAM 1): one mask per image at its full resolution, score = predicted IoU."""

    def __init__(self, config: SegmenterConfig | None = None, model: Any = None, processor: Any = None):
        self.config = config or SegmenterConfig()
        self.device = pick_device(self.config.device)
        if model is None:
            model, settings = load_sam(self.config.model, self.device)
        else:
            settings = PixelSettings.from_processor(processor) if processor is not None else PixelSettings()
        self.model, self.processor = model, processor
        self.is_sam2 = model.config.model_type in SAM2_TYPES
        size = model.config.image_size if self.is_sam2 else model.config.vision_config.image_size
        self.size = int(size[0] if isinstance(size, (list, tuple)) else size)
        self.pixels = Pixels(settings, self.device)

    def geometry(self, height: int, width: int) -> tuple[int, int]:
        """The (h, w) an image of this size is resized to before padding."""
        return (self.size, self.size) if self.is_sam2 else longest_edge_shape(height, width, self.size)

    def inputs(self, images: Sequence[np.ndarray], boxes: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        """pixel_values B×3×S×S and input_boxes B×1×4 in model coordinates, on the device."""
        pixels, scaled = [], []
        for image, box in zip(images, boxes, strict=True):
            h, w = image.shape[:2]
            rh, rw = self.geometry(h, w)
            pixels.append(self.pixels(image, (rh, rw), pad_to=(self.size, self.size)))
            box = np.asarray(box, dtype=np.float64).reshape(4)
            if not np.isfinite(box).all():
                raise ValueError(f"box prompt must be finite, got {box}")
            scaled.append(box * np.array([rw / w, rh / h, rw / w, rh / h]))
        input_boxes = torch.tensor(np.stack(scaled), dtype=torch.float32, device=self.device)[:, None, :]
        return torch.cat(pixels), input_boxes

    def forward(self, pixel_values: torch.Tensor, input_boxes: torch.Tensor) -> Any:
        with inference(self.device, self.config.dtype):
            return self.model(pixel_values=pixel_values, input_boxes=input_boxes, multimask_output=False)

    def postprocess(self, outputs: Any, shapes: Sequence[tuple[int, int]]) -> list[MaskResult]:
        with torch.inference_mode():
            logits = outputs.pred_masks[:, 0]  # B×1×h×w (one box per image, one mask per box)
            scores = outputs.iou_scores[:, 0, 0].float().cpu().numpy()
            results = []
            for i, (h, w) in enumerate(shapes):
                if self.is_sam2:
                    mask = upsample_masks(logits[i : i + 1], (h, w))
                else:
                    mask = upsample_masks(logits[i : i + 1], (h, w), self.size, self.geometry(h, w))
                results.append(MaskResult(mask[0].cpu().numpy(), float(scores[i])))
        return results

    def segment(self, images: Sequence[np.ndarray], boxes: Sequence[np.ndarray]) -> list[MaskResult]:
        if len(images) != len(boxes):
            raise ValueError(f"segment() got {len(images)} images and {len(boxes)} boxes")
        results: list[MaskResult] = []
        step = self.config.batch_size
        for start in range(0, len(images), step):
            batch, prompts = images[start : start + step], boxes[start : start + step]
            pixel_values, input_boxes = self.inputs(batch, prompts)
            outputs = self.forward(pixel_values, input_boxes)
            results.extend(self.postprocess(outputs, [im.shape[:2] for im in batch]))
        return results

