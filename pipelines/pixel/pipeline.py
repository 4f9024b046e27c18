"""The pixel pipeline (Pixel-160K, PixelVLA §4.2): target masks and visual prompts, carried through each episode.

stage `gripper_track` (per run, before the units; pipelines/pixel/first_close.py, gripper_track.py)
    collect: the first gripper-close frame G of every episode (parallel units);
    reduce:  SAM 2 tracks the gripper over those frames as one video, in dataset order, with bounded,
             checkpointed state → one gripper mask and region proposal per episode.
annotate (per unit, episodes batched `batch_size` at a time)
    target noun from the instruction (the rule phrase extractor, or an LLM) → Grounding DINO on the
    proposal's crop of frame G, best box kept → SAM mask from that box on frame G → filters (no box,
    empty, too small, filling the proposal or the image, mostly outside the proposal: each quarantines
    the episode with its reason) → SAM 2 video carries the mask from G forward and backward through the
    episode (`keep_frames: episode`; frames where the object is lost are flagged, not guessed) →
    visual prompts per frame (points, line segments, box; drawn with a generator seeded from the episode
    id, camera and frame, so a re-run is byte-identical) → one row per frame.
finalize (per run)
    statistics from the shard records, the discards by reason from quarantine.parquet, the montage.

Options (flags, recorded in the manifest; `python -m pipelines options pixel` lists them): any PixelParams
field (sam_model, detector_model, keep_frames, proposal_scale, ...) overrides the card; the run-time keys are
PixelOptions (llm_cache falls back to $PIXEL_LLM_CACHE).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import fsspec
import numpy as np
import pyarrow.parquet as pq
from pydantic import Field

from annotators.detection import Detector, DetectorConfig, make_detector
from annotators.phrases import to_detector_prompt
from annotators.pixel import (
    mask_box,
    mask_problem,
    rejection_code,
    seed_from,
    visual_prompts,
)
from annotators.segmentation import (
    Segmenter,
    SegmenterConfig,
    Tracker,
    make_segmenter,
    make_tracker,
)
from annotators.weights import Weights, require_weights
from datasets_cards import Episode, EpisodeError, SourceCard
from datasets_cards.codecs import encode_jpeg, is_jpeg, mask_to_rle, rle_to_mask
from datasets_cards.constants import QUARANTINE_FILE
from datasets_cards.manifest import Manifest
from datasets_cards.params import with_overrides
from pipelines.base import (
    NamedFrames,
    Pipeline,
    Stage,
    checked_frames,
    register_pipeline,
)
from pipelines.io import write_bytes_atomic
from pipelines.io.montage import TILES_DIR, write_montage
from pipelines.options import ModelOptions, PhraseOptions
from pipelines.phrases import check_phrase_endpoint, run_phrase_extractor
from pipelines.pixel.first_close import (
    FIRST_CLOSE_SCHEMA,
    collect_first_close,
    pixel_camera,
)
from pipelines.pixel.gripper_track import TRACK_DIR, TRACK_FILE, GripperTrackPass, read_track
from pipelines.pixel.montage import row_to_tile_png

ENV_LLM_CACHE = "PIXEL_LLM_CACHE"  # fsspec path of the LLM phrase cache when no option names one
STAGE = TRACK_DIR.rsplit("/", 1)[-1]  # "gripper_track"

# Row flags (the output card lists them).
FIRST_CLOSE, PROPAGATED, OBJECT_LOST = "first_close", "propagated", "object_lost"
# Quarantine reason codes of this pipeline (besides annotators.pixel.MASK_REJECTIONS and the stage-1 codes).
NO_GRIPPER, NO_TARGET, NO_BOX = "no_gripper", "no_target", "no_box"


@dataclass
class _Target:
    """One episode on its way through the batch: frame G, its proposal and the detector's prompt."""

    episode: Episode
    frames: np.ndarray  # the kept frames (the whole episode, or G alone)
    g: int  # first-close frame, in the episode
    g_row: int  # ... and in `frames`
    track: dict[str, Any]
    noun: str
    box: np.ndarray | None = None
    score: float | None = None


