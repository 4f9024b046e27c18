"""Montage PNGs for card.md, shared by the pipelines that draw one.

A unit draws one tile per shown episode while its frames are in memory and stages it under
OUT/_staging/montage/ (`tile_png`); finalize stacks the staged tiles (`write_montage`), so
nothing after the units reads a source frame. Tiles are drawn in BGR (OpenCV's order).
"""

from __future__ import annotations

import cv2
import fsspec
import numpy as np

from datasets_cards.codecs import decode_image
from pipelines.io import write_bytes_atomic

MONTAGE_FILE = "montage.png"
TILES_DIR = "_staging/montage"
GAP = 8  # white pixels between tiles


def to_height(image: np.ndarray, height: int) -> np.ndarray:
    """`image` scaled to `height` pixels, its aspect ratio kept."""
    width = max(1, round(image.shape[1] * height / image.shape[0]))
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if image.shape[0] > height else cv2.INTER_LINEAR)


def tiles_to_montage(tiles: list[np.ndarray]) -> np.ndarray:
    """Tiles stacked top to bottom, each padded white to the widest."""
    width = max(t.shape[1] for t in tiles)
    return np.concatenate([np.pad(t, ((0, GAP), (0, width - t.shape[1]), (0, 0)), constant_values=255) for t in tiles])


def tile_png(tile: np.ndarray) -> bytes:
    """A BGR tile as PNG bytes."""
    ok, png = cv2.imencode(".png", tile)
    if not ok:
        raise RuntimeError("PNG encoding of a montage tile failed")
    return png.tobytes()


def write_montage(out_dir: str, tiles: list[str]) -> str | None:
    """Write OUT/montage.png from the units' tiles (paths relative to OUT); returns its path (None if none)."""
    images = []
    for relative in tiles:
        with fsspec.open(f"{out_dir}/{relative}", "rb") as f:
            images.append(np.ascontiguousarray(decode_image(f.read())[..., ::-1]))  # tiles are drawn in BGR
    if not images:
        return None
    write_bytes_atomic(f"{out_dir}/{MONTAGE_FILE}", tile_png(tiles_to_montage(images)))
    return MONTAGE_FILE
