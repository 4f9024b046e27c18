"""A montage PNG for card.md: full images with their gaze box drawn, next to their crops.

Each unit draws the tile of a frame of its first episodes while the rows are in memory
(`row_to_tile_png`, into OUT/_staging/montage/); finalize stacks the tiles.
"""

from __future__ import annotations

import cv2
import fsspec
import numpy as np

from datasets_cards.codecs import decode_image
from pipelines.io import write_bytes_atomic

MONTAGE_FILE = "montage.png"
ROW_HEIGHT = 192  # pixels; every image and crop is scaled to this height
BOX_COLOUR = (0, 220, 0)  # BGR
GAP = 8  # pixels between tiles
TILES_DIR = "_staging/montage"


def _to_height(image: np.ndarray, height: int) -> np.ndarray:
    width = max(1, round(image.shape[1] * height / image.shape[0]))
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if image.shape[0] > height else cv2.INTER_LINEAR)


def row_tile(row: dict) -> np.ndarray:
    """One montage row (BGR): the full image with its box and phrase, a gap, the crop."""
    image = np.ascontiguousarray(decode_image(row["image"])[..., ::-1])  # the montage is drawn in BGR
    crop = np.ascontiguousarray(decode_image(row["crop"])[..., ::-1])
    x0, y0, x1, y1 = (int(round(v)) for v in row["box"])
    cv2.rectangle(image, (x0, y0), (x1, y1), BOX_COLOUR, max(1, image.shape[0] // 128))
    image = _to_height(image, ROW_HEIGHT)
    label = f"{row['target_phrase']} {row['episode_id'][-24:]}#{row['frame_index']}"
    cv2.putText(image, label, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, BOX_COLOUR, 1, cv2.LINE_AA)
    gap = np.full((ROW_HEIGHT, GAP, 3), 255, np.uint8)
    return np.concatenate([image, gap, _to_height(crop, ROW_HEIGHT)], axis=1)


def tiles_to_montage(tiles: list[np.ndarray]) -> np.ndarray:
    width = max(t.shape[1] for t in tiles)
    padded = []
    for t in tiles:
        padded.append(np.pad(t, ((0, GAP), (0, width - t.shape[1]), (0, 0)), constant_values=255))
    return np.concatenate(padded, axis=0)


def row_to_tile_png(row: dict) -> bytes:
    """The montage row of one annotated frame, as PNG (written by the unit while the row is in memory)."""
    ok, png = cv2.imencode(".png", row_tile(row))
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
    ok, png = cv2.imencode(".png", tiles_to_montage(images))
    if not ok:
        raise RuntimeError("PNG encoding of the montage failed")
    write_bytes_atomic(f"{out_dir}/{MONTAGE_FILE}", png.tobytes())
    return MONTAGE_FILE
