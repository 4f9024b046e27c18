"""The gaze montage for card.md: full images with their crop window and gaze box, next to their crops.

Each unit draws its tiles while the rows are in memory (`row_to_tile_png`); finalize stacks them
under a legend (pipelines/io/montage.py). The montage shows an example frame of each of the first
`montage` episodes, then one frame for every quality flag the run emitted (`choose_tiles` picks the
frames of an episode; the lowest episode index wins for each flag across the run), every tile labelled
in full: episode, frame, camera, phrase and phase, score, flags.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

import cv2
import numpy as np

from annotators.gaze import DETECTED, FLAGS, INTERPOLATED, LOW_SCORE
from datasets_cards.codecs import decode_image
from pipelines.io.montage import GAP, text_band, tile_png, to_height

ROW_HEIGHT = 192  # pixels; every image and crop is scaled to this height
LEGEND_WIDTH = 560  # pixels; tiles narrower than the legend are padded white to it
EXAMPLE = "example"  # the tile of an episode's middle frame with a crop
SHOWN_FLAGS = tuple(f for f in FLAGS if f != DETECTED)  # the example tiles already show detected frames
# Colours (BGR)
BOX_COLOURS = {DETECTED: (0, 170, 0), LOW_SCORE: (0, 140, 255), INTERPOLATED: (200, 0, 200)}
CROP_WINDOW = (220, 160, 0)
NO_CROP = (200, 200, 200)
HEADING = (120, 60, 0)

LEGEND = [
    ("Each tile: the full image (left) with the crop window and the gaze box, the crop (right).", (0, 0, 0)),
    ("blue rectangle: crop window (box + margins, at least min_crop)", CROP_WINDOW),
    ("green box: detected", BOX_COLOURS[DETECTED]),
    ("orange box: low_score (detected, score below low_score)", BOX_COLOURS[LOW_SCORE]),
    ("magenta box: interpolated (no detection kept; filled between the boxes around it)", BOX_COLOURS[INTERPOLATED]),
    ("grey crop: no_box (no reliable box: no crop, no row to train on)", (110, 110, 110)),
    (("rejected_jump: the detector's box jumped away from its neighbours and was dropped; the tile shows the "
      "box interpolated in its place, or none"), (0, 0, 0)),
    ("First the example frame of the first episodes, then one frame for each flag present in the run.", (0, 0, 0)),
]


def choose_tiles(rows: list[dict], example: bool, flags: Collection[str]) -> list[tuple[str, dict]]:
    """(reason, row) of the tiles of one episode's rows: with `example`, the frame nearest its middle with
    a clean detection (else with any crop; none without one); then, for each of `flags` the rows carry, the
    middle one of its frames that no other tile shows, if there is one."""
    chosen: list[tuple[str, dict]] = []
    with_crop = [r for r in rows if r["crop"] is not None]
    if example and with_crop:
        middle = max(r["frame_index"] for r in rows) // 2
        clean = [r for r in with_crop if r["flags"] == [DETECTED]] or with_crop
        chosen.append((EXAMPLE, min(clean, key=lambda r: abs(r["frame_index"] - middle))))
    for flag in SHOWN_FLAGS:
        flagged = [r for r in rows if flag in r["flags"]]
        if flag in flags and flagged:
            shown = [id(row) for _, row in chosen]
            flagged = [r for r in flagged if id(r) not in shown] or flagged
            chosen.append((flag, flagged[len(flagged) // 2]))
    return chosen


def tile_label(row: dict, reason: str) -> list[str]:
    """The tile's label lines, in full (ASCII: the montage font has no other characters)."""
    score = "none" if row["score"] is None else f"{row['score']:.2f}"
    heading = "example frame" if reason == EXAMPLE else f"flag {reason}"
    return [
        f"{heading}: episode {row['episode_id']} frame {row['frame_index']} camera {row['camera']}",
        f"phrase '{row['target_phrase']}' ({row['phase']}) score {score} flags {', '.join(row['flags'])}",
    ]


def box_colour(flags: list[str]) -> tuple[int, int, int]:
    return next((BOX_COLOURS[f] for f in (LOW_SCORE, INTERPOLATED) if f in flags), BOX_COLOURS[DETECTED])


def row_tile(row: dict, reason: str) -> np.ndarray:
    """One montage tile (BGR): the label, then the full image with crop window and box, a gap, the crop."""
    image = np.ascontiguousarray(decode_image(row["image"])[..., ::-1])  # the montage is drawn in BGR
    scale = ROW_HEIGHT / image.shape[0]
    image = np.ascontiguousarray(to_height(image, ROW_HEIGHT))
    if row["crop_box"] is not None:
        x0, y0, x1, y1 = (round(v * scale) for v in row["crop_box"])
        cv2.rectangle(image, (x0, y0), (x1 - 1, y1 - 1), CROP_WINDOW, 1)
    if row["box"] is not None:
        x0, y0, x1, y1 = (round(v * scale) for v in row["box"])
        cv2.rectangle(image, (x0, y0), (x1, y1), box_colour(row["flags"]), 2)
    if row["crop"] is not None:
        crop = to_height(np.ascontiguousarray(decode_image(row["crop"])[..., ::-1]), ROW_HEIGHT)
    else:
        crop = np.full((ROW_HEIGHT, ROW_HEIGHT, 3), NO_CROP, np.uint8)
        cv2.putText(crop, "no box, no crop", (20, ROW_HEIGHT // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (60, 60, 60), 1,
                    cv2.LINE_AA)
    gap = np.full((ROW_HEIGHT, GAP, 3), 255, np.uint8)
    pictures = np.concatenate([image, gap, crop], axis=1)
    label = text_band(tile_label(row, reason), pictures.shape[1], [HEADING, (0, 0, 0)])
    return np.concatenate([label, pictures])


def row_to_tile_png(row: dict, reason: str) -> bytes:
    """The montage tile of one annotated frame, as PNG (written by the unit while the row is in memory)."""
    return tile_png(row_tile(row, reason))


def legend_image() -> np.ndarray:
    """The montage's legend (BGR): what the colours and tiles mean."""
    return text_band([text for text, _ in LEGEND], LEGEND_WIDTH, [colour for _, colour in LEGEND])


def flag_tiles(candidates: Mapping[str, list[list]]) -> list[str]:
    """One staged tile per flag from the units' candidates ({flag: [[episode index, path], ...]}): the lowest
    episode index, in FLAGS order."""
    return [min(candidates[f], key=lambda c: c[0])[1] for f in SHOWN_FLAGS if candidates.get(f)]
