"""The gaze pipeline (ReconVLA §3.3): episodes → (full image, gaze crop) pairs.

annotate (per episode)
    target phrase from the instruction (rules or an LLM) → decode each chosen
    camera's frames (threads) → batched detection of the phrase (Grounding DINO by
    default; with `phase_aware`, the destination while the gripper holds the object:
    annotators/gripper.py) → best box
    per frame → temporal consistency per phase (jumps rejected, short gaps
    interpolated, the rest flagged no_box) → crop window (margin, minimum size,
    clipping, optional square) → one row per frame and camera.
    A bad frame (one that does not decode, or has another size than its camera's other
    frames) quarantines the episode, the reason naming the camera and the frame index:
    every frame of the chosen cameras is decoded here, before any detection, so rows,
    montage tiles and everything after the unit only ever hold frames that decoded. The
    episode rather than the frame: the track's consistency, gaps and phases are per episode.
finalize (per run)
    coverage statistics from the shards' records and a montage PNG (pipelines/gaze/montage.py): full
    images with crop window and box next to their crops, an example frame of each of the first episodes
    and one frame per quality flag of the run, each labelled in full, under a legend.

Options (flags, recorded in the manifest; `python -m pipelines options gaze` lists them): any GazeParams
field (model, phrase_extractor, detector, square, ...) overrides the card; the run-time keys are GazeOptions.
"""

from __future__ import annotations

import functools
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from pydantic import Field

from annotators.detection import Detector, DetectorConfig, make_detector
from annotators.gaze import (
    GazeTrack,
    box_to_crop_box,
    consistent_track,
    crop_image,
    detections_to_track,
    runs,
)
from annotators.gripper import gripper_to_holding
from annotators.phrases import PhraseExtractor, TargetPhrases, to_detector_prompt
from annotators.weights import Weights, require_weights
from datasets_cards import Episode, EpisodeError, SourceCard
from datasets_cards.codecs import encode_jpeg, is_jpeg
from datasets_cards.manifest import Manifest
from datasets_cards.params import with_overrides
from pipelines.base import Pipeline, checked_frames, register_pipeline
from pipelines.gaze.montage import (
    EXAMPLE,
    SHOWN_FLAGS,
    choose_tiles,
    flag_tiles,
    legend_image,
    row_to_tile_png,
)
from pipelines.io import write_bytes_atomic
from pipelines.io.montage import TILES_DIR, write_montage
from pipelines.options import ModelOptions, PhraseOptions
from pipelines.phrases import check_phrase_endpoint, run_phrase_extractor

ENV_LLM_CACHE = "GAZE_LLM_CACHE"  # fsspec path of the LLM phrase cache when no option names one
OBJECT, DESTINATION = "object", "destination"  # the `phase` column: which phrase the detector was asked for


class GazeOptions(ModelOptions, PhraseOptions):
    """The gaze pipeline's run-time keys (besides GazeParams' fields)."""

    NOT_HASHED = frozenset({"montage"})  # how the run goes, not its rows

    montage: int = Field(8, ge=0, description="rows in montage.png (0 = none)")