class PixelOptions(ModelOptions, PhraseOptions):
    """The pixel pipeline's run-time keys (besides PixelParams' fields)."""

    NOT_HASHED = frozenset({"montage"})  # how the run goes, not its rows

    montage: int = Field(8, ge=0, description="episodes shown in montage.png (0 = none)")


@register_pipeline("pixel")
class PixelPipeline(Pipeline):
    concurrency_limit = "gpu"  # Grounding DINO, SAM and SAM 2: at most the GPUs' worth of units at once
    options_model = PixelOptions
    run_options: PixelOptions

    def __init__(self, source: SourceCard, options: dict[str, Any] | None = None, detector: Detector | None = None,
                 segmenter: Segmenter | None = None, tracker: Tracker | None = None):
        super().__init__(source, options)
        self.params = p = with_overrides(source.params.pixel, self.options)
        self.camera = pixel_camera(source, p)
        if self.camera not in source.cameras:
            raise ValueError(f"pixel camera {self.camera!r} is not a camera of {source.name} ({list(source.cameras)})")
        self.extractor = run_phrase_extractor(p.phrase_extractor, p.extra, self.options, ENV_LLM_CACHE)
        device = self.run_options.device
        dino = DetectorConfig(model=p.detector_model, device=device, box_threshold=p.box_threshold,
                              text_threshold=p.text_threshold, max_detections=10, batch_size=p.batch_size)
        sam = SegmenterConfig(model=p.sam_model, device=device, batch_size=p.batch_size)
        # Built here, once per worker: missing weights stop the run before any unit starts, all named at once.
        self.weights = [Weights(family, config.model, option, device, config.dtype)
                        for family, config, option, backend, given in (
                            ("Grounding DINO", dino, "detector_model", p.detector, detector),
                            ("SAM 2", sam, "sam_model", p.segmenter, segmenter))
                        if backend == "transformers" and given is None]
        require_weights(self.weights)
        self.detector = detector or make_detector(p.detector, dino)
        self.segmenter = segmenter or make_segmenter(p.segmenter, sam)
        self.tracker = tracker or make_tracker(p.segmenter, sam)
        self.pool = ThreadPoolExecutor(self.run_options.decode_workers)
        self.model_lock = threading.Lock()  # one forward pass at a time per worker (see the gaze pipeline)
        self._stage_lock = threading.Lock()
        # (out_dir, the track file's identity) → (stage-1 rows, tracks): a re-written track is loaded again.
        self._stages: dict[tuple[str, str], tuple[dict[str, dict], dict[str, dict]]] = {}
        self._current = threading.local()  # the stage this thread's unit reads (load_stages, then annotate_many)

    @classmethod
    def preflight(cls, params: Any, options: dict[str, Any]) -> None:
        check_phrase_endpoint(params, options)

    # -- run-level stage ---------------------------------------------------------------------------
    def stages(self) -> list[Stage]:
        def collect(episodes: Iterable[Episode]) -> list[dict[str, Any]]:
            return collect_first_close(episodes, self.source, self.params)

        def reduce(out_dir: str, parts: list[str]) -> dict[str, Any]:
            with self.model_lock:
                return GripperTrackPass(self.tracker, self.detector, self.params).run(out_dir, parts)

        return [Stage(STAGE, collect, reduce, FIRST_CLOSE_SCHEMA)]

    def load_stages(self, out_dir: str) -> None:
        fs, root = fsspec.core.url_to_fs(out_dir)
        key = (out_dir, fs.ukey(f"{root}/{TRACK_FILE}"))
        with self._stage_lock:
            if key not in self._stages:
                first_close: dict[str, dict] = {}
                for part in sorted(fs.glob(f"{root}/{TRACK_DIR}/unit-*.parquet")):  # the stage's parts (STAGE_PART)
                    with fs.open(part, "rb") as f:
                        for row in pq.read_table(f, columns=["episode_id", "first_close_frame", "reason"]).to_pylist():
                            first_close[row["episode_id"]] = row
                self._stages = {k: v for k, v in self._stages.items() if k[0] != out_dir}  # an older track's
                self._stages[key] = (first_close, read_track(out_dir))
        self._current.stages = self._stages[key]

    def _episode_track(self, episode: Episode) -> tuple[int, dict[str, Any]]:
        """(G, the episode's gripper track row), or the EpisodeError that quarantines it."""
        stages = getattr(self._current, "stages", None)
        if stages is None:
            raise RuntimeError("PixelPipeline.load_stages(out_dir) must run before annotate (the flow calls it)")
        first_close, tracks = stages
        stage1 = first_close.get(episode.episode_id)
        if stage1 is None:
            raise EpisodeError(f"not in the {STAGE} stage's parts (delete {TRACK_DIR} in the output folder and re-run)",
                               episode.episode_id)
        if stage1["reason"]:
            raise EpisodeError(stage1["reason"], episode.episode_id)
        track = tracks.get(episode.episode_id)
        if track is None or track["gripper_mask"] is None:
            raise EpisodeError(f"{NO_GRIPPER}: SAM 2 has no gripper mask at frame {stage1['first_close_frame']} "
                               f"(no '{self.params.gripper_phrase}' detected, no projection to seed from)",
                               episode.episode_id)
        return int(stage1["first_close_frame"]), track

    # -- annotate ----------------------------------------------------------------------------------
    def annotate(self, episode: Episode) -> list[dict[str, Any]]:
        (_, result), = self.annotate_many([episode])
        if isinstance(result, EpisodeError):
            raise result
        return result

    def annotate_many(self, episodes: Iterable[Episode]) -> Iterator[tuple[Episode, list[dict[str, Any]] | EpisodeError]]:
        """Episodes `batch_size` at a time: one detector and one SAM call per batch, then each episode's rows."""
        batch: list[Episode] = []
        for episode in episodes:
            batch.append(episode)
            if len(batch) == self.params.batch_size:
                yield from self._annotate_batch(batch)
                batch = []
        if batch:
            yield from self._annotate_batch(batch)

    def _prepare(self, episode: Episode) -> _Target:
        g, track = self._episode_track(episode)
        try:
            noun = self.extractor(episode.instruction).object
        except ValueError as e:
            raise EpisodeError(f"{NO_TARGET}: {e}", episode.episode_id) from e
        if self.params.keep_frames == "episode":
            frames, g_row = checked_frames(episode, self.camera, self.pool.map), g
        else:
            frames, g_row = NamedFrames(episode, self.camera)[g:g + 1], 0
        return _Target(episode, frames, g, g_row, track, noun)

    def _detect(self, targets: list[_Target]) -> None:
        """The best box of each target's noun inside its proposal, in full-image pixels (None: none found)."""
        crops, offsets = [], []
        for t in targets:
            x0, y0, x1, y1 = (round(v) for v in t.track["proposal_box"])
            crops.append(t.frames[t.g_row][y0:max(y1, y0 + 1), x0:max(x1, x0 + 1)])
            offsets.append(np.array([x0, y0, x0, y0], np.float32))
        with self.model_lock:
            found = self.detector.detect(crops, [to_detector_prompt(t.noun) for t in targets])
        for t, detections, offset in zip(targets, found, offsets):
            best = detections.best()
            if len(best):
                t.box, t.score = best.xyxy[0] + offset, float(best.confidence[0])

    def _annotate_batch(self, episodes: list[Episode]) -> Iterator[tuple[Episode, list[dict[str, Any]] | EpisodeError]]:
        prepared: list[_Target | EpisodeError] = []
        for episode in episodes:
            try:
                prepared.append(self._prepare(episode))
            except EpisodeError as e:
                prepared.append(e)
        targets = [t for t in prepared if isinstance(t, _Target)]
        if targets:
            self._detect(targets)
        boxed = [t for t in targets if t.box is not None]
        if boxed:
            with self.model_lock:
                masks = self.segmenter.segment([t.frames[t.g_row] for t in boxed], [t.box for t in boxed])
        else:
            masks = []
        mask_of = {id(t): m for t, m in zip(boxed, masks)}
        for episode, item in zip(episodes, prepared):
            if isinstance(item, EpisodeError):
                yield episode, item
                continue
            try:
                yield episode, self._episode_rows(item, mask_of.get(id(item)))
            except EpisodeError as e:
                yield episode, e

    def _episode_rows(self, t: _Target, sam) -> list[dict[str, Any]]:
        p, episode = self.params, t.episode
        if t.box is None:
            raise EpisodeError(f"{NO_BOX}: Grounding DINO found no '{t.noun}' in the proposal at frame {t.g}",
                               episode.episode_id)
        proposal = np.asarray(t.track["proposal_box"], np.float32)
        problem = mask_problem(sam.mask, proposal, min_pixels=p.min_mask_pixels, max_of_proposal=p.max_mask_of_proposal,
                               max_of_image=p.max_mask_of_image, min_inside_proposal=p.min_mask_inside_proposal)
        if problem:
            raise EpisodeError(f"{problem} (frame {t.g}, '{t.noun}')", episode.episode_id)
        if p.keep_frames == "episode":
            with self.model_lock:
                masks, scores = self.tracker.propagate(t.frames, t.g, sam.mask)
            scores = scores.astype(np.float32)
            scores[t.g] = sam.score
            indices = range(episode.num_frames)
        else:
            masks, scores, indices = sam.mask[None], np.array([sam.score], np.float32), [t.g]
        encoded = episode.frames[self.camera].encoded

        def row(i: int) -> dict[str, Any]:
            frame = indices[i]
            return self._row(t, frame, t.frames[i], None if encoded is None else encoded[frame], masks[i],
                             float(scores[i]), proposal)

        return list(self.pool.map(row, range(len(indices))))

    def _row(self, t: _Target, frame: int, image: np.ndarray, encoded: bytes | None, mask: np.ndarray, score: float,
             proposal: np.ndarray) -> dict[str, Any]:
        p, episode = self.params, t.episode
        at_g = frame == t.g
        lost = not at_g and (score < p.lost_min_score or not mask.any())
        flags = [FIRST_CLOSE] if at_g else [OBJECT_LOST] if lost else [PROPAGATED]
        flags += list(t.track["flags"])
        points = lines = []
        box = box_prompt = None
        if not lost:
            prompts = visual_prompts(mask, p.num_points, p.num_lines, seed_from(episode.episode_id, self.camera, frame))
            points, lines = prompts.points.tolist(), prompts.lines.tolist()
            box_prompt = None if prompts.box is None else prompts.box.tolist()
            box = (t.box if at_g else mask_box(mask)).tolist()
        height, width = image.shape[:2]
        image_bytes = encoded if encoded is not None and is_jpeg(encoded) else encode_jpeg(image, p.jpeg_quality)
        return {
            "episode_id": episode.episode_id, "source": episode.source, "camera": self.camera, "frame_index": frame,
            "first_close_frame": t.g, "instruction": episode.instruction, "target_noun": t.noun, "image": image_bytes,
            "width": width, "height": height, "state": episode.arm_state[frame].tolist(),
            "gripper": float(episode.gripper[frame]), "action": episode.actions[frame].tolist(),
            "proposal_box": proposal.tolist(), "gripper_mask": t.track["gripper_mask"] if at_g else None,
            "box": box, "mask": None if lost else mask_to_rle(mask), "points": points, "lines": lines,
            "box_prompt": box_prompt, "detector_score": t.score if at_g else None,
            "mask_score": score if np.isfinite(score) else None, "flags": flags,
        }

    # -- statistics, montage -----------------------------------------------------------------------
    def unit_stats(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        at_g = [r for r in rows if FIRST_CLOSE in r["flags"]]
        return {
            "frames": len(rows), "episodes": len(at_g),
            "object_lost": sum(OBJECT_LOST in r["flags"] for r in rows),
            "flags": dict(Counter(f for r in rows for f in r["flags"])),
            "nouns": dict(Counter(r["target_noun"] for r in at_g)),
            "mask_fraction": [round(float(rle_to_mask(r["mask"]).mean()), 5) for r in at_g],  # of the image, at G
        }

    def finalize(self, out_dir: str, manifest: Manifest) -> dict[str, Any]:
        records = [s.stats for s in manifest.shards]

        def total(key: str) -> int:
            return sum(s.get(key, 0) for s in records)

        flags: Counter = Counter()
        nouns: Counter = Counter()
        fractions: list[float] = []
        for s in records:
            flags.update(s.get("flags", {}))
            nouns.update(s.get("nouns", {}))
            fractions.extend(s.get("mask_fraction", []))
        discards, not_annotated = self._discards(out_dir)
        episodes = total("episodes")
        seen = episodes + sum(discards.values())
        frames = total("frames")
        stats: dict[str, Any] = {
            "episodes": episodes, "frames": frames,
            "object_lost_rate": round(total("object_lost") / frames, 4) if frames else 0.0,
            "flags": {k: int(flags[k]) for k in sorted(flags)},
            "discards": {k: int(v) for k, v in discards.most_common()},
            "discard_rate": round(sum(discards.values()) / seen, 4) if seen else 0.0,
            "not_annotated": dict(not_annotated),  # quarantined before the pipeline saw them (read) or failed units
            "mask_fraction_median": round(float(np.median(fractions)), 5) if fractions else None,
            "top_nouns": dict(nouns.most_common(10)),
            "params": self.params.model_dump(mode="json", exclude={"extra"}),
        }
        tiles = [t for s in records for t in s.get("montage_tiles", [])][: self.montage_episodes]
        stats["montage"] = write_montage(out_dir, tiles) if tiles else None
        return stats

    @staticmethod
    def _discards(out_dir: str) -> tuple[Counter, Counter]:
        """(episodes this pipeline discarded, by reason code: "no_box", "small_mask", ...; the other quarantine
        records by stage: episodes the reader could not read, failed units), from quarantine.parquet."""
        fs, root = fsspec.core.url_to_fs(out_dir)
        if not fs.exists(f"{root}/{QUARANTINE_FILE}"):
            return Counter(), Counter()
        with fs.open(f"{root}/{QUARANTINE_FILE}", "rb") as f:
            records = pq.read_table(f, columns=["stage", "reason"]).to_pylist()
        ours = Counter(rejection_code(r["reason"]) for r in records if r["stage"] in ("annotate", "artifacts"))
        return ours, Counter(r["stage"] for r in records if r["stage"] not in ("annotate", "artifacts"))

    @property
    def montage_episodes(self) -> int:
        return self.run_options.montage

    def episode_artifacts(self, episode: Episode, rows: list[dict[str, Any]], out_dir: str, index: int) -> dict[str, Any]:
        """The montage tile of the first `montage` episodes: frame G with proposal, box, mask and prompts."""
        at_g = [r for r in rows if FIRST_CLOSE in r["flags"]]
        if index >= self.montage_episodes or not at_g:
            return {}
        relative = f"{TILES_DIR}/tile-{index:06d}.png"
        write_bytes_atomic(f"{out_dir}/{relative}", row_to_tile_png(at_g[0]))
        return {"montage_tiles": [relative]}
