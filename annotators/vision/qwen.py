"""The Qwen2.5-VL vision tower (DIAL's frozen encoder): only the tower is loaded, frames run batched.

Output: the tower's tokens **after** the patch merger (`pooler_output` of
`Qwen2_5_VisionTransformerPretrainedModel` in transformers 5.x), in raster order of the
merged grid: at 224×224, 8×8 = 64 tokens of `out_hidden_size` (2048 for the 3B tower,
3584 for the 7B). `last_hidden_state` is pre-merger and in window-permuted order.

Loading: the checkpoint's config.json gives the vision config; only tensors named
`visual.*` (hub layout) or `model.visual.*` are read from the safetensors files, so the
language model never enters memory.

Batched path: the processor's pixel patches (rescale, normalise, temporal duplication,
merge-block order) are built on the device from uint8 frames; then, when every attention
window has the same length (224×224: four windows of 64 patches per image), each layer
runs one `scaled_dot_product_attention` over all windows of all images instead of the
stock forward's Python loop over windows; the geometry (window order, rotary angles) is
computed once per image size. `fast_attention=False` runs the stock tower forward on the
same patches (also used when windows differ in length).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from annotators.devices import pick_device
from annotators.vision.base import (
    VISION_ENCODERS,
    VisionEncoderConfig,
    VisionFeatures,
    check_images,
    pooled_grid,
    torch_dtype,
)
from annotators.vision.tensors import (
    Normaliser,
    pool_tokens,
    processor_settings,
    to_device,
)
from annotators.weights import MissingWeightsError, resolve_weights

FAMILY = "Qwen2.5-VL vision tower"
OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)  # Qwen2-VL's image processor defaults
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
WEIGHT_PREFIXES = ("visual.", "model.visual.")  # hub checkpoints / transformers-internal names


def vision_config(folder: Path) -> Any:
    """The vision config of a Qwen2.5-VL checkpoint folder (a full model's, or a saved tower's)."""
    from transformers import Qwen2_5_VLConfig
    from transformers.models.qwen2_5_vl.configuration_qwen2_5_vl import (
        Qwen2_5_VLVisionConfig,
    )

    model_type = json.loads((folder / "config.json").read_text()).get("model_type")
    if model_type == "qwen2_5_vl":
        return Qwen2_5_VLConfig.from_pretrained(folder, local_files_only=True).vision_config
    if model_type == Qwen2_5_VLVisionConfig.model_type:
        return Qwen2_5_VLVisionConfig.from_pretrained(folder, local_files_only=True)
    raise MissingWeightsError(f"{folder} holds a {model_type!r} model, not Qwen2.5-VL (model_type qwen2_5_vl); "
                              "pass a Qwen2.5-VL checkpoint or choose another encoder (siglip, dinov2)")


def tower_state_dict(folder: Path) -> dict[str, torch.Tensor]:
    """The tower's tensors only, read from the folder's safetensors files (names without the prefix)."""
    from safetensors import safe_open

    index = folder / "model.safetensors.index.json"
    if index.exists():
        weight_map = json.loads(index.read_text())["weight_map"]
        files = sorted({f for k, f in weight_map.items() if k.startswith(WEIGHT_PREFIXES)})
    else:
        files = [p.name for p in sorted(folder.glob("*.safetensors"))]
    state: dict[str, torch.Tensor] = {}
    for name in files:
        with safe_open(str(folder / name), "pt", device="cpu") as f:
            for key in f.keys():  # noqa: SIM118 - safe_open is not a mapping
                prefix = next((p for p in WEIGHT_PREFIXES if key.startswith(p)), None)
                if prefix is not None:
                    state[key[len(prefix):]] = f.get_tensor(key)
    if not state:
        raise MissingWeightsError(f"{folder} has no vision-tower tensors (names starting with "
                                  f"{' or '.join(WEIGHT_PREFIXES)}) in {files or 'any *.safetensors file'}")
    return state


def load_vision_tower(model: str, device: str, dtype: torch.dtype) -> tuple[Any, Path]:
    """(the tower in eval mode on `device` in `dtype`, its folder) from a local folder or the HF cache."""
    from transformers.initialization import no_init_weights
    from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import (
        Qwen2_5_VisionTransformerPretrainedModel,
    )

    folder = resolve_weights(model, FAMILY)
    config = vision_config(folder)
    config._attn_implementation = "sdpa"
    with no_init_weights():
        tower = Qwen2_5_VisionTransformerPretrainedModel(config)
    missing, unexpected = tower.load_state_dict(tower_state_dict(folder), strict=False)
    if missing:
        raise MissingWeightsError(f"{folder}: the checkpoint lacks {len(missing)} vision-tower tensors "
                                  f"(e.g. {missing[:3]}); is it a complete Qwen2.5-VL checkpoint?")
    if unexpected:
        raise MissingWeightsError(f"{folder}: tensors the tower does not have: {unexpected[:3]} "
                                  "(a different architecture under the visual. prefix)")
    return tower.to(device=device, dtype=dtype).eval().requires_grad_(False), folder


@dataclass(frozen=True)
class Geometry:
    """What every image of one size shares: window order, window length, rotary angles."""

    grid: tuple[int, int]  # patches (rows, cols)
    window_index: torch.Tensor  # merge units in window order (M,)
    reverse: torch.Tensor  # back to raster order of the merged grid (M,)
    window_length: int | None  # patches per window when all are equal, else None
    cos: torch.Tensor  # S×head_dim, window order
    sin: torch.Tensor

    @property
    def patches(self) -> int:
        return self.grid[0] * self.grid[1]


@VISION_ENCODERS.register("qwen2_5_vl")
class QwenVisionEncoder:
    """Frozen Qwen2.5-VL vision tower; `encode` returns merged tokens (optionally pooled) as float16."""

    default_model = "Qwen/Qwen2.5-VL-3B-Instruct"  # DIAL's encoder (the 3B's tower: 2048-wide tokens)

    def __init__(self, config: VisionEncoderConfig | None = None, tower: Any = None, folder: Path | None = None):
        self.config = config or VisionEncoderConfig()
        self.device = pick_device(self.config.device)
        self.dtype = torch_dtype(self.config, self.device)
        if tower is None:
            tower, folder = load_vision_tower(self.config.model, self.device, self.dtype)
        self.tower = tower
        cfg = tower.config
        self.patch, self.merge, self.temporal = cfg.patch_size, cfg.spatial_merge_size, cfg.temporal_patch_size
        height, width = self.config.image_size
        factor = self.patch * self.merge
        if height % factor or width % factor:
            raise ValueError(f"Qwen2.5-VL needs image sides that are multiples of {factor} (patch {self.patch} × "
                             f"merge {self.merge}); the view size is {height}×{width}")
        self.merged_grid = (height // factor, width // factor)
        self._grid = pooled_grid(self.merged_grid, self.config.pool, "Qwen2.5-VL merged")
        scale, mean, std = processor_settings(folder, OPENAI_CLIP_MEAN, OPENAI_CLIP_STD) if folder else (
            1 / 255, list(OPENAI_CLIP_MEAN), list(OPENAI_CLIP_STD))
        self.normalise = Normaliser(scale, mean, std, self.device)
        self.geometry = self._geometry((height // self.patch, width // self.patch))

    @property
    def grid(self) -> tuple[int, int]:
        return self._grid

    @property
    def dim(self) -> int:
        return int(self.tower.config.out_hidden_size)

    def _geometry(self, grid: tuple[int, int]) -> Geometry:
        from transformers.vision_utils import (
            get_vision_position_ids,
            get_vision_window_index,
        )

        t = self.tower
        grid_thw = torch.tensor([[1, *grid]])
        window_index, cu_windows = get_vision_window_index(grid_thw, spatial_merge_size=self.merge,
                                                           window_size=t.window_size, patch_size=self.patch)
        lengths = torch.diff(cu_windows).unique()
        patches = grid[0] * grid[1]
        uniform = int(lengths[0]) if len(lengths) == 1 and patches % int(lengths[0]) == 0 else None
        position_ids = get_vision_position_ids(grid_thw, self.merge)
        probe = torch.zeros(patches, 1)
        cos, sin = (t.permute_input_for_window_attn(f, window_index, seq_len=patches)
                    for f in t.rotary_pos_emb(probe, position_ids))
        return Geometry(grid, window_index.to(self.device), torch.argsort(window_index).to(self.device), uniform,
                        cos.to(self.device), sin.to(self.device))

    def patchify(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 B×H×W×3 on the device → (B·S)×(3·temporal·patch²) pixel patches, exactly as the image processor
        lays them out: merge blocks in raster order, inside each its 2×2 patches, each patch (channel, time, y, x)."""
        x = self.normalise(images)
        b, c, h, w = x.shape
        p, m = self.patch, self.merge
        x = x.view(b, c, h // (p * m), m, p, w // (p * m), m, p).permute(0, 2, 5, 3, 6, 1, 4, 7)
        x = x.unsqueeze(6).expand(*x.shape[:6], self.temporal, p, p)  # one image = `temporal` identical frames
        return x.reshape(b * (h // p) * (w // p), c * self.temporal * p * p)

    def stock_forward(self, patches: torch.Tensor, batch: int) -> torch.Tensor:
        """The tower's own forward on packed patches → B×M×out (merged tokens, raster order)."""
        grid_thw = torch.tensor([[1, *self.geometry.grid]] * batch, device=patches.device)
        out = self.tower(patches.to(self.dtype), grid_thw=grid_thw).pooler_output
        return out.view(batch, -1, out.shape[-1])

    def fast_forward(self, patches: torch.Tensor, batch: int) -> torch.Tensor:
        """Same result as `stock_forward` for equal-length windows: one attention call per layer."""
        from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import (
            apply_rotary_pos_emb_vision,
        )

        t, geo = self.tower, self.geometry
        s, unit = geo.patches, self.merge**2
        proj = t.patch_embed.proj.weight
        x = F.linear(patches.to(proj.dtype), proj.view(proj.shape[0], -1))  # the Conv3d over one whole patch
        d = x.shape[-1]
        x = x.view(batch, s // unit, unit, d)[:, geo.window_index].reshape(batch, s, d)
        for layer, block in enumerate(t.blocks):
            length = s if layer in t.fullatt_block_indexes else geo.window_length
            attn = block.attn
            heads = attn.num_heads
            q, k, v = attn.qkv(block.norm1(x)).view(batch, s, 3, heads, d // heads).unbind(2)
            q, k = apply_rotary_pos_emb_vision(q, k, geo.cos, geo.sin)
            q, k, v = (z.reshape(batch * s // length, length, heads, -1).transpose(1, 2) for z in (q, k, v))
            o = F.scaled_dot_product_attention(q, k, v, scale=attn.scaling)
            x = x + attn.proj(o.transpose(1, 2).reshape(batch, s, d))
            x = x + block.mlp(block.norm2(x))
        merged = t.merger(x.reshape(batch * s, d)).view(batch, s // unit, -1)
        return merged[:, geo.reverse]

    @torch.inference_mode()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 B×H×W×3 on the device → B×N×D tokens on the device (pooled, in the run dtype)."""
        patches = self.patchify(images)
        fast = self.config.fast_attention and self.geometry.window_length is not None
        merged = (self.fast_forward if fast else self.stock_forward)(patches, len(images))
        return pool_tokens(merged, self.merged_grid, self.config.pool)

    def encode(self, images: np.ndarray) -> VisionFeatures:
        check_images(images, self.config.image_size)
        parts = []
        for start in range(0, len(images), self.config.batch_size):
            tokens = self.forward(to_device(images[start : start + self.config.batch_size], self.device))
            parts.append(tokens.to(torch.float16).cpu())
        if not parts:
            return VisionFeatures(np.zeros((0, self._grid[0] * self._grid[1], self.dim), np.float16), self._grid)
        return VisionFeatures(torch.cat(parts).numpy(), self._grid)
