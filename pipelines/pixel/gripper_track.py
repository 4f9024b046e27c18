"""Stage 2 of the pixel pipeline: SAM 2 tracks the gripper over the first-close frames of all episodes.

PixelVLA §4.2 treats the first-close frames of the whole dataset, in dataset order, as one discrete
video. This pass streams the frames collected by stage 1 (one part per unit, in unit order) through
a StreamingTracker whose state stays bounded, so memory is flat however long the corpus is.

- Seeding: the paper does not say how the gripper is prompted. The first frame, and every frame where
  the track is lost (empty mask, object-presence probability under `reseed_min_score`, area jumping by
  more than `reseed_area_ratio`: these "videos" cut across scenes), is seeded from a Grounding DINO box
  of the card's gripper phrase; when the detector finds none, from the end effector projected into
  the image (a fit over the confident masks so far); otherwise the frame has no gripper mask.
- Checkpoints: every `track_checkpoint_every` frames the results so far (one Parquet chunk) and the
  tracker's bounded state are written, so a killed pass resumes where it stopped.
- Cross-check: at the end, a projection from end-effector xyz to mask centroids is fitted with RANSAC
  per camera and masks that sit off it are flagged `gripper_off_projection`.
- Proposals: the tightest box of each gripper mask scaled by `proposal_scale` and clipped to the image.

Output: OUT/_staging/gripper_track/track.parquet (one row per episode with a frame G) and summary.json.
"""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from rich.progress import Progress

from annotators.detection import Detector
from annotators.pixel import (
    Projection,
    fit_projection,
    mask_box,
    mask_centroid,
    scale_box,
)
from annotators.segmentation import MaskResult, Tracker
from datasets_cards.codecs import decode_image, mask_to_rle, rle_to_mask
from datasets_cards.params.pixel import PixelParams
from datasets_cards.storage import read_text, write_bytes_atomic, write_text_atomic

logger = logging.getLogger(__name__)

TRACK_DIR = "_staging/gripper_track"  # the stage's folder: its parts (unit-*.parquet) sit here too
TRACK_FILE = f"{TRACK_DIR}/track.parquet"
SUMMARY_FILE = f"{TRACK_DIR}/summary.json"
CHECKPOINT_FILE = f"{TRACK_DIR}/checkpoint.pt"
CHUNK_PATTERN = "chunk-{start:09d}.parquet"

RLE = pa.struct([("size", pa.list_(pa.int32())), ("counts", pa.string())])
CHUNK_SCHEMA = pa.schema([
    ("episode_id", pa.string()), ("width", pa.int32()), ("height", pa.int32()),
    ("gripper_mask", RLE), ("score", pa.float32()),
    ("seed", pa.string()),  # what started the track on this frame: detector | projection | null (tracked)
    ("ee_xyz", pa.list_(pa.float32())), ("centroid", pa.list_(pa.float32())),
])
TRACK_SCHEMA = pa.schema([
    ("episode_id", pa.string()), ("gripper_mask", RLE), ("gripper_score", pa.float32()),
    ("proposal_box", pa.list_(pa.float32(), 4)), ("flags", pa.list_(pa.string())),
])

RANSAC_TOLERANCE_DIVISOR = 4  # RANSAC inliers: within projection_tolerance / 4 (see _fit)
RESEEDED = "gripper_reseeded"
OFF_PROJECTION = "gripper_off_projection"
FROM_PROJECTION = "gripper_from_projection"


@dataclass
class _Frame:
    episode_id: str
    image: np.ndarray
    ee_xyz: np.ndarray | None


def stream_first_close(parts: list[str]) -> Iterator[_Frame]:
    """Stage-1 frames in dataset order (parts in unit order, rows in reader order), decoded one at a time."""
    for part in parts:
        with fsspec.open(part, "rb") as f:
            table = pq.read_table(f, columns=["episode_id", "image", "ee_xyz"])
        for row in table.to_pylist():
            if row["image"] is not None:
                xyz = None if row["ee_xyz"] is None else np.asarray(row["ee_xyz"], np.float64)
                yield _Frame(row["episode_id"], decode_image(row["image"]), xyz)


