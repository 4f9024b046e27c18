"""Small reference models: la (text + state → action chunk, flow matching), gaze, future, and pixel.

future: DIAL's System-1 in its decoupled warm-up (dial.txt §3.3–3.4), a latent inverse
dynamics model: self-attention over the frozen tokens of the current frame and of frame
t+H and one token of the masked state, then the flow-matching head over the action chunk
cross-attending to that fused context (DIAL feeds the state into its DiT's sequence;
here it is a context token, the head is the la recipe's).

gaze reconstruction target: a *denoising head over the downsampled gaze crop in
pixel space* (crop resized to `crop_size`, flow-matching velocity prediction
conditioned on the full-image tokens). Why not latents: ReconVLA denoises the
latents of a frozen pretrained VAE, and this suite has no pretrained weights
offline; a VAE trained jointly would give a moving, collapsible target. A small
downsampled crop is a fixed target, cheap to store in the batch, and denoising
(rather than regressing pixels) keeps the paper's point that the model should
capture the region's content, not clone RGB values.

pixel: PixelVLA (pixelvla.txt §4.1) scaled down. A two-stage conv trunk gives image features at
two scales; the pixel-aware encoder turns the target mask into tokens twice over: a SAM-style
conv downscaling of the mask (one token per image patch) and the paper's Eq. (3), the image
features under the mask averaged per scale, projected and summed, through an MLP (one token).
The prompt-aware encoder is SAM's: random-Fourier positional embedding of the normalised
coordinates (a fixed Gaussian buffer) plus a learned embedding per prompt type, then an MLP;
padding prompts are masked out of attention. Learned chunk queries attend over all of it
(with the instruction bytes and the state), and a residual MLP decoder (the paper's
continuous action decoder) maps each query to one step of the chunk (L1 loss in the recipe).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class ModelConfig:
    dim: int = 128
    layers: int = 2
    heads: int = 4
    max_text_bytes: int = 128
    horizon: int = 8  # la, pixel: action chunk length (PixelVLA's N_c = 8, pixelvla.txt §5.1)
    vision_tokens: int = 4  # la: learned placeholders standing for the masked image
    image_size: int = 64  # gaze
    patch: int = 8  # gaze image patch size
    crop_size: int = 16  # gaze: reconstruction target side
    crop_patch: int = 4
    flow_steps: int = 10  # Euler steps when sampling an action chunk
    foresight: int = 16  # future: H, the frame whose tokens condition step t (DIAL; clipped at the episode end)
    chunk: int = 16  # future: actions predicted per sample (DIAL's 16-step chunk)
    max_points: int = 8  # pixel: point prompts kept per row (the pipeline's num_points); fewer are padded
    max_lines: int = 3  # pixel: line-segment prompts kept per row (the pipeline's num_lines)
    action_blocks: int = 2  # pixel: residual blocks of the continuous action decoder (PixelVLA's N_r)

    def validate(self) -> None:
        if self.dim % self.heads:
            raise ValueError(f"dim {self.dim} must be divisible by heads {self.heads}")
        if self.foresight < 0 or self.chunk < 1:
            raise ValueError(f"foresight must be >= 0 and chunk >= 1, got {self.foresight}, {self.chunk}")
        if self.image_size % self.patch or self.crop_size % self.crop_patch:
            raise ValueError("image_size/patch and crop_size/crop_patch must divide exactly")
        if min(self.max_points, self.max_lines, self.action_blocks) < 0:
            raise ValueError(f"max_points, max_lines and action_blocks must be >= 0, got "
                             f"{self.max_points}, {self.max_lines}, {self.action_blocks}")


def _encoder(cfg: ModelConfig) -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(cfg.dim, cfg.heads, 4 * cfg.dim, dropout=0.0, batch_first=True, norm_first=True)
    return nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)


def _decoder(cfg: ModelConfig) -> nn.TransformerDecoder:
    layer = nn.TransformerDecoderLayer(cfg.dim, cfg.heads, 4 * cfg.dim, dropout=0.0, batch_first=True, norm_first=True)
    return nn.TransformerDecoder(layer, cfg.layers)


def time_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    half = dim // 2
    freqs = torch.exp(-torch.arange(half, device=t.device) * (torch.log(torch.tensor(1000.0)) / half))
    angles = t[:, None].float() * 1000.0 * freqs[None]
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


class ByteEncoder(nn.Module):
    """Tokenizer-free text encoder: one token per UTF-8 byte."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.embed = nn.Embedding(256, cfg.dim)
        self.pos = nn.Parameter(torch.zeros(cfg.max_text_bytes, cfg.dim))

    def forward(self, text: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.embed(text.long()) + self.pos[: text.shape[1]], mask


class FlowHead(nn.Module):
    """Velocity field v(x_t, t | context) over a sequence of tokens (rectified flow)."""

    def __init__(self, cfg: ModelConfig, width: int, length: int):
        super().__init__()
        self.dim = cfg.dim
        self.inp, self.out = nn.Linear(width, cfg.dim), nn.Linear(cfg.dim, width)
        self.pos = nn.Parameter(torch.zeros(length, cfg.dim))
        self.decoder = _decoder(cfg)

    def forward(self, x: torch.Tensor, t: torch.Tensor, context: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        h = self.inp(x) + self.pos + time_embedding(t, self.dim)[:, None]
        return self.out(self.decoder(h, context, memory_key_padding_mask=pad))

    def loss(self, target: torch.Tensor, context: torch.Tensor, pad: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """Mean squared velocity error; weight (B×L) says which target tokens count."""
        noise = torch.randn_like(target)
        t = torch.rand(target.shape[0], device=target.device)
        x_t = (1 - t[:, None, None]) * noise + t[:, None, None] * target
        err = (self.forward(x_t, t, context, pad).float() - (target - noise)) ** 2
        return (err.mean(-1) * weight).sum() / weight.sum().clamp(min=1)

    @torch.no_grad()
    def sample(self, shape: tuple[int, ...], context: torch.Tensor, pad: torch.Tensor, steps: int) -> torch.Tensor:
        x = torch.randn(shape, device=context.device)
        for i in range(steps):
            t = torch.full((shape[0],), i / steps, device=context.device)
            x = x + self.forward(x, t, context, pad).float() / steps
        return x


class LaPolicy(nn.Module):
    """LA pretraining: instruction bytes + robot state (+ masked vision) → action chunk."""

    def __init__(self, cfg: ModelConfig, state_dim: int, action_dim: int):
        super().__init__()
        self.cfg = cfg
        self.text = ByteEncoder(cfg)
        self.state = nn.Linear(state_dim, cfg.dim)
        self.vision_mask = nn.Parameter(torch.zeros(cfg.vision_tokens, cfg.dim))
        self.encoder = _encoder(cfg)
        self.head = FlowHead(cfg, action_dim, cfg.horizon)

    def context(self, text, text_mask, state) -> tuple[torch.Tensor, torch.Tensor]:
        tokens, mask = self.text(text, text_mask)
        b = state.shape[0]
        tokens = torch.cat([self.vision_mask.expand(b, -1, -1), self.state(state)[:, None], tokens], 1)
        ones = torch.ones(b, self.cfg.vision_tokens + 1, dtype=torch.bool, device=state.device)
        pad = ~torch.cat([ones, mask], 1)
        return self.encoder(tokens, src_key_padding_mask=pad), pad

    def loss(self, text, text_mask, state, chunk, chunk_mask) -> torch.Tensor:
        ctx, pad = self.context(text, text_mask, state)
        return self.head.loss(chunk, ctx, pad, chunk_mask.float())

    def sample(self, text, text_mask, state) -> torch.Tensor:
        ctx, pad = self.context(text, text_mask, state)
        return self.head.sample((state.shape[0], self.cfg.horizon, self.head.out.out_features), ctx, pad, self.cfg.flow_steps)


class GazePolicy(nn.Module):
    """Image + instruction + state → action (MSE), plus gaze-crop denoising from the image tokens."""

    def __init__(self, cfg: ModelConfig, state_dim: int, action_dim: int):
        super().__init__()
        self.cfg = cfg
        self.patchify = nn.Conv2d(3, cfg.dim, cfg.patch, cfg.patch)
        self.image_pos = nn.Parameter(torch.zeros((cfg.image_size // cfg.patch) ** 2, cfg.dim))
        self.text = ByteEncoder(cfg)
        self.state = nn.Linear(state_dim, cfg.dim)
        self.encoder = _encoder(cfg)
        self.action = nn.Sequential(nn.Linear(cfg.dim, cfg.dim), nn.GELU(), nn.Linear(cfg.dim, action_dim))
        self.recon = FlowHead(cfg, 3 * cfg.crop_patch**2, (cfg.crop_size // cfg.crop_patch) ** 2)

    def forward(self, image, text, text_mask, state):
        img = self.patchify(image.float() / 127.5 - 1).flatten(2).transpose(1, 2) + self.image_pos
        txt, mask = self.text(text, text_mask)
        tokens = torch.cat([self.state(state)[:, None], img, txt], 1)
        keep = torch.ones(tokens.shape[0], 1 + img.shape[1], dtype=torch.bool, device=image.device)
        out = self.encoder(tokens, src_key_padding_mask=~torch.cat([keep, mask], 1))
        return self.action(out[:, 0]), out[:, 1 : 1 + img.shape[1]]  # action, full-image tokens

    def crop_patches(self, crop: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(crop.float() / 127.5 - 1, size=self.cfg.crop_size, mode="area")
        return F.pixel_unshuffle(x, self.cfg.crop_patch).flatten(2).transpose(1, 2)


class FuturePolicy(nn.Module):
    """Current + future frozen tokens and the masked state → action chunk (latent inverse dynamics, flow matching)."""

    def __init__(self, cfg: ModelConfig, tokens: int, feature_dim: int, state_width: int, action_width: int):
        super().__init__()
        self.cfg = cfg
        self.feature = nn.Sequential(nn.LayerNorm(feature_dim), nn.Linear(feature_dim, cfg.dim))
        self.pos = nn.Parameter(torch.zeros(tokens, cfg.dim))
        self.kind = nn.Parameter(torch.zeros(3, cfg.dim))  # current frame, future frame, state
        self.state = nn.Linear(2 * state_width, cfg.dim)  # values and their validity mask
        self.encoder = _encoder(cfg)
        self.head = FlowHead(cfg, action_width, cfg.chunk)

    def context(self, current: torch.Tensor, future: torch.Tensor, state: torch.Tensor,
                state_valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        now = self.feature(current) + self.pos + self.kind[0]
        then = self.feature(future) + self.pos + self.kind[1]
        valid = state_valid.float()
        proprio = self.state(torch.cat([state * valid, valid], -1))[:, None] + self.kind[2]
        tokens = torch.cat([now, then, proprio], 1)
        pad = torch.zeros(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
        return self.encoder(tokens), pad

    def loss(self, current, future, state, state_valid, chunk, step_mask, action_valid,
             generator: torch.Generator | None = None) -> torch.Tensor:
        """Mean squared velocity error over the real steps and dims of the chunk (B×C×A, masks B×C and B×A)."""
        ctx, pad = self.context(current, future, state, state_valid)
        noise = torch.randn(chunk.shape, device=chunk.device, generator=generator)
        t = torch.rand(chunk.shape[0], device=chunk.device, generator=generator)
        x_t = (1 - t[:, None, None]) * noise + t[:, None, None] * chunk
        err = (self.head(x_t, t, ctx, pad).float() - (chunk - noise)) ** 2
        weight = step_mask.float()[:, :, None] * action_valid.float()[:, None, :]
        return (err * weight).sum() / weight.sum().clamp(min=1)

    def sample(self, current, future, state, state_valid) -> torch.Tensor:
        ctx, pad = self.context(current, future, state, state_valid)
        shape = (state.shape[0], self.cfg.chunk, self.head.out.out_features)
        return self.head.sample(shape, ctx, pad, self.cfg.flow_steps)


# ---- pixel (PixelVLA §4.1) ------------------------------------------------------------------------------

PROMPT_TYPES = ("point", "line_start", "line_end", "box_corner_1", "box_corner_2", "padding")
POINT, LINE_START, LINE_END, BOX_CORNER_1, BOX_CORNER_2, PADDING = range(len(PROMPT_TYPES))
MASK_CHANNELS = 16  # SAM's mask_in_chans: the mask downscaling convs have 4, then 16 channels


class PositionEmbeddingRandom(nn.Module):
    """SAM's positional encoding by random spatial frequencies: (x, y) in [0, 1] → sin and cos of
    2π (2c − 1) G, G a fixed 2×F Gaussian matrix (a buffer: saved with the model, never trained)."""

    def __init__(self, num_feats: int, scale: float = 1.0):
        super().__init__()
        self.register_buffer("gaussian", scale * torch.randn(2, num_feats))

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        """…×2 normalised coordinates → …×2F (in float32 under autocast: bf16 angles would blur nearby points)."""
        with torch.autocast(coords.device.type, enabled=False):
            angles = 2 * math.pi * ((2 * coords.float() - 1) @ self.gaussian.float())
            return torch.cat([angles.sin(), angles.cos()], -1)


class PromptEncoder(nn.Module):
    """SAM-style sparse prompt encoder: positional embedding of each prompt's normalised coordinates plus a
    learned embedding of its type (PROMPT_TYPES), through an MLP → one token per prompt. Padding prompts get no
    positional embedding, come out as zeros and are flagged in `pad` (the caller masks them out of attention)."""

    def __init__(self, dim: int, out_dim: int | None = None, scale: float = 1.0):
        super().__init__()
        if dim % 2:
            raise ValueError(f"PromptEncoder: dim must be even (sin and cos halves), got {dim}")
        self.pe = PositionEmbeddingRandom(dim // 2, scale)
        self.types = nn.Embedding(len(PROMPT_TYPES), dim)
        self.mlp = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, out_dim or dim))

    def forward(self, coords: torch.Tensor, types: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """coords B×P×2 in [0, 1], types B×P (long) → tokens B×P×D, pad B×P (True = padding)."""
        pad = types == PADDING
        x = self.pe(coords).masked_fill(pad[..., None], 0.0) + self.types(types.long())
        return self.mlp(x).masked_fill(pad[..., None], 0.0), pad


class ConvTrunk(nn.Module):
    """Small vision trunk: uint8 B×3×S×S → features at twice the patch grid (dim/2 channels) and at the patch
    grid (dim channels), the two levels the pixel-aware encoder pools (PixelVLA pools several SigLIP levels)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        half = cfg.patch // 2
        self.stem = nn.Conv2d(3, cfg.dim // 2, half, half)
        self.norm = nn.GroupNorm(1, cfg.dim // 2)
        self.down = nn.Conv2d(cfg.dim // 2, cfg.dim, 2, 2)

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        fine = F.gelu(self.norm(self.stem(image.float() / 127.5 - 1)))
        return [fine, self.down(fine)]


class MaskEncoder(nn.Module):
    """SAM's mask downscaling: the mask (area-pooled to 4× the patch grid) → two stride-2 convs → 1×1 conv →
    one token per image patch."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.side = 4 * (cfg.image_size // cfg.patch)
        c = MASK_CHANNELS
        self.net = nn.Sequential(
            nn.Conv2d(1, c // 4, 2, 2), nn.GroupNorm(1, c // 4), nn.GELU(),
            nn.Conv2d(c // 4, c, 2, 2), nn.GroupNorm(1, c), nn.GELU(), nn.Conv2d(c, cfg.dim, 1),
        )

    def forward(self, mask: torch.Tensor) -> torch.Tensor:
        """B×H×W (0/1) → B×grid²×D."""
        x = F.adaptive_avg_pool2d(mask.float()[:, None], self.side)
        return self.net(x).flatten(2).transpose(1, 2)


class PixelAwareEmbedding(nn.Module):
    """PixelVLA Eq. (3): E_p = MLP(Σ_i Γ_i(p · f_i / |p|)), the image features of level i averaged under the mask
    p (area-pooled to that level's grid), a linear projection Γ_i per level, summed. An empty mask gives 0."""

    def __init__(self, widths: list[int], dim: int):
        super().__init__()
        self.proj = nn.ModuleList(nn.Linear(w, dim) for w in widths)
        self.mlp = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, dim))

    def forward(self, levels: list[torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
        """levels B×C_i×h_i×w_i, mask B×H×W → B×1×D."""
        total = 0.0
        for feature, proj in zip(levels, self.proj, strict=True):
            p = F.adaptive_avg_pool2d(mask.float()[:, None], feature.shape[-2:])  # share of each cell in the mask
            pooled = (feature * p).sum((2, 3)) / p.sum((2, 3)).clamp(min=1e-6)
            total = total + proj(pooled)
        return self.mlp(total)[:, None]


class ResidualBlock(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.net(x)


class PixelPolicy(nn.Module):
    """PixelVLA scaled down: image, pixel-aware (mask) and prompt-aware tokens, instruction bytes and state →
    an action chunk of `cfg.horizon` steps (continuous, in the recipe's normalised units)."""

    KINDS = ("query", "state", "image", "mask", "pixel", "prompt", "text")

    def __init__(self, cfg: ModelConfig, state_dim: int, action_dim: int):
        super().__init__()
        if cfg.patch % 2 or cfg.dim % 2:
            raise ValueError(f"pixel: patch and dim must be even, got patch {cfg.patch}, dim {cfg.dim}")
        self.cfg = cfg
        grid = (cfg.image_size // cfg.patch) ** 2
        self.trunk = ConvTrunk(cfg)
        self.image_pos = nn.Parameter(torch.zeros(grid, cfg.dim))
        self.mask = MaskEncoder(cfg)
        self.mask_pos = nn.Parameter(torch.zeros(grid, cfg.dim))
        self.pixel = PixelAwareEmbedding([cfg.dim // 2, cfg.dim], cfg.dim)
        self.prompts = PromptEncoder(cfg.dim)
        self.text = ByteEncoder(cfg)
        self.state = nn.Linear(state_dim, cfg.dim)
        self.kind = nn.Parameter(0.02 * torch.randn(len(self.KINDS), cfg.dim))
        self.queries = nn.Parameter(torch.randn(cfg.horizon, cfg.dim))  # unit scale: steps differ from the start
        self.encoder = _encoder(cfg)
        self.decoder = nn.Sequential(nn.Linear(cfg.dim, cfg.dim), *(ResidualBlock(cfg.dim) for _ in range(cfg.action_blocks)),
                                     nn.LayerNorm(cfg.dim), nn.Linear(cfg.dim, action_dim))

    def forward(self, image: torch.Tensor, mask: torch.Tensor, mask_valid: torch.Tensor, prompt_coords: torch.Tensor,
                prompt_types: torch.Tensor, text: torch.Tensor, text_mask: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """image uint8 B×3×S×S, mask B×S×S, mask_valid B (False: object lost, mask tokens masked out), prompts
        B×P×2 / B×P, text bytes B×L with mask, state B×W → B×horizon×action_dim."""
        b, k = image.shape[0], self.kind
        levels = self.trunk(image)
        image_tokens = levels[-1].flatten(2).transpose(1, 2) + self.image_pos + k[2]
        mask_tokens = self.mask(mask) + self.mask_pos + k[3]
        pixel_token = self.pixel(levels, mask) + k[4]
        prompt_tokens, prompt_pad = self.prompts(prompt_coords, prompt_types)
        text_tokens, text_keep = self.text(text, text_mask)
        queries = self.queries.expand(b, -1, -1) + k[0] + self.state(state)[:, None]  # every step query knows the state
        tokens = torch.cat([queries, self.state(state)[:, None] + k[1], image_tokens, mask_tokens, pixel_token,
                            prompt_tokens + k[5], text_tokens + k[6]], 1)
        lost = ~mask_valid.bool()[:, None].expand(-1, mask_tokens.shape[1] + 1)
        always = torch.zeros(b, queries.shape[1] + 1 + image_tokens.shape[1], dtype=torch.bool, device=image.device)
        pad = torch.cat([always, lost, prompt_pad, ~text_keep.bool()], 1)
        out = self.encoder(tokens, src_key_padding_mask=pad)
        return self.decoder(out[:, : queries.shape[1]])
