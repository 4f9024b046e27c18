"""The la pipeline (LA4VLA §4, Appendix 7): episodes → atomic language-action candidates.

annotate (per episode)
    keyframes from the robot state → segments from the configured segmenter
    (kinematic by default; a VLM through an OpenAI-compatible endpoint) →
    kinematic cross-check (`agreement`) → one unverified row per segment.
finalize (per run)
    Table 3 statistics, primitive histogram, token ledger → keyframe plots for a
    few episodes → LeRobot v2.1 layout (vision-free) and, when asked, LA-V with
    camera videos re-read from the source.

Options (flags, recorded in the manifest): segmenter ("kinematic" | "vlm"),
lav (bool, write LA-V videos), plots (episodes to plot), vlm (dict of VlmConfig
fields), vlm_cache (fsspec path of the response cache).
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from annotators.keyframes import episode_to_keyframes, keyframes_to_hints
from annotators.segments.base import SegmentationInput, Segmenter
from annotators.segments.kinematic import KinematicSegmenter
from datasets_cards import Episode, EpisodeError, SourceCard
from datasets_cards.manifest import Manifest
from pipelines.base import Pipeline, register_pipeline
from pipelines.la import dataset
from pipelines.la.plots import write_episode_plot

ENV_VLM_CACHE = "LA_VLM_CACHE"  # fsspec path of the VLM response cache when no option names one
DEFAULT_PLOTS = 3  # episodes plotted into OUT/plots/ for card.md
# Token ledger fields summed into the manifest: paid in the run, and replayed from the cache.
TOKEN_COUNTS = ("input_tokens", "output_tokens", "requests", "cache_hits", "cached_input_tokens", "cached_output_tokens")


@register_pipeline("la")
class LaPipeline(Pipeline):
    def __init__(self, source: SourceCard, options: dict[str, Any] | None = None):
        super().__init__(source, options)
        self.params = source.params.la
        self.kinematic = KinematicSegmenter(self.params.kinematic, self.params.min_segment_frames)
        self.segmenter_name = str(self.options.get("segmenter", self.params.segmenter))
        self.segmenter: Segmenter = self._make_segmenter(self.segmenter_name)

    def _make_segmenter(self, name: str) -> Segmenter:
        if name == "kinematic":
            return self.kinematic
        if name == "vlm":
            try:
                from annotators.segments.vlm import VlmSegmenter
            except ImportError as e:
                raise ImportError(f"the VLM segmenter is not available: {e}") from e
            settings = {
                "vlm_fps": self.params.vlm_fps,
                "frame_size": tuple(self.params.vlm_frame_size),
                "min_segment_frames": self.params.min_segment_frames,
                **self.params.extra.get("vlm", {}),
                **dict(self.options.get("vlm") or {}),
            }
            cache_path = self.options.get("vlm_cache") or os.environ.get(ENV_VLM_CACHE)
            cache = None
            if cache_path:
                import fsspec

                cache = fsspec.get_mapper(str(cache_path), create=True)
            return VlmSegmenter.from_env(self.kinematic, cache=cache, **settings)
        raise ValueError(f"unknown segmenter {name!r}; choose 'kinematic' or 'vlm'")

    def segmentation_input(self, episode: Episode) -> tuple[SegmentationInput, list]:
        keyframes = episode_to_keyframes(episode.arm_state, episode.gripper, episode.fps, self.params.keyframes)
        frames = {}
        if self.segmenter_name != "kinematic":  # only the VLM looks at pixels (decoded lazily)
            views = {name: spec.view for name, spec in self.source.cameras.items()}
            frames = {name: (views.get(name, name), seq) for name, seq in episode.frames.items()}
        item = SegmentationInput(
            episode_id=episode.episode_id,
            task=episode.instruction,
            fps=episode.fps,
            arm_state=episode.arm_state,
            gripper=episode.gripper,
            state_names=list(self.source.state.names),
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
        return dataset.segments_to_rows(episode, self.source, segments, kinematic, keyframes, location)

    def unit_stats(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        stats: dict[str, Any] = {"candidates": len(rows), "candidate_frames": sum(r["end"] - r["start"] for r in rows)}
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
            stats["tokens"] = {**totals, "by_episode": by_episode}
        return stats

    def finalize(self, out_dir: str, manifest: Manifest) -> dict[str, Any]:
        table = dataset.read_shards(out_dir, manifest)
        stats = dataset.table_to_stats(table)
        stats["segmenter"] = self.segmenter_name
        tokens = [s.stats["tokens"] for s in manifest.shards if "tokens" in s.stats]
        if tokens:
            per_episode = np.array([v for t in tokens for v in t.get("by_episode", {}).values()], dtype=float)
            stats["tokens"] = {name: sum(t.get(name, 0) for t in tokens) for name in TOKEN_COUNTS}
            if per_episode.size:
                stats["tokens"].update(episodes=len(per_episode),
                                       input_per_episode=round(float(per_episode[:, 0].mean()), 1),
                                       output_per_episode=round(float(per_episode[:, 1].mean()), 1))
        stats["plots"] = self.write_plots(out_dir, table)
        stats["lerobot"] = self.write_lerobot(out_dir, manifest, table)
        if self.options.get("review", True):
            stats["review"] = self.send_to_review(out_dir, manifest)
        return stats

    def send_to_review(self, out_dir: str, manifest: Manifest) -> str:
        """Push candidates to Label Studio when LABEL_STUDIO_URL is set, else write importable task JSON."""
        from pipelines.review.push import push_or_export

        if "://" in out_dir and not out_dir.startswith("file://"):
            return "skipped: Label Studio serves clips from a local output folder"
        result = push_or_export(out_dir, card=self.source, location=manifest.source_location)
        print(result.summary())
        return result.summary()

    def write_plots(self, out_dir: str, table) -> list[str]:
        """Keyframe plots of the first few source episodes (rebuilt from the contiguous segments)."""
        wanted = int(self.options.get("plots", DEFAULT_PLOTS))
        episode_ids = list(dict.fromkeys(table.column("source_episode_id").to_pylist()))[:wanted]
        paths = []
        for i, episode_id in enumerate(episode_ids):
            rows = table.filter(table.column("source_episode_id").to_numpy(zero_copy_only=False) == episode_id)
            rows = sorted(rows.to_pylist(), key=lambda r: r["start"])
            state = np.concatenate([np.asarray(r["state"], dtype=np.float64) for r in rows])
            gripper = np.concatenate([np.asarray(r["gripper"], dtype=np.float64) for r in rows])
            fps = float(rows[0]["fps"])
            keyframes = episode_to_keyframes(state, gripper, fps, self.params.keyframes)
            relative = f"{dataset.PLOTS_DIR}/episode-{i:03d}.png"
            write_episode_plot(f"{out_dir}/{relative}", episode_id, state, gripper, fps, self.params.keyframes,
                               keyframes, [(r["start"], r["end"], r["subaction"]) for r in rows])
            paths.append(relative)
        return paths

    def write_lerobot(self, out_dir: str, manifest: Manifest, table) -> dict[str, Any]:
        return dataset.write_layouts(out_dir, manifest, table, self.source, lav=bool(self.options.get("lav", False)))
