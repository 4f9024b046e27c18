"""What the encoder sees of a frame: pure functions on uint8 RGB arrays (no torch, no I/O).

DIAL (its public GR00T-based code) crops before the frozen tower: for 256² robot
sources it keeps rows 17–83 % of the height, then a centre crop of 0.95 of each side,
then resizes to 224×224; EgoDex's 1080×1920 frames first lose their top 30 %. At
training time it takes the 0.95 crop at a random place and jitters colours per step.
A feature cache cannot redraw per step, so the deterministic centre view is view 0
and `views` extra views per frame draw one crop place and one jitter per episode,
camera and view (the same for every frame of that episode, so t and t+H share it).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ViewBox:
    """Pixel window [y0, y1) × [x0, x1) of the source frame that is resized for the encoder."""

    y0: int
    y1: int
    x0: int
    x1: int


def view_box(height: int, width: int, rows: tuple[float, float], cols: tuple[float, float], crop: float,
             offset: tuple[float, float] = (0.5, 0.5)) -> ViewBox:
    """The band of `rows` × `cols` (fractions of the frame), then a crop keeping `crop` of each side of
    that band, placed at `offset` (0 = top/left, 0.5 = centred, 1 = bottom/right) of the room left."""
    top, bottom = round(rows[0] * height), round(rows[1] * height)
    left, right = round(cols[0] * width), round(cols[1] * width)
    band_h, band_w = bottom - top, right - left
    if band_h < 1 or band_w < 1:
        raise ValueError(f"the band rows={rows} cols={cols} of a {height}×{width} frame is empty")
    crop_h, crop_w = max(1, round(band_h * crop)), max(1, round(band_w * crop))
    y0 = top + round((band_h - crop_h) * offset[0])
    x0 = left + round((band_w - crop_w) * offset[1])
    return ViewBox(y0, y0 + crop_h, x0, x0 + crop_w)


def image_to_view(image: np.ndarray, box: ViewBox, size: tuple[int, int]) -> np.ndarray:
    """uint8 H×W×3 → the `box` window resized to `size` (H, W): area averaging when shrinking, bilinear otherwise."""
    import cv2

    window = image[box.y0 : box.y1, box.x0 : box.x1]
    if window.shape[:2] == tuple(size):
        return np.ascontiguousarray(window)
    shrinking = window.shape[0] >= size[0] and window.shape[1] >= size[1]
    return cv2.resize(window, (size[1], size[0]), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


@dataclass(frozen=True)
class Jitter:
    """Colour jitter factors (torchvision's ColorJitter semantics, applied in this fixed order)."""

    brightness: float = 1.0  # multiply every channel
    contrast: float = 1.0  # blend with the mean grey level
    saturation: float = 1.0  # blend with the grey image
    hue: float = 0.0  # shift of the hue, fraction of a turn in [-0.5, 0.5]


def jitter_image(image: np.ndarray, jitter: Jitter) -> np.ndarray:
    """uint8 H×W×3 RGB with brightness, contrast, saturation and hue changed as `jitter` says (a copy)."""
    import cv2

    x = image.astype(np.float32) * jitter.brightness
    x = np.clip(x, 0, 255)
    grey = x @ np.array([0.299, 0.587, 0.114], np.float32)
    x = np.clip((x - grey.mean()) * jitter.contrast + grey.mean(), 0, 255)
    grey = (x @ np.array([0.299, 0.587, 0.114], np.float32))[..., None]
    x = np.clip((x - grey) * jitter.saturation + grey, 0, 255).astype(np.uint8)
    if jitter.hue:
        hsv = cv2.cvtColor(x, cv2.COLOR_RGB2HSV_FULL)
        hsv[..., 0] = (hsv[..., 0].astype(np.int32) + round(jitter.hue * 256)) % 256
        x = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB_FULL)
    return x


def view_rng(*keys: object) -> np.random.Generator:
    """A generator seeded by `keys` (episode id, camera, view), the same in every process and run."""
    digest = hashlib.sha256("\x1f".join(map(str, keys)).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def draw_augmentation(rng: np.random.Generator, brightness: float, contrast: float, saturation: float,
                      hue: float) -> tuple[tuple[float, float], Jitter]:
    """(crop offset, jitter) drawn like DIAL's per-step augmentation: a uniform crop place, factors
    uniform in [1 − s, 1 + s] (hue in [−h, h])."""
    offset = (float(rng.uniform()), float(rng.uniform()))
    jitter = Jitter(
        brightness=float(rng.uniform(max(0.0, 1 - brightness), 1 + brightness)),
        contrast=float(rng.uniform(max(0.0, 1 - contrast), 1 + contrast)),
        saturation=float(rng.uniform(max(0.0, 1 - saturation), 1 + saturation)),
        hue=float(rng.uniform(-hue, hue)),
    )
    return offset, jitter
