"""Tiny la, gaze, pixel and future output folders written without the pipelines: Parquet shards that
follow the output cards' Arrow schemas, and a manifest with correct sha256."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from datasets_cards import load_output_card
from datasets_cards.codecs import mask_to_rle
from datasets_cards.constants import SHARD_PATTERN, SHARDS_DIR
from datasets_cards.manifest import Manifest, ShardRecord

# Base-frame unit vectors of the LA instruction words (annotators/segments/templates.py).
DIRECTIONS = {
    "forward": (1, 0, 0), "backward": (-1, 0, 0), "left": (0, 1, 0),
    "right": (0, -1, 0), "up": (0, 0, 1), "down": (0, 0, -1),
}


def write_output_folder(
    root: Path, card_name: str, rows: list[dict[str, Any]], *, rows_per_shard: int, row_group_rows: int,
    source: str = "droid",
) -> Manifest:
    """Write `rows` as shards of the card's schema plus manifest.json; returns the manifest."""
    card = load_output_card(card_name)
    schema = card.arrow_schema()
    (root / SHARDS_DIR).mkdir(parents=True, exist_ok=True)
    records = []
    for index, start in enumerate(range(0, len(rows), rows_per_shard)):
        chunk = rows[start : start + rows_per_shard]
        rel = f"{SHARDS_DIR}/{SHARD_PATTERN.format(index=index)}"
        table = pa.Table.from_pylist(chunk, schema=schema)
        pq.write_table(table, root / rel, row_group_size=row_group_rows)
        data = (root / rel).read_bytes()
        records.append(ShardRecord(
            unit=f"unit-{index}", path=rel, rows=len(chunk), bytes=len(data),
            sha256=hashlib.sha256(data).hexdigest(), episodes=sorted({str(r["episode_id"]) for r in chunk}),
            seconds=0.0,
        ))
    now = datetime.now(UTC).isoformat()
    manifest = Manifest(
        pipeline=card.name, output_card_version=card.version, source=source, source_location="synthetic",
        config_hash="0" * 16, config={}, code_version="test", created=now, updated=now, complete=True,
        planned_units=len(records), shards=records,
    )
    manifest.save(str(root))
    return manifest


FUTURE_TOKENS, FUTURE_DIM, FUTURE_WIDTH = 4, 8, 6  # make_future_folder's default token grid and layout width


def la_rows(episodes: int = 12, segments: int = 3, seed: int = 0, speed: float = 0.01) -> list[dict[str, Any]]:
    """Segments that move the end effector along their instruction's direction (absolute actions)."""
    rng = np.random.default_rng(seed)
    words = list(DIRECTIONS)
    rows = []
    for e in range(episodes):
        for s in range(segments):
            word = words[int(rng.integers(len(words)))]
            length = int(rng.integers(6, 14))
            start = rng.uniform(-0.3, 0.3, size=6).astype(np.float32)
            steps = np.arange(length + 1, dtype=np.float32)[:, None]
            pose = start + steps * speed * np.r_[DIRECTIONS[word], 0, 0, 0].astype(np.float32)
            pose += rng.normal(0, speed * 0.05, pose.shape).astype(np.float32)
            gripper = np.full(length + 1, float(rng.integers(2)), np.float32)
            actions = np.concatenate([pose[1:], gripper[1:, None]], axis=1)
            rows.append({
                "episode_id": f"ep{e:03d}#{s}", "source": "droid", "source_episode_id": f"ep{e:03d}",
                "segment_index": s, "subaction": "move", "instruction": f"move the gripper {word} while holding nothing",
                "task": "tidy the table", "start": s * 20, "end": s * 20 + length, "fps": 15.0,
                "state": pose[:-1].tolist(), "state_names": ["x", "y", "z", "roll", "pitch", "yaw"],
                "gripper": gripper[:-1].tolist(), "actions": actions.tolist(),
                "action_names": ["x", "y", "z", "roll", "pitch", "yaw", "gripper"],
                "segmenter": "kinematic", "kinematic_subaction": "move", "agreement": True, "verified": True,
                "quality": 3.0, "confidence": 2.0, "num_annotators": 1, "cameras": ["exterior_1_left"],
                "source_location": "synthetic", "flags": [], "keyframes": [s * 20],
            })
    return rows


