"""The la pipeline (LA4VLA §4, Appendix 7): episodes → atomic language-action candidates.

annotate (per episode)
    keyframes from the robot state → segments from the configured segmenter
    (kinematic by default; a VLM through an OpenAI-compatible endpoint) →
    kinematic cross-check (`agreement`) → one unverified row per segment.
episode artifacts (per episode, inside the unit, while its frames are in memory)
    keyframe plot for the first few episodes, review clips (a state plot per segment when the
    source has no cameras), LA-V clips (`lav`, only with cameras).
    A bad frame: the frames the clips need (the review cameras with review on and a local
    output, every camera with `lav`) are decoded and checked first, all of them; one that
    does not decode or has another size quarantines the episode, the reason naming camera and
    frame index ("bad frame: camera 'wrist_left' frame 29 of 30: ..."), and nothing of it is
    written. Not flagged rows without a clip: a segment without its clip cannot be verified in
    Label Studio (so it could never reach the verified set) and would leave LA-V short of a
    camera. Frames no clip needs are never decoded (the kinematic segmenter reads state only),
    so with review off and no `lav` a bad frame costs nothing.
finalize (per run)
    Table 3 statistics, primitive histogram, token ledger, from the shard records.
steps (per run, each a retried task)
    lerobot: LeRobot layout, v3.0 by default (vision-free) and, with `lav`, LA-V;
    review:  push the candidates to Label Studio, or write importable task JSON.

Options (flags, recorded in the manifest; `python -m pipelines options la` lists them): any LaParams field
(segmenter, keyframes, ...) overrides the card; the run-time keys are LaOptions.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import fields
from typing import Any, Literal

import fsspec
import numpy as np
import pyarrow.parquet as pq
from pydantic import Field, field_validator

from annotators.keyframes import episode_to_keyframes, keyframes_to_hints
from annotators.kinematics import POSE_NAMES, PoseError, pose_from_state
from annotators.segments.base import SEGMENTERS, SegmentationInput, Segmenter
from annotators.segments.kinematic import KinematicSegmenter
from datasets_cards import Episode, EpisodeError, SourceCard
from datasets_cards.manifest import Manifest
from datasets_cards.params import with_overrides
from pipelines.base import (
    NamedFrames,
    Pipeline,
    Step,
    checked_frames,
    merge_stats,
    register_pipeline,
)
from pipelines.la import export, stats
from pipelines.la.plots import write_episode_plot
from pipelines.la.review import push
from pipelines.la.rows import segments_to_rows
from pipelines.options import RunOptions

ENV_VLM_CACHE = "LA_VLM_CACHE"  # fsspec path of the VLM response cache when no option names one
PLOTS_DIR = "plots"
# Token ledger fields summed into the manifest: paid in the run, and replayed from the cache.
TOKEN_COUNTS = ("input_tokens", "provider_cached_input_tokens", "output_tokens", "requests", "cache_hits",
                "cached_input_tokens", "cached_output_tokens", "throttled")
REMOTE_REVIEW_SKIPPED = "skipped: Label Studio serves clips from a local output folder"


def _is_remote(out_dir: str) -> bool:
    return "://" in out_dir and not out_dir.startswith("file://")


class LaOptions(RunOptions):
    """The la pipeline's run-time keys (besides LaParams' fields)."""

    NOT_HASHED = frozenset({"plots", "vlm_cache", "lerobot_version"})  # how the run goes, not its rows

    review: bool = Field(True, description="review clips and Label Studio tasks (false: candidates only)")
    lav: bool = Field(False, description="write the LA-V videos (sources with cameras)")
    lerobot_version: Literal["3.0", "2.1"] = Field(
        export.DEFAULT_LEROBOT_VERSION, description="LeRobot layout of lerobot/ and lerobot_v/: 3.0 (what LeRobot "
                                                    ">= 0.4 loads) or 2.1 (LA-33K's published layout)")
    plots: int = Field(3, ge=0, description="episodes whose keyframe plot goes to OUT/plots/ for card.md")
    vlm: dict[str, Any] = Field(default_factory=dict, description="segmenter=vlm: VlmConfig fields over the card's "
                                                                  '(e.g. {"model": ..., "max_in_flight": 4})')
    vlm_cache: str | None = Field(None, description=f"segmenter=vlm: folder or fsspec URL of cached responses "
                                                    f"(default ${ENV_VLM_CACHE})")

    @field_validator("vlm")
    @classmethod
    def _vlm_fields(cls, value: dict[str, Any]) -> dict[str, Any]:
        # Imported here: the vlm package imports the openai client, which only a VLM run needs.
        from annotators.segments.vlm.config import VlmConfig

        known = sorted(f.name for f in fields(VlmConfig))
        unknown = sorted(set(value) - set(known))
        if unknown:
            raise ValueError(f"unknown VLM setting(s) {unknown}; known: {', '.join(known)}")
        return value


@register_pipeline("la")
class LaPipeline(Pipeline):
    needs_cameras = False  # segments come from state; cameras only feed review clips, LA-V and the VLM
    options_model = LaOptions
    run_options: LaOptions
    def __init__(self, source: SourceCard, options: dict[str, Any] | None = None):
        super().__init__(source, options)
        self.params = with_overrides(source.params.la, self.options)
        # Keyframes and segments read the canonical end-effector pose, however the card stores it.
        self.pose = pose_from_state(source.state, source.name)
        # min_segment_frames is the VLM answers' floor; the kinematic segmenter's is min_segment_s (seconds)
        self.kinematic = KinematicSegmenter(self.params.kinematic)
        self.segmenter_name = self.params.segmenter
        self.segmenter: Segmenter = self._make_segmenter(self.segmenter_name)
        # Without cameras (a state-only recording) review tasks show state plots instead of clips, and
        # there is no LA-V to ship.
        self.review = self.run_options.review
        self.lav = self.run_options.lav and bool(source.cameras)

    def _make_segmenter(self, name: str) -> Segmenter:
        try:
            factory = SEGMENTERS.get(name)
        except ImportError as e:
            raise ImportError(f"the {name} segmenter is not available: {e}") from e
        settings = {
            "vlm_fps": self.params.vlm_fps,
            "frame_size": tuple(self.params.vlm_frame_size),
            "min_segment_frames": self.params.min_segment_frames,
            **self.params.extra.get(name, {}),
            **dict(self.options.get(name) or {}),
        }
        cache_path = self.options.get(f"{name}_cache") or (os.environ.get(ENV_VLM_CACHE) if name == "vlm" else None)
        cache = None
        if cache_path:
            cache = fsspec.get_mapper(str(cache_path), create=True)
        return factory(self.kinematic, cache=cache, **settings)

    # -- annotate ----------------------------------------------------------------------------------
    def segmentation_input(self, episode: Episode) -> tuple[SegmentationInput, list]:
        try:
            pose = self.pose(episode.arm_state)
        except PoseError as e:
            raise EpisodeError(f"no end-effector pose: {e}", episode.episode_id) from e
        keyframes = episode_to_keyframes(pose, episode.gripper, episode.fps, self.params.keyframes)
        frames = {}
        if self.segmenter is not self.kinematic:  # only the VLM looks at pixels (decoded lazily)
            views = {name: spec.view for name, spec in self.source.cameras.items()}
            frames = {name: (views.get(name, name), NamedFrames(episode, name)) for name in episode.frames}
        item = SegmentationInput(
            episode_id=episode.episode_id,
            task=episode.instruction,
            fps=episode.fps,
            arm_state=pose,
            gripper=episode.gripper,
            state_names=list(POSE_NAMES),
            keyframe_hints=keyframes_to_hints(keyframes, episode.fps),
            keyframes=[k.frame for k in keyframes],
            frames=frames,
        )
        return item, keyframes

    def annotate(self, episode: Episode) -> list[dict[str, Any]]:
        item, keyframes = self.segmentation_input(episode)
        return self._rows(episode, item, keyframes, self.segmenter.segment(item))

    def annotate_many(self, episodes: Iterable[Episode]) -> Iterator[tuple[Episode, list[dict[str, Any]] | EpisodeError]]:
        """With the VLM segmenter, up to its max_in_flight episodes wait on the endpoint at once."""
        segment_many = getattr(self.segmenter, "segment_many", None)
        if segment_many is None:
            yield from super().annotate_many(episodes)
            return
        staged: deque[tuple[Episode, SegmentationInput, list]] = deque()

        def items() -> Iterator[SegmentationInput]:
            for episode in episodes:
                item, keyframes = self.segmentation_input(episode)
                staged.append((episode, item, keyframes))
                yield item

        for result in segment_many(items()):  # results come back in input order
            episode, item, keyframes = staged.popleft()
            yield episode, result if isinstance(result, EpisodeError) else self._rows(episode, item, keyframes, result)

    def _rows(self, episode: Episode, item: SegmentationInput, keyframes: list, segments: list) -> list[dict[str, Any]]:
        kinematic = segments if self.segmenter is self.kinematic else self.kinematic.segment(item)
        location = str(episode.metadata.get("source_location") or self.source.resolve_location())
        return segments_to_rows(episode, self.source, segments, kinematic, keyframes, location)

    # -- inside the unit ---------------------------------------------------------------------------
    def clip_cameras(self, episode: Episode, out_dir: str) -> list[str]:
        """The cameras whose frames this run's clips need: the review cameras (review on, a local output)
        and, with `lav`, every camera."""
        cameras = push.review_cameras(self.source) if self.review and not _is_remote(out_dir) else []
        if self.lav:
            cameras += list(episode.frames)
        return list(dict.fromkeys(cameras))

    def episode_artifacts(self, episode: Episode, rows: list[dict[str, Any]], out_dir: str, index: int) -> dict[str, Any]:
        """Keyframe plot (first `plots` episodes), review clips (or state plots) and LA-V clips, from the episode in memory.

        Every frame the clips need is decoded and checked before anything is written: a bad one raises
        FrameDecodeError (camera, frame index) and the flow quarantines the episode.
        """
        if not rows:
            return {}
        frames = {camera: checked_frames(episode, camera) for camera in self.clip_cameras(episode, out_dir)}
        made: dict[str, Any] = {}
        if index < self.run_options.plots:
            made["plots"] = [self.write_plot(out_dir, episode, rows, index)]
        if self.review and not _is_remote(out_dir):
            cameras = push.review_cameras(self.source)
            if cameras:
                made["review_clips"] = push.write_episode_clips(out_dir, episode, rows, cameras, frames)
                made["review_plots"] = push.write_episode_keyframe_plot(out_dir, episode, rows,
                                                                        self.pose(episode.arm_state),
                                                                        self.params.keyframes)
            else:  # nothing to watch: verifiers judge each segment from its pose and gripper traces
                made["review_plots"] = push.write_episode_state_plots(out_dir, episode, rows,
                                                                      self.pose(episode.arm_state))
        if self.lav:
            made["lav_clips"] = export.stage_lav_videos(out_dir, episode, rows, frames)
        return made

    def write_plot(self, out_dir: str, episode: Episode, rows: list[dict[str, Any]], index: int) -> str:
        state = self.pose(episode.arm_state)  # the pose the keyframes were found on
        gripper = np.asarray(episode.gripper, dtype=np.float64)
        keyframes = episode_to_keyframes(state, gripper, episode.fps, self.params.keyframes)
        relative = f"{PLOTS_DIR}/episode-{index:03d}.png"
        write_episode_plot(f"{out_dir}/{relative}", episode.episode_id, state, gripper, episode.fps,
                           self.params.keyframes, keyframes, [(r["start"], r["end"], r["subaction"]) for r in rows])
        return relative

    def unit_stats(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        counts: dict[str, Any] = stats.rows_to_counts(rows)
        ledger = getattr(self.segmenter, "ledger", None)
        if ledger is not None:
            totals = dict.fromkeys(TOKEN_COUNTS, 0)
            by_episode = {}
            for episode_id in sorted({r["source_episode_id"] for r in rows}):
                spent = ledger.take(episode_id)  # counted once, in the unit that segmented it
                for name in totals:
                    totals[name] += getattr(spent, name)
                # what the episode's answers cost, whether paid now or replayed from the cache
                by_episode[episode_id] = [spent.input_tokens + spent.cached_input_tokens,
                                          spent.output_tokens + spent.cached_output_tokens]
            counts["tokens"] = {**totals, "by_episode": by_episode}
        return counts

    # -- after the units -----------------------------------------------------------------------------
    def finalize(self, out_dir: str, manifest: Manifest) -> dict[str, Any]:
        shards = sorted(manifest.shards, key=lambda s: s.path)
        records = [s.stats for s in shards]
        summed: dict[str, Any] = {}
        for shard in shards:
            summed = _merge_counts(summed, self._shard_counts(out_dir, shard))
        result = stats.counts_to_stats(summed)
        result["segmenter"] = self.segmenter_name
        tokens = [r["tokens"] for r in records if "tokens" in r]
        if tokens:
            per_episode = np.array([v for t in tokens for v in t.get("by_episode", {}).values()], dtype=float)
            result["tokens"] = {name: sum(t.get(name, 0) for t in tokens) for name in TOKEN_COUNTS}
            if per_episode.size:
                result["tokens"].update(episodes=len(per_episode),
                                        input_per_episode=round(float(per_episode[:, 0].mean()), 1),
                                        output_per_episode=round(float(per_episode[:, 1].mean()), 1))
        result["plots"] = [p for r in records for p in r.get("plots", [])]
        return result

    @staticmethod
    def _shard_counts(out_dir: str, shard) -> dict[str, Any]:
        """The shard record's counts; a record written before they existed is counted from its shard once."""
        if all(k in shard.stats for k in stats.COUNT_KEYS):
            return shard.stats
        with fsspec.open(f"{out_dir}/{shard.path}", "rb") as f:
            return stats.rows_to_counts(pq.read_table(f, columns=stats.COUNT_COLUMNS).to_pylist())

    def steps(self) -> list[Step]:
        steps = [Step("lerobot", self.write_lerobot)]
        if self.review:
            steps.append(Step("review", self.send_to_review, on_failure=self.review_failed))
        return steps

    def write_lerobot(self, out_dir: str, manifest: Manifest) -> dict[str, Any]:
        return export.write_layouts(out_dir, manifest, self.source, lav=self.lav,
                                    version=self.run_options.lerobot_version)

    def send_to_review(self, out_dir: str, manifest: Manifest) -> str:
        """Push candidates to Label Studio when LABEL_STUDIO_URL is set, else write importable task JSON."""
        if _is_remote(out_dir):
            return REMOTE_REVIEW_SKIPPED
        result = push.deliver(out_dir, card=self.source)
        print(result.summary())
        return result.summary()

    def review_failed(self, out_dir: str, manifest: Manifest, error: Exception) -> str:
        """Every push failed: the task JSON is written instead, and the summary says how to retry."""
        result = push.export_after_failure(out_dir, error, card=self.source)
        print(result.summary())
        return result.summary()


def _merge_counts(total: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    """Sum the additive la counts of shard records (plots, tokens and other keys are handled apart)."""
    return merge_stats(total, {k: v for k, v in record.items() if k in stats.COUNT_KEYS})
