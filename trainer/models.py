"""Small reference models: la (text + state → action chunk, flow matching), gaze, and future.

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
"""

from __future__ import annotations

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
    horizon: int = 8  # la: action chunk length
    vision_tokens: int = 4  # la: learned placeholders standing for the masked image
    image_size: int = 64  # gaze
    patch: int = 8  # gaze image patch size
    crop_size: int = 16  # gaze: reconstruction target side
    crop_patch: int = 4
    flow_steps: int = 10  # Euler steps when sampling an action chunk
    foresight: int = 16  # future: H, the frame whose tokens condition step t (DIAL; clipped at the episode end)
    chunk: int = 16  # future: actions predicted per sample (DIAL's 16-step chunk)

    def validate(self) -> None:
        if self.dim % self.heads:
            raise ValueError(f"dim {self.dim} must be divisible by heads {self.heads}")
        if self.foresight < 0 or self.chunk < 1:
            raise ValueError(f"foresight must be >= 0 and chunk >= 1, got {self.foresight}, {self.chunk}")
        if self.image_size % self.patch or self.crop_size % self.crop_patch:
            raise ValueError("image_size/patch and crop_size/crop_patch must divide exactly")


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
