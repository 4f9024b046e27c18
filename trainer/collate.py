"""Per-card row decoding (in the DataLoader workers) and collation into tensors.

Column handling follows the output card's types, so every card gets a collate
without per-card code:
- binary (JPEG) → uint8 B×3×H×W, resized to the spec's size (uint8 keeps the
  host→device copy 4× smaller than float; the model normalises on the GPU);
- struct<size,counts> (COCO RLE) → uint8 B×H×W masks via pycocotools;
- numeric lists → stacked tensors, or padded B×T(×D) plus a `<name>_mask` (B×T bool)
  when lengths differ (trajectories);
- nullable columns → zeros where null plus `<name>_valid` (B bool);
- strings listed in `byte_columns` → uint8 bytes B×L plus `<name>_mask`
  (tokenizer-free text); other strings and string lists stay Python lists.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import pyarrow as pa
import torch

from datasets_cards import OutputCard
from datasets_cards.codecs import decode_image
from datasets_cards.codecs import rle_to_mask as codec_rle_to_mask
from datasets_cards.output import parse_type


@dataclass(frozen=True)
class CollateSpec:
    image_size: tuple[int, int] = (128, 128)  # (H, W) every image column is resized to
    image_sizes: dict[str, tuple[int, int]] = field(default_factory=dict)  # per-column override, e.g. crop
    mask_size: tuple[int, int] | None = None  # (H, W) RLE masks are resized to; None: image_size
    byte_columns: dict[str, int] = field(default_factory=dict)  # string column → max bytes kept


def _is_rle(t: pa.DataType) -> bool:
    return pa.types.is_struct(t) and {t.field(i).name for i in range(t.num_fields)} == {"size", "counts"}


def decode_jpeg(data: bytes, size: tuple[int, int]) -> np.ndarray:
    """JPEG/PNG bytes → uint8 H×W×3 RGB resized to `size` (H, W)."""
    image = decode_image(data)
    if image.shape[:2] != tuple(size):
        image = cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_AREA)
    return image


def rle_to_mask(rle: dict, size: tuple[int, int]) -> np.ndarray:
    """COCO RLE {size: [h, w], counts: str} → uint8 mask resized (nearest) to `size` (H, W)."""
    mask = codec_rle_to_mask(rle).astype(np.uint8)
    if mask.shape != tuple(size):
        mask = cv2.resize(mask, (size[1], size[0]), interpolation=cv2.INTER_NEAREST)
    return mask.astype(np.uint8)


class CardCollate:
    """`decode_row` for the workers, `__call__` as the DataLoader's collate_fn."""

    def __init__(self, card: OutputCard, spec: CollateSpec | None = None):
        self.card, self.spec = card, spec or CollateSpec()
        self.types = {c.name: parse_type(c.type) for c in card.columns}
        self.images = {n for n, t in self.types.items() if pa.types.is_binary(t)}
        self.masks = {n for n, t in self.types.items() if _is_rle(t)}
        for name in self.spec.byte_columns:
            if not pa.types.is_string(self.types.get(name, pa.null())):
                raise ValueError(f"byte_columns: {name!r} is not a string column of card {card.name!r}")

    def image_size(self, name: str) -> tuple[int, int]:
        return tuple(self.spec.image_sizes.get(name, self.spec.image_size))

    def decode_row(self, row: dict[str, Any]) -> dict[str, Any]:
        out = dict(row)
        for name, value in row.items():
            if value is None:
                continue
            if name in self.images:
                out[name] = decode_jpeg(value, self.image_size(name))
            elif name in self.masks:
                out[name] = rle_to_mask(value, self.spec.mask_size or self.spec.image_size)
            elif name in self.spec.byte_columns:
                out[name] = np.frombuffer(value.encode()[: self.spec.byte_columns[name]], np.uint8).copy()
        return out

    def _empty(self, name: str) -> np.ndarray:
        if name in self.images:
            return np.zeros((*self.image_size(name), 3), np.uint8)
        if name in self.masks:
            return np.zeros(self.spec.mask_size or self.spec.image_size, np.uint8)
        return np.zeros((0,), np.float32)

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        if not rows:
            raise ValueError("cannot collate an empty batch")
        batch: dict[str, Any] = {}
        for name in rows[0]:
            values = [r[name] for r in rows]
            nulls = [v is None for v in values]
            if any(nulls):
                batch[f"{name}_valid"] = torch.tensor([not n for n in nulls])
                like = next((v for v in values if v is not None), None)
                if isinstance(like, np.ndarray) or like is None:
                    fill = np.zeros_like(like) if like is not None else self._empty(name)
                else:
                    fill = type(like)()  # 0, 0.0, False, ""

                values = [fill if v is None else v for v in values]
            first = values[0]
            if isinstance(first, np.ndarray):
                self._collate_arrays(batch, name, values)
            elif isinstance(first, bool):
                batch[name] = torch.tensor(values, dtype=torch.bool)
            elif isinstance(first, int):
                batch[name] = torch.tensor(values, dtype=torch.int64)
            elif isinstance(first, float):
                batch[name] = torch.tensor(values, dtype=torch.float32)
            else:
                batch[name] = values  # strings, lists of strings
        return batch

    def _collate_arrays(self, batch: dict[str, Any], name: str, values: list[np.ndarray]) -> None:
        dtype = np.float32 if values[0].dtype.kind == "f" else values[0].dtype
        arrays = [np.asarray(v, dtype=dtype) for v in values]
        variable = name in self.spec.byte_columns or pa.types.is_list(self.types.get(name, pa.null()))
        if not variable and all(a.shape == arrays[0].shape for a in arrays):
            stacked = torch.from_numpy(np.stack(arrays))  # np.stack copies: writable
        else:  # variable length along the first axis: pad and say which steps are real
            length = max(a.shape[0] for a in arrays)
            tail = next((a.shape[1:] for a in arrays if a.shape[0] > 0), arrays[0].shape[1:])
            stacked = torch.zeros((len(arrays), length, *tail), dtype=torch.from_numpy(np.zeros(0, arrays[0].dtype)).dtype)
            mask = torch.zeros((len(arrays), length), dtype=torch.bool)
            for i, a in enumerate(arrays):
                if a.shape[0]:
                    stacked[i, : a.shape[0]] = torch.from_numpy(a.reshape(a.shape[0], *tail).copy())
                mask[i, : a.shape[0]] = True
            batch[f"{name}_mask"] = mask
        if name in self.images:
            stacked = stacked.permute(0, 3, 1, 2).contiguous()
        batch[name] = stacked


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """A collated batch on `device` (tensors copied without blocking; other values as they are)."""
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
