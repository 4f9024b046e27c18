"""A montage PNG for card.md: full images with their gaze box drawn, next to their crops."""

from __future__ import annotations

import cv2
import fsspec
import numpy as np
import pyarrow.parquet as pq

from datasets_cards.manifest import Manifest
from pipelines.io import write_bytes_atomic

MONTAGE_FILE = "montage.png"
ROW_HEIGHT = 192  # pixels; every image and crop is scaled to this height
BOX_COLOUR = (0, 220, 0)  # BGR
GAP = 8  # pixels between tiles
COLUMNS = ["episode_id", "frame_index", "camera", "target_phrase", "image", "crop", "box"]


def sample_rows(out_dir: str, manifest: Manifest, n: int) -> list[dict]:
    """Up to `n` rows with a crop, spread evenly over the first shards' frames."""
    rows: list[dict] = []
    for shard in manifest.shards:
        with fsspec.open(f"{out_dir}/{shard.path}", "rb") as f:
            table = pq.read_table(f, columns=COLUMNS)
        table = table.filter(table.column("crop").is_valid())
        if table.num_rows:
            picks = np.unique(np.linspace(0, table.num_rows - 1, min(n, table.num_rows)).round().astype(int))
            rows.extend(table.take(picks).to_pylist())
        if len(rows) >= n:
            break
    return rows[:n]


def _to_height(image: np.ndarray, height: int) -> np.ndarray:
    width = max(1, round(image.shape[1] * height / image.shape[0]))
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if image.shape[0] > height else cv2.INTER_LINEAR)


def row_tile(row: dict) -> np.ndarray:
    """One montage row (BGR): the full image with its box and phrase, a gap, the crop."""
    image = cv2.imdecode(np.frombuffer(row["image"], np.uint8), cv2.IMREAD_COLOR)
    crop = cv2.imdecode(np.frombuffer(row["crop"], np.uint8), cv2.IMREAD_COLOR)
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


def write_montage(out_dir: str, manifest: Manifest, rows: int) -> str | None:
    """Write OUT/montage.png from `rows` sampled rows; returns its path relative to OUT (None if no crops)."""
    picked = sample_rows(out_dir, manifest, rows)
    if not picked:
        return None
    ok, png = cv2.imencode(".png", tiles_to_montage([row_tile(r) for r in picked]))
    if not ok:
        raise RuntimeError("PNG encoding of the montage failed")
    write_bytes_atomic(f"{out_dir}/{MONTAGE_FILE}", png.tobytes())
    return MONTAGE_FILE
