"""The pixel montage tile: frame G with the gripper proposal, the target box, the mask and the visual prompts.

Drawn by the unit from the G row while it is in memory; finalize stacks the tiles (pipelines/io/montage.py).
Colours (BGR): proposal yellow, detector box green, box prompt magenta (thin), mask red overlay,
points white dots ringed black, line prompts cyan.
"""

from __future__ import annotations

import cv2
import numpy as np

from datasets_cards.codecs import decode_image, rle_to_mask
from pipelines.io.montage import tile_png, to_height

TILE_HEIGHT = 256  # pixels; frames are scaled to this height before drawing
PROPOSAL, BOX, BOX_PROMPT, MASK, POINT, LINE = (0, 215, 255), (0, 200, 0), (255, 0, 255), (0, 0, 230), (255, 255, 255), (255, 255, 0)


def _scaled(values, scale: float) -> list[int]:
    return [round(v * scale) for v in values]


def row_tile(row: dict) -> np.ndarray:
    """One tile (BGR) of the row at frame G, labelled with the noun, the episode and the frame."""
    image = np.ascontiguousarray(decode_image(row["image"])[..., ::-1])
    mask = rle_to_mask(row["mask"])
    image[mask] = (0.55 * image[mask] + 0.45 * np.array(MASK)).astype(np.uint8)
    scale = TILE_HEIGHT / image.shape[0]
    image = np.ascontiguousarray(to_height(image, TILE_HEIGHT))
    x0, y0, x1, y1 = _scaled(row["proposal_box"], scale)
    cv2.rectangle(image, (x0, y0), (x1, y1), PROPOSAL, 2)
    x0, y0, x1, y1 = _scaled(row["box"], scale)
    cv2.rectangle(image, (x0, y0), (x1, y1), BOX, 2)
    if row["box_prompt"] is not None:
        x0, y0, x1, y1 = _scaled(row["box_prompt"], scale)
        cv2.rectangle(image, (x0, y0), (x1, y1), BOX_PROMPT, 1)
    for a, b, c, d in row["lines"]:
        cv2.line(image, tuple(_scaled((a, b), scale)), tuple(_scaled((c, d), scale)), LINE, 1, cv2.LINE_AA)
    for x, y in row["points"]:
        centre = tuple(_scaled((x, y), scale))
        cv2.circle(image, centre, 2, (0, 0, 0), -1)
        cv2.circle(image, centre, 1, POINT, -1)
    band = np.full((34, image.shape[1], 3), 255, np.uint8)
    lines = (f"{row['target_noun']}  (score {row['detector_score']:.2f})", f"{row['episode_id']}  G={row['frame_index']}")
    for i, text in enumerate(lines):
        cv2.putText(band, text, (3, 13 + 16 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([band, image])


def row_to_tile_png(row: dict) -> bytes:
    return tile_png(row_tile(row))
