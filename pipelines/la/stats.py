"""la statistics (LA4VLA Table 3, primitive histogram, cross-check agreement) that add up.

`rows_to_counts` turns any set of rows (one episode's, one shard's) into counts
that sum with `pipelines.base.merge_stats`; `counts_to_stats` turns the run's
summed counts into what card.md shows. So the run's statistics come from the
shard records, and a rewrite (verification) streams shard by shard.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

COUNT_COLUMNS = ["source_episode_id", "start", "end", "subaction", "segmenter", "agreement", "verified"]
COUNT_KEYS = ("candidates", "candidate_frames", "source_episodes", "source_frames", "verified_segments",
              "verified_frames", "agreements", "primitives", "segmenters")


def rows_to_counts(rows: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Additive counts of la rows (every episode's rows must be in the same call: they give its length)."""
    rows = list(rows)
    source_frames: dict[str, int] = {}
    for r in rows:  # segments cover their episode contiguously: the last end is its length
        source_frames[r["source_episode_id"]] = max(source_frames.get(r["source_episode_id"], 0), r["end"])
    verified = [r["end"] - r["start"] for r in rows if r["verified"]]
    return {
        "candidates": len(rows),
        "candidate_frames": sum(r["end"] - r["start"] for r in rows),
        "source_episodes": len(source_frames),
        "source_frames": sum(source_frames.values()),
        "verified_segments": len(verified),
        "verified_frames": sum(verified),
        "agreements": sum(bool(r["agreement"]) for r in rows),
        "primitives": dict(Counter(r["subaction"] for r in rows)),
        "segmenters": dict(Counter(r["segmenter"] for r in rows)),
    }


def _phase(episodes: int, frames: int) -> dict[str, Any]:
    return {"episodes": episodes, "frames": frames, "frames_per_episode": round(frames / episodes, 2) if episodes else 0.0}


def counts_to_stats(counts: dict[str, Any]) -> dict[str, Any]:
    """LA4VLA Table 3 for this run, the primitive histogram and cross-check agreement."""
    candidates, episodes = counts.get("candidates", 0), counts.get("source_episodes", 0)
    return {
        "table3": {
            "source": _phase(episodes, counts.get("source_frames", 0)),
            "candidates": _phase(candidates, counts.get("candidate_frames", 0)),
            "verified": _phase(counts.get("verified_segments", 0), counts.get("verified_frames", 0)),
        },
        "candidates_per_episode": round(candidates / episodes, 2) if episodes else 0.0,
        "primitives": dict(Counter(counts.get("primitives", {})).most_common()),
        "segmenters": dict(Counter(counts.get("segmenters", {})).most_common()),
        "agreement_rate": round(counts.get("agreements", 0) / candidates, 4) if candidates else 0.0,
    }