@register_pipeline("gaze")
class GazePipeline(Pipeline):
    concurrency_limit = "gpu"  # Grounding DINO: at most the GPUs' worth of units hold the model at once
    options_model = GazeOptions
    run_options: GazeOptions

    def __init__(self, source: SourceCard, options: dict[str, Any] | None = None, detector: Detector | None = None):
        super().__init__(source, options)
        self.params = with_overrides(source.params.gaze, self.options)
        self.extractor: PhraseExtractor = run_phrase_extractor(self.params.phrase_extractor, self.params.extra,
                                                                self.options, ENV_LLM_CACHE)
        # Built here, once per worker: missing weights stop the run before any unit starts.
        config = self.detector_config()
        if detector is None and self.params.detector == "transformers":
            self.weights = [Weights("Grounding DINO", config.model, "model", config.device, config.dtype)]
            require_weights(self.weights)
        self.detector = detector or make_detector(self.params.detector, config)
        self.pool = ThreadPoolExecutor(self.run_options.decode_workers)
        # Units of one worker share the model; one forward pass at a time: on a GPU they queue anyway, and
        # on a CPU two torch calls from two threads oversubscribe the cores (each spins its own OpenMP team).
        self.model_lock = threading.Lock()
        # Per output folder, the lowest episode index this worker drew a montage tile of each flag from.
        self.flag_tiles_drawn: dict[str, dict[str, int]] = {}
        self.flag_tiles_lock = threading.Lock()

    @classmethod
    def preflight(cls, params: Any, options: dict[str, Any]) -> None:
        check_phrase_endpoint(params, options)

    def detector_config(self) -> DetectorConfig:
        p = self.params
        return DetectorConfig(
            model=p.model, device=self.run_options.device,
            box_threshold=p.box_threshold, text_threshold=p.text_threshold,
            max_detections=p.max_detections, batch_size=p.batch_size,
        )

    def cameras(self, episode: Episode) -> list[str]:
        wanted = self.params.cameras or self.source.cameras_with_view("exterior") or episode.cameras
        missing = [c for c in wanted if c not in episode.frames]
        if missing:
            raise EpisodeError(f"cameras {missing} not in the episode (has {episode.cameras})", episode.episode_id)
        return list(wanted)

    def phrases(self, episode: Episode) -> TargetPhrases:
        try:
            return self.extractor(episode.instruction)
        except ValueError as e:
            raise EpisodeError(f"no target phrase: {e}", episode.episode_id) from e

    def frames(self, episode: Episode, camera: str) -> np.ndarray:
        """Every frame of `camera`, decoded by the pool and checked (FrameDecodeError names a bad one)."""
        return checked_frames(episode, camera, self.pool.map)

    def track(self, frames: np.ndarray, prompts: list[str], fps: float) -> tuple[GazeTrack, list]:
        """Detect every frame, then make the track consistent within each run of one prompt."""
        with self.model_lock:
            detections = self.detector.detect(list(frames), prompts)
        boxes, scores = detections_to_track(detections)
        height, width = frames.shape[1:3]
        p = self.params
        parts = [
            consistent_track(
                boxes[a:b], scores[a:b], fps, (width, height), jump_iou=p.jump_iou,
                max_centre_speed=p.max_centre_speed, neighbours=p.consistency_neighbours,
                max_gap=round(p.max_gap_s * fps), low_score=p.low_score,
            )
            for a, b in runs(np.asarray(prompts))
        ]
        track = GazeTrack(
            np.concatenate([t.boxes for t in parts]), np.concatenate([t.scores for t in parts]),
            [f for t in parts for f in t.flags],
        )
        return track, detections

    def holding(self, episode: Episode) -> np.ndarray:
        """T bool: the frames where the gripper holds the object (closes of the card's normalised gripper)."""
        p, gripper = self.params, self.source.gripper
        # A commanded gripper (LIBERO/CALVIN actions) reads fully closed on an object too: no missed-grasp test.
        empty_close = p.empty_close if gripper is not None and gripper.source == "state" else None
        return gripper_to_holding(episode.gripper, p.close_rise, p.min_close_frames, empty_close)

    def annotate(self, episode: Episode) -> list[dict[str, Any]]:
        target = self.phrases(episode)
        phases = [OBJECT] * episode.num_frames
        if self.params.phase_aware and target.destination:
            phases = [DESTINATION if h else OBJECT for h in self.holding(episode)]
        phrase = {OBJECT: to_detector_prompt(target.object)}
        if target.destination:
            phrase[DESTINATION] = to_detector_prompt(target.destination)
        prompts = [phrase[phase] for phase in phases]
        # Every chosen camera is decoded and checked before any detection: a bad frame costs no model time.
        decoded = {camera: self.frames(episode, camera) for camera in self.cameras(episode)}
        rows: list[dict[str, Any]] = []
        for camera, frames in decoded.items():
            track, _ = self.track(frames, prompts, episode.fps)
            row = functools.partial(self.row, episode, camera, encoded=episode.frames[camera].encoded, track=track)
            rows.extend(self.pool.map(lambda t, row=row, frames=frames: row(t, frames[t], prompt=prompts[t],
                                                                            phase=phases[t]),
                                      range(episode.num_frames)))
        return rows

    def row(self, episode: Episode, camera: str, t: int, image: np.ndarray, encoded, track: GazeTrack,
            prompt: str, phase: str) -> dict[str, Any]:
        height, width = image.shape[:2]
        p = self.params
        box = crop_box = crop = None
        if track.has_box[t]:
            box = track.boxes[t]
            crop_box = box_to_crop_box(box, width, height, margin=p.margin, min_size=p.min_crop, square=p.square)
            crop = encode_jpeg(crop_image(image, crop_box, p.square), p.jpeg_quality)
        # The source's own JPEG is kept as it is (no second lossy pass).
        image_bytes = encoded[t] if encoded is not None and is_jpeg(encoded[t]) else encode_jpeg(image, p.jpeg_quality)
        score = track.scores[t]
        return {
            "episode_id": episode.episode_id, "source": episode.source, "frame_index": t, "camera": camera,
            "instruction": episode.instruction, "target_phrase": prompt, "phase": phase,
            "image": image_bytes, "crop": crop,
            "box": None if box is None else [float(v) for v in box],
            "crop_box": None if crop_box is None else [int(v) for v in crop_box],
            "score": None if not np.isfinite(score) else float(score), "flags": track.flags[t],
            "width": width, "height": height, "state": episode.arm_state[t].tolist(),
            "gripper": float(episode.gripper[t]), "action": episode.actions[t].tolist(),
        }

    def unit_stats(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        flags = Counter(f for r in rows for f in r["flags"])
        per_episode: dict[tuple[str, str], list[bool]] = {}
        for r in rows:
            per_episode.setdefault((r["episode_id"], r["camera"]), []).append(r["box"] is not None)
        return {
            "frames": len(rows), "with_box": sum(r["box"] is not None for r in rows), "flags": dict(flags),
            "episode_coverage": [round(float(np.mean(v)), 4) for v in per_episode.values()],
            "phrases": dict(Counter(r["target_phrase"] for r in rows)),
            "destination_frames": sum(r["phase"] == DESTINATION for r in rows),
        }

    def finalize(self, out_dir: str, manifest: Manifest) -> dict[str, Any]:
        records = [s.stats for s in manifest.shards]
        frames = sum(s.get("frames", 0) for s in records)
        with_box = sum(s.get("with_box", 0) for s in records)
        flags: Counter = Counter()
        phrases: Counter = Counter()
        coverage: list[float] = []
        for s in records:
            flags.update(s.get("flags", {}))
            phrases.update(s.get("phrases", {}))
            coverage.extend(s.get("episode_coverage", []))
        cov = np.asarray(coverage, np.float64)
        stats: dict[str, Any] = {
            "frames": frames, "with_box": with_box, "coverage": round(with_box / frames, 4) if frames else 0.0,
            "flags": {k: int(flags.get(k, 0)) for k in sorted(flags)},
            "destination_frames": sum(s.get("destination_frames", 0) for s in records),
            "episode_coverage": {
                "episodes": len(cov),
                "min": round(float(cov.min()), 4) if len(cov) else 0.0,
                "median": round(float(np.median(cov)), 4) if len(cov) else 0.0,
                "mean": round(float(cov.mean()), 4) if len(cov) else 0.0,
                "below_half": int((cov < 0.5).sum()),
            },
            "top_phrases": dict(phrases.most_common(10)),
            "params": self.params.model_dump(mode="json", exclude={"extra"}),
        }
        tiles = [t for s in records for t in s.get("montage_tiles", [])][: self.montage_rows]
        flagged: dict[str, list] = {}
        for s in records:
            for flag, candidates in s.get("montage_flag_tiles", {}).items():
                flagged.setdefault(flag, []).extend(candidates)
        tiles += flag_tiles(flagged)
        stats["montage"] = write_montage(out_dir, tiles, legend_image()) if tiles else None
        return stats

    @property
    def montage_rows(self) -> int:
        return self.run_options.montage

    def flags_to_draw(self, out_dir: str, index: int, rows: list[dict[str, Any]]) -> set[str]:
        """The flags of an episode's rows to draw a montage tile of: those this worker has drawn from no
        earlier episode. The run's lowest episode with a flag always draws it, whichever worker has it,
        so finalize's pick (the lowest index) does not depend on scheduling, and a retried unit redraws."""
        present = {f for r in rows for f in r["flags"]} & set(SHOWN_FLAGS)
        with self.flag_tiles_lock:
            lowest = self.flag_tiles_drawn.setdefault(out_dir, {})
            chosen = {f for f in present if index <= lowest.get(f, index)}
            lowest.update(dict.fromkeys(chosen, index))
        return chosen

    def episode_artifacts(self, episode: Episode, rows: list[dict[str, Any]], out_dir: str, index: int) -> dict[str, Any]:
        """Montage tiles: the example frame of the first `montage` episodes, and frames of the flags to draw."""
        if not self.montage_rows:
            return {}
        stats: dict[str, Any] = {}
        for reason, row in choose_tiles(rows, index < self.montage_rows, self.flags_to_draw(out_dir, index, rows)):
            relative = f"{TILES_DIR}/tile-{index:06d}-{reason}.png"
            write_bytes_atomic(f"{out_dir}/{relative}", row_to_tile_png(row, reason))
            if reason == EXAMPLE:
                stats["montage_tiles"] = [relative]
            else:
                stats.setdefault("montage_flag_tiles", {})[reason] = [[index, relative]]
        return stats