def _jpeg(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    assert ok
    return data.tobytes()


def gaze_rows(episodes: int = 6, frames: int = 8, size: int = 48, seed: int = 0) -> list[dict[str, Any]]:
    """A coloured square on noise; the crop shows the square, the action points at it."""
    rng = np.random.default_rng(seed)
    rows = []
    for e in range(episodes):
        colour = rng.integers(80, 255, size=3)
        for t in range(frames):
            image = rng.integers(0, 60, size=(size, size, 3), dtype=np.uint8)
            x0, y0 = (int(v) for v in rng.integers(0, size - 12, size=2))
            image[y0 : y0 + 12, x0 : x0 + 12] = colour
            has_box = (e + t) % 5 != 4  # some frames have no reliable box
            crop = image[max(0, y0 - 4) : y0 + 16, max(0, x0 - 4) : x0 + 16]
            cx, cy = (x0 + 6) / size - 0.5, (y0 + 6) / size - 0.5
            rows.append({
                "episode_id": f"ep{e:03d}", "source": "bridge", "frame_index": t, "camera": "image_0",
                "instruction": "pick up the block", "target_phrase": "block.", "phase": "object",
                "image": _jpeg(image),
                "crop": _jpeg(crop) if has_box else None,
                "box": [x0, y0, x0 + 12, y0 + 12] if has_box else None,
                "crop_box": [max(0, x0 - 4), max(0, y0 - 4), x0 + 16, y0 + 16] if has_box else None,
                "score": 0.9 if has_box else None, "flags": ["detected"] if has_box else ["no_box"],
                "width": size, "height": size, "state": rng.normal(size=7).astype(np.float32).tolist(),
                "gripper": float(t % 2), "action": [cx, cy, 0.0, 0.0, 0.0, 0.0, float(t % 2)],
            })
    return rows


def make_la_folder(root: Path, **kwargs: Any) -> Manifest:
    return write_output_folder(root, "la", la_rows(**kwargs), rows_per_shard=10, row_group_rows=4)


def make_gaze_folder(root: Path, **kwargs: Any) -> Manifest:
    return write_output_folder(root, "gaze", gaze_rows(**kwargs), rows_per_shard=16, row_group_rows=8, source="bridge")


def pixel_rows(episodes: int = 6, frames: int = 10, width: int = 64, height: int = 48, seed: int = 0,
               cameras: tuple[str, ...] = ("image_0",), lost_every: int = 4, source: str = "bridge") -> list[dict[str, Any]]:
    """Every frame of every episode (pixel card 2.x): a coloured square, the target, on noise; the gripper (state
    x, y in pixels / 100) moves to it in a straight line and closes at G, the action is the next step's motion.
    Frames with (t + e) % lost_every == lost_every − 1 (from G + 1 on) have the object lost: mask, box and box
    prompt null, no points, no lines."""
    rng = np.random.default_rng(seed)
    rows = []
    side = 12
    for e in range(episodes):
        colour = rng.integers(80, 255, size=3)
        x0, y0 = int(rng.integers(0, width - side)), int(rng.integers(0, height - side))
        target = np.array([x0 + side / 2, y0 + side / 2], np.float32)
        start = np.array([rng.uniform(0, width), rng.uniform(0, height)], np.float32)
        first_close = frames // 2
        path = [start + (target - start) * min(1.0, t / first_close) for t in range(frames + 1)]
        for camera in cameras:
            for t in range(frames):
                image = rng.integers(0, 60, size=(height, width, 3), dtype=np.uint8)
                image[y0 : y0 + side, x0 : x0 + side] = colour
                closed = float(t >= first_close)
                lost = t > first_close and (t + e) % lost_every == lost_every - 1
                mask = np.zeros((height, width), np.uint8)
                mask[y0 : y0 + side, x0 : x0 + side] = 1
                n_points, n_lines = int(rng.integers(2, 9)), int(rng.integers(1, 4))
                points = np.c_[rng.uniform(x0, x0 + side, n_points), rng.uniform(y0, y0 + side, n_points)]
                ys = rng.uniform(y0, y0 + side, n_lines)
                lines = np.c_[np.full(n_lines, x0 + 1.0), ys, np.full(n_lines, x0 + side - 2.0), ys]
                box = [float(x0), float(y0), float(x0 + side - 1), float(y0 + side - 1)]
                motion = (path[t + 1] - path[t]) / 10.0
                rows.append({
                    "episode_id": f"ep{e:03d}", "source": source, "camera": camera, "frame_index": t,
                    "first_close_frame": first_close, "instruction": "pick up the block", "target_noun": "block",
                    "image": _jpeg(image), "width": width, "height": height,
                    "state": [*(path[t] / 100.0).tolist(), 0.1, 0.0, 0.0, 0.0, 0.0], "gripper": closed,
                    "action": [*motion.tolist(), 0.0, 0.0, 0.0, 0.0, float(t + 1 >= first_close)],
                    "proposal_box": [max(0.0, x0 - 6.0), max(0.0, y0 - 6.0), min(width - 1.0, x0 + side + 6.0),
                                     min(height - 1.0, y0 + side + 6.0)],
                    "gripper_mask": mask_to_rle(mask) if t == first_close else None,
                    "box": None if lost else box, "mask": None if lost else mask_to_rle(mask),
                    "points": [] if lost else points.astype(np.float32).tolist(),
                    "lines": [] if lost else lines.astype(np.float32).tolist(),
                    "box_prompt": None if lost else box,
                    "detector_score": 0.8 if t == first_close else None, "mask_score": 0.1 if lost else 0.9,
                    "flags": ["first_close"] if t == first_close else (["propagated", "object_lost"] if lost
                                                                        else ["propagated"]),
                })
    return rows


def make_pixel_folder(root: Path, **kwargs: Any) -> Manifest:
    return write_output_folder(root, "pixel", pixel_rows(**kwargs), rows_per_shard=20, row_group_rows=10,
                               source=kwargs.get("source", "bridge"))


def make_future_folder(root: Path, episodes: int = 48, frames: int = 24, seed: int = 0, valid: list[int] | None = None,
                       source: str = "synthetic", dim: int = FUTURE_DIM, horizon: int = 8,
                       tokens: int = FUTURE_TOKENS) -> Path:
    """Frames that show a random 2-D code z_t (tokens: a fixed offset plus a projection of it); the action of step
    t is a fixed mix of the code shown H frames later. The current frame says nothing about the action, the
    future one says everything: a model that reads its foresight loses that edge when given another episode's."""
    rng = np.random.default_rng(seed)
    project = np.random.default_rng(99).normal(size=(2, tokens * dim))
    offset = 3 * np.random.default_rng(98).normal(size=tokens * dim)  # tokens far from 0: layer norm keeps z linear
    mix = np.random.default_rng(97).normal(size=(2, FUTURE_WIDTH))
    valid = np.asarray(valid if valid is not None else [1] * FUTURE_WIDTH, np.uint8)
    rows = []
    for e in range(episodes):
        codes = rng.normal(size=(frames, 2))
        for t in range(frames):
            action = (codes[min(t + horizon, frames - 1)] @ mix).astype(np.float32) * valid
            rows.append({
                "episode_id": f"{source}-{e:03d}", "source": source, "camera": "cam", "frame_index": t, "view": 0,
                "num_frames": frames, "instruction": "move",
                "feature": (offset + codes[t] @ project).astype(np.float16),
                "state": np.zeros(FUTURE_WIDTH, np.float32), "state_valid": valid, "actions": [action],
                "action_valid": valid,
            })
    manifest = write_output_folder(root, "future", rows, rows_per_shard=frames * 12, row_group_rows=frames * 3,
                                   source=source)
    side = int(np.sqrt(tokens))  # the token grid's rows (the tokens need not fill a square)
    manifest.stats = {
        "feature": {"tokens": tokens, "dim": dim, "grid": [side, tokens // side], "dtype": "float16", "bytes": tokens * dim * 2},
        "params": {"stride": 1},
        "normalisation": {"state": {"mean": [0.0] * FUTURE_WIDTH, "std": [1.0] * FUTURE_WIDTH},
                          "action": {"mean": [0.0] * FUTURE_WIDTH, "std": np.sqrt((mix**2).sum(0)).tolist()}},
    }
    manifest.save(str(root))
    return root