class GripperTrackPass:
    """The resumable tracking pass over the whole corpus (see the module docstring)."""

    def __init__(self, tracker: Tracker, detector: Detector, params: PixelParams):
        self.tracker, self.detector, self.params = tracker, detector, params

    # -- resumable state -------------------------------------------------------------------------
    def _load_checkpoint(self, out_dir: str) -> tuple[int, dict[str, Any]]:
        fs, root = fsspec.core.url_to_fs(out_dir)
        if not fs.exists(f"{root}/{CHECKPOINT_FILE}"):
            return 0, {}
        with fs.open(f"{root}/{CHECKPOINT_FILE}", "rb") as f:
            buffer = io.BytesIO(f.read())
        state = torch.load(buffer, weights_only=True)
        meta = json.loads(bytes(state.pop("_meta").tolist()).decode())
        if meta["tracking"]:
            self.tracker.load_state_dict(state)
        return int(meta["frames_done"]), meta

    def _save_checkpoint(self, out_dir: str, frames_done: int, meta: dict[str, Any]) -> None:
        state = dict(self.tracker.state_dict()) if meta["tracking"] else {}
        payload = json.dumps({**meta, "frames_done": frames_done}).encode()
        state["_meta"] = torch.tensor(list(payload), dtype=torch.uint8)
        buffer = io.BytesIO()
        torch.save(state, buffer)
        write_bytes_atomic(f"{out_dir}/{CHECKPOINT_FILE}", buffer.getvalue())

    def _chunks(self, out_dir: str, frames_done: int) -> list[str]:
        """The chunks before `frames_done` (a chunk written after the last checkpoint is dropped and redone)."""
        fs, root = fsspec.core.url_to_fs(out_dir)
        kept = []
        for path in sorted(fs.glob(f"{root}/{TRACK_DIR}/chunk-*.parquet")):
            start = int(path.rsplit("-", 1)[-1].split(".")[0])
            if start >= frames_done:
                fs.rm(path)
            else:
                kept.append(path)
        return [f"{out_dir}/{TRACK_DIR}/{p.rsplit('/', 1)[-1]}" for p in kept]

    # -- one frame -------------------------------------------------------------------------------
    def _detector_box(self, image: np.ndarray) -> np.ndarray | None:
        found = self.detector.detect([image], [self.params.gripper_phrase])[0].best()
        return found.xyxy[0] if len(found) else None

    def _projection_box(self, image: np.ndarray, xyz: np.ndarray | None, side: float) -> np.ndarray | None:
        if self.projection is None or xyz is None:
            return None
        x, y = self.projection.project(xyz[None])[0]
        height, width = image.shape[:2]
        if not (np.isfinite(x) and np.isfinite(y) and 0 <= x < width and 0 <= y < height):
            return None
        half = side / 2
        return np.array([max(0, x - half), max(0, y - half), min(width, x + half), min(height, y + half)], np.float32)

    def _lost(self, result: MaskResult, previous_area: float) -> bool:
        area = float(result.mask.sum())
        if area == 0 or result.score < self.params.reseed_min_score:
            return True
        ratio = max(area, previous_area) / max(1.0, min(area, previous_area)) if previous_area else 1.0
        return ratio > self.params.reseed_area_ratio

    def _seed(self, frame: _Frame, side: float) -> tuple[MaskResult | None, str | None]:
        box = self._detector_box(frame.image)
        how = "detector"
        if box is None:
            box, how = self._projection_box(frame.image, frame.ee_xyz, side), "projection"
        if box is None:
            return None, None
        return self.tracker.seed(frame.image, box=box), how

    # -- the pass --------------------------------------------------------------------------------
    def run(self, out_dir: str, parts: list[str]) -> dict[str, Any]:
        fs, root = fsspec.core.url_to_fs(out_dir)
        if fs.exists(f"{root}/{SUMMARY_FILE}") and fs.exists(f"{root}/{TRACK_FILE}"):
            return json.loads(read_text(f"{out_dir}/{SUMMARY_FILE}"))  # a finished pass (resumed run)
        frames_done, meta = self._load_checkpoint(out_dir)
        meta = {"tracking": False, "previous_area": 0.0, "size": None, **meta}
        chunks = self._chunks(out_dir, frames_done)
        # What the projection is fitted on: a few numbers per frame, kept in memory (no frame is).
        self.samples = self._read(chunks).select(["ee_xyz", "centroid", "score", "width", "height"]).to_pylist()
        self.projection = self._fit(self.samples)
        if frames_done:
            logger.info(f"gripper track: resuming after frame {frames_done} ({len(chunks)} chunks)")
        rows: list[dict[str, Any]] = []
        sides = [float(s) for s in meta.get("sides", [])]
        done = frames_done  # frames tracked so far, over every run of the pass
        with Progress(disable=not sys.stderr.isatty()) as bar:
            task = bar.add_task("gripper track", total=None)
            for position, frame in enumerate(stream_first_close(parts)):
                if position < frames_done:
                    continue
                rows.append(self._track_one(frame, meta, sides))
                self.samples.append({k: rows[-1][k] for k in ("ee_xyz", "centroid", "score", "width", "height")})
                done += 1
                bar.advance(task)
                if len(rows) == self.params.track_checkpoint_every:
                    self._flush(out_dir, done - len(rows), rows, chunks)
                    meta["sides"] = list(sides)
                    self._save_checkpoint(out_dir, done, meta)
                    self.projection = self._fit(self.samples)
                    rows = []
        if rows:
            self._flush(out_dir, done - len(rows), rows, chunks)
        return self._finish(out_dir, chunks)

    def _track_one(self, frame: _Frame, meta: dict[str, Any], sides: list[float]) -> dict[str, Any]:
        height, width = frame.image.shape[:2]
        side = float(np.median(sides)) if sides else 0.1 * float(np.hypot(width, height))
        seed = None
        result = None
        if meta["tracking"] and meta["size"] == [height, width]:
            result = self.tracker.step(frame.image)
            if self._lost(result, meta["previous_area"]):
                result = None
        if result is None:
            result, seed = self._seed(frame, side)
        meta["tracking"] = result is not None and bool(result.mask.any())
        meta["size"] = [height, width]
        row: dict[str, Any] = {"episode_id": frame.episode_id, "width": width, "height": height, "gripper_mask": None,
                               "score": None, "seed": seed, "centroid": None,
                               "ee_xyz": None if frame.ee_xyz is None else frame.ee_xyz.tolist()}
        if meta["tracking"]:
            meta["previous_area"] = float(result.mask.sum())
            box = mask_box(result.mask)
            sides.append(float(max(box[2] - box[0], box[3] - box[1])))
            del sides[:-64]  # the checkpoint keeps these 64: a resumed pass must see the same median
            row.update(gripper_mask=mask_to_rle(result.mask), score=float(result.score),
                       centroid=mask_centroid(result.mask).astype(np.float32).tolist())  # as the chunk stores it
        else:
            meta["previous_area"] = 0.0
        return row

    def _flush(self, out_dir: str, start: int, rows: list[dict[str, Any]], chunks: list[str]) -> None:
        path = f"{out_dir}/{TRACK_DIR}/{CHUNK_PATTERN.format(start=start)}"
        sink = pa.BufferOutputStream()
        pq.write_table(pa.Table.from_pylist(rows, schema=CHUNK_SCHEMA), sink)
        write_bytes_atomic(path, sink.getvalue().to_pybytes())
        chunks.append(path)

    @staticmethod
    def _read(chunks: list[str]) -> pa.Table:
        tables = []
        for path in chunks:
            with fsspec.open(path, "rb") as f:
                tables.append(pq.read_table(f))
        return pa.concat_tables(tables) if tables else CHUNK_SCHEMA.empty_table()

    def _fit(self, samples: list[dict[str, Any]]) -> Projection | None:
        """End effector → mask centroid, fitted with RANSAC on the confident masks (None: too few, or no fit).

        RANSAC's inliers are held to a quarter of the flagging tolerance: a 3×4 camera has 11 degrees of
        freedom, and with the loose tolerance a few outliers bend the fit towards themselves."""
        rows = [r for r in samples if r["ee_xyz"] is not None and r["centroid"] is not None
                and r["score"] >= self.params.reseed_min_score]
        if len(rows) < self.params.projection_min_episodes:
            return None
        diagonal = float(np.median([np.hypot(r["width"], r["height"]) for r in rows]))
        return fit_projection(np.array([r["ee_xyz"] for r in rows]), np.array([r["centroid"] for r in rows]),
                              tolerance_px=self.params.projection_tolerance * diagonal / RANSAC_TOLERANCE_DIVISOR)

    def _finish(self, out_dir: str, chunks: list[str]) -> dict[str, Any]:
        rows = self._read(chunks).to_pylist()
        projection = self._fit(rows)
        out: list[dict[str, Any]] = []
        off = 0
        for i, row in enumerate(rows):
            flags = [RESEEDED] if row["seed"] is not None and i > 0 else []
            if row["seed"] == "projection":
                flags.append(FROM_PROJECTION)
            proposal = None
            if row["gripper_mask"] is not None:
                box = mask_box(rle_to_mask(row["gripper_mask"]))
                proposal = scale_box(box, self.params.proposal_scale, row["width"], row["height"]).tolist()
                if projection is not None and row["ee_xyz"] is not None:
                    error = projection.error(np.array([row["ee_xyz"]]), np.array([row["centroid"]]))[0]
                    tolerance = self.params.projection_tolerance * float(np.hypot(row["width"], row["height"]))
                    if not np.isfinite(error) or error > tolerance:
                        flags.append(OFF_PROJECTION)
                        off += 1
            out.append({"episode_id": row["episode_id"], "gripper_mask": row["gripper_mask"],
                        "gripper_score": row["score"], "proposal_box": proposal, "flags": flags})
        sink = pa.BufferOutputStream()
        pq.write_table(pa.Table.from_pylist(out, schema=TRACK_SCHEMA), sink)
        write_bytes_atomic(f"{out_dir}/{TRACK_FILE}", sink.getvalue().to_pybytes())
        seeds = [r["seed"] for r in rows]
        frames = len(rows)
        summary = {
            "frames": frames,
            "with_mask": sum(r["gripper_mask"] is not None for r in rows),
            "seeded_by_detector": seeds.count("detector"),
            "seeded_by_projection": seeds.count("projection"),
            "reseeds": sum(s is not None for s in seeds[1:]),
            "reseed_rate": round(sum(s is not None for s in seeds[1:]) / frames, 4) if frames else 0.0,
            "projection": None if projection is None else {
                "inlier_rate": round(float(projection.inliers.mean()), 4),
                "median_error_px": round(float(projection.error_px), 2), "off_projection": off},
        }
        write_text_atomic(f"{out_dir}/{SUMMARY_FILE}", json.dumps(summary))
        return summary


def read_track(out_dir: str) -> dict[str, dict[str, Any]]:
    """episode_id → its track row (gripper mask, score, proposal box, flags), as the units read it."""
    with fsspec.open(f"{out_dir}/{TRACK_FILE}", "rb") as f:
        return {row["episode_id"]: row for row in pq.read_table(f).to_pylist()}
