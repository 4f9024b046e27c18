"""The gaze montage for card.md: full images with their gaze box drawn, next to their crops.

Each unit draws the tile of a frame of its first episodes while the rows are in memory
(`row_to_tile_png`); finalize stacks the tiles (pipelines/io/montage.py).
"""

from __future__ import annotations

import cv2
import numpy as np

from datasets_cards.codecs import decode_image
from pipelines.io.montage import GAP, tile_png, to_height

ROW_HEIGHT = 192  # pixels; every image and crop is scaled to this height
BOX_COLOUR = (0, 220, 0)  # BGR


def row_tile(row: dict) -> np.ndarray:
    """One montage row (BGR): the full image with its box and phrase, a gap, the crop."""
    image = np.ascontiguousarray(decode_image(row["image"])[..., ::-1])  # the montage is drawn in BGR
    crop = np.ascontiguousarray(decode_image(row["crop"])[..., ::-1])
    x0, y0, x1, y1 = (int(round(v)) for v in row["box"])
    cv2.rectangle(image, (x0, y0), (x1, y1), BOX_COLOUR, max(1, image.shape[0] // 128))
    image = to_height(image, ROW_HEIGHT)
    label = f"{row['target_phrase']} {row['episode_id'][-24:]}#{row['frame_index']}"
    cv2.putText(image, label, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, BOX_COLOUR, 1, cv2.LINE_AA)
    gap = np.full((ROW_HEIGHT, GAP, 3), 255, np.uint8)
    return np.concatenate([image, gap, to_height(crop, ROW_HEIGHT)], axis=1)


def row_to_tile_png(row: dict) -> bytes:
    """The montage row of one annotated frame, as PNG (written by the unit while the row is in memory)."""
    return tile_png(row_tile(row))
