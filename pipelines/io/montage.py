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
FONT, FONT_SCALE, LINE_HEIGHT = cv2.FONT_HERSHEY_SIMPLEX, 0.42, 16  # label text (Hershey: ASCII only)


def to_height(image: np.ndarray, height: int) -> np.ndarray:
    """`image` scaled to `height` pixels, its aspect ratio kept."""
    width = max(1, round(image.shape[1] * height / image.shape[0]))
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if image.shape[0] > height else cv2.INTER_LINEAR)


def tiles_to_montage(tiles: list[np.ndarray]) -> np.ndarray:
    """Tiles stacked top to bottom, each padded white to the widest."""
    width = max(t.shape[1] for t in tiles)
    return np.concatenate([np.pad(t, ((0, GAP), (0, width - t.shape[1]), (0, 0)), constant_values=255) for t in tiles])


def wrap_text(text: str, width: int) -> list[str]:
    """`text` in lines that fit `width` pixels: broken at spaces, and inside a word longer than a line."""
    fits = lambda line: cv2.getTextSize(line, FONT, FONT_SCALE, 1)[0][0] <= width
    lines: list[str] = []
    for word in text.split():
        if lines and fits(f"{lines[-1]} {word}"):
            lines[-1] = f"{lines[-1]} {word}"
            continue
        while len(word) > 1 and not fits(word):  # a word longer than a line (a DROID path): cut where the line is full
            cut = next((n for n in range(len(word) - 1, 0, -1) if fits(word[:n])), 1)
            lines.append(word[:cut])
            word = word[cut:]
        lines.append(word)
    return lines


def text_band(lines: list[str], width: int, colours: list[tuple[int, int, int]] | None = None) -> np.ndarray:
    """A white band `width` pixels wide holding `lines` (wrapped, never cut), black unless `colours` says."""
    wrapped = [(part, colour) for line, colour in zip(lines, colours or [(0, 0, 0)] * len(lines))
               for part in wrap_text(line, width - 6)]
    band = np.full((LINE_HEIGHT * len(wrapped) + 6, width, 3), 255, np.uint8)
    for i, (text, colour) in enumerate(wrapped):
        cv2.putText(band, text, (3, LINE_HEIGHT * (i + 1)), FONT, FONT_SCALE, colour, 1, cv2.LINE_AA)
    return band


def tile_png(tile: np.ndarray) -> bytes:
    """A BGR tile as PNG bytes."""
    ok, png = cv2.imencode(".png", tile)
    if not ok:
        raise RuntimeError("PNG encoding of a montage tile failed")
    return png.tobytes()


def write_montage(out_dir: str, tiles: list[str], legend: np.ndarray | None = None) -> str | None:
    """Write OUT/montage.png from the units' tiles (paths relative to OUT), below a `legend` image (BGR) if
    given; returns its path (None if there are no tiles)."""
    if not tiles:
        return None
    images = [] if legend is None else [legend]
    for relative in tiles:
        with fsspec.open(f"{out_dir}/{relative}", "rb") as f:
            images.append(np.ascontiguousarray(decode_image(f.read())[..., ::-1]))  # tiles are drawn in BGR
    write_bytes_atomic(f"{out_dir}/{MONTAGE_FILE}", tile_png(tiles_to_montage(images)))
    return MONTAGE_FILE
