"""Storage figures for card.md: what a frame costs on disk, and what the whole source and corpus would."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from datasets_cards import SourceCard

log = logging.getLogger(__name__)


def source_episodes(card: SourceCard, location: str) -> int | None:
    """Episodes in the whole source (None when its reader cannot say cheaply or at all)."""
    from pipelines.formats import open_reader

    try:
        return int(open_reader(card, location).num_episodes())
    except Exception as e:  # noqa: BLE001 - a projection is optional; the run's own figures stand without it
        log.warning(f"no projection for {card.name}: its episode count could not be read ({type(e).__name__}: {e})")
        return None


def storage_stats(card: SourceCard, location: str, shard_bytes: int, totals: dict[str, int], feature_bytes: int,
                  corpus_steps: int | None) -> dict[str, Any]:
    """Bytes per row and per source frame of this run, and the projections (None where unknown)."""
    rows, frames, episodes = totals["rows"], totals["source_frames"], totals["episodes"]
    if not rows or not frames:
        return {"shard_bytes": shard_bytes, "feature_bytes_per_row": feature_bytes}
    per_frame = shard_bytes / frames
    stats: dict[str, Any] = {
        "shard_bytes": shard_bytes,
        "feature_bytes_per_row": feature_bytes,
        "bytes_per_row": shard_bytes / rows,
        "rows_per_source_frame": rows / frames,
        "bytes_per_source_frame": per_frame,
        "mean_episode_frames": frames / episodes,
    }
    total = source_episodes(card, location)
    if total:
        stats["source_episodes"] = total
        stats["projected_source_bytes"] = int(per_frame * frames / episodes * total)
    if corpus_steps:
        stats["corpus_steps"] = corpus_steps
        stats["projected_corpus_bytes"] = int(per_frame * corpus_steps)
        stats["corpus_feature_bytes"] = int(corpus_steps * rows / frames * feature_bytes)
    return stats


def moments(values: np.ndarray) -> dict[str, Any]:
    """Sums that add up over episodes and units (merge_stats): count, and per dim (keyed "0", "1", ...) Σx, Σx²."""
    values = np.asarray(values, np.float64)
    return {
        "n": len(values),
        "sum": {str(i): float(v) for i, v in enumerate(values.sum(0))},
        "sq": {str(i): float(v) for i, v in enumerate((values**2).sum(0))},
    }


def mean_std(m: dict[str, Any]) -> dict[str, list[float]]:
    """Per-dim mean and standard deviation from summed `moments` (what the trainer normalises with)."""
    n = max(int(m.get("n", 0)), 1)
    dims = sorted(m.get("sum", {}), key=int)
    mean = np.array([m["sum"][d] for d in dims]) / n
    var = np.maximum(np.array([m["sq"][d] for d in dims]) / n - mean**2, 0.0)
    return {"mean": [round(float(v), 6) for v in mean], "std": [round(float(v), 6) for v in np.sqrt(var)]}
