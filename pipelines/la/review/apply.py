"""Apply human verdicts (LA4VLA Appendix 7.6) to an la output folder.

Phases: read the candidates (the annotate run's shards, never rewritten, so verdicts can
be re-applied as more annotations arrive) → join the verdicts on (source_episode_id,
segment_index) → keep segments whose mean quality ≥ params.la.quality_keep, mark them
verified with their scores and corrections → write them as a new manifest generation
(verified/<n>/, committed by saving the manifest) → `publish`: LeRobot layouts and
card.md from the generation in force.

Corrected boundaries re-cut the segment from its episode: the candidates of one episode
cover it without gaps, so their trajectories joined are the whole episode. A correction
that does not fit the episode keeps the proposed boundaries and is flagged, never dropped
silently.
"""

from __future__ import annotations

from typing import Any

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from annotators.segments.base import VOCABULARY
from datasets_cards import load_output_card
from datasets_cards.manifest import Generation, Manifest, now
from datasets_cards.params.la import LaParams
from pipelines.base import merge_stats
from pipelines.card import write_cards
from pipelines.io import ShardWriter
from pipelines.la import export
from pipelines.la.rows import BOUNDARY_CORRECTED, BOUNDARY_REJECTED
from pipelines.la.stats import counts_to_stats, rows_to_counts

VERIFIED_DIR = "verified"  # verified/<generation>/shard-*.parquet, beside the candidates in shards/

# The verdicts of human review, one row per reviewed segment (pipelines/la/review/pull.py writes them).
VERDICT_SCHEMA = pa.schema([
    pa.field("source_episode_id", pa.string(), nullable=False),
    pa.field("segment_index", pa.int32(), nullable=False),
    pa.field("quality", pa.float32(), nullable=False),  # mean over annotators, 0-3
    pa.field("confidence", pa.float32()),  # mean over annotators who gave one, 0-2
    pa.field("num_annotators", pa.int32(), nullable=False),
    pa.field("corrected_subaction", pa.string()),  # null: the proposal stands
    pa.field("corrected_instruction", pa.string()),
    pa.field("corrected_start", pa.int32()),  # frames of the source episode; null: the proposal stands
    pa.field("corrected_end", pa.int32()),  # exclusive
])
FRAME_COLUMNS = ("state", "gripper", "actions")  # per-frame columns a boundary correction re-cuts


def _check_verdicts(verdicts: pa.Table) -> pa.Table:
    missing = [n for n in VERDICT_SCHEMA.names if n not in verdicts.column_names]
    if missing:
        raise ValueError(f"verdicts lack columns {missing}; expected {VERDICT_SCHEMA.names}")
    verdicts = verdicts.select(VERDICT_SCHEMA.names).cast(VERDICT_SCHEMA)
    bad = sorted({s for s in verdicts.column("corrected_subaction").to_pylist() if s and s not in VOCABULARY})
    if bad:
        raise ValueError(f"corrected_subaction values {bad} are not in the LA vocabulary {VOCABULARY}")
    keys = list(zip(verdicts.column("source_episode_id").to_pylist(), verdicts.column("segment_index").to_pylist()))
    if len(set(keys)) != len(keys):
        raise ValueError("verdicts hold more than one row for some (source_episode_id, segment_index)")
    return verdicts


def _remove_dir(path: str) -> None:
    fs, root = fsspec.core.url_to_fs(path)
    if fs.exists(root):
        fs.rm(root, recursive=True)


def _read_shard(out_dir: str, shard_path: str) -> list[dict[str, Any]]:
    with fsspec.open(f"{out_dir}/{shard_path}", "rb") as f:
        return pq.read_table(f).to_pylist()


def episode_trajectories(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """source_episode_id → its whole per-frame columns and keyframes, joined from its candidate rows
    (None for an episode whose candidates leave gaps or overlap: nothing to re-cut from)."""
    by_episode: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_episode.setdefault(row["source_episode_id"], []).append(row)
    out: dict[str, dict[str, Any]] = {}
    for episode_id, segments in by_episode.items():
        segments.sort(key=lambda r: r["start"])
        contiguous = segments[0]["start"] == 0 and all(a["end"] == b["start"] for a, b in zip(segments, segments[1:]))
        out[episode_id] = {
            "num_frames": segments[-1]["end"],
            **{c: [v for r in segments for v in r[c]] for c in FRAME_COLUMNS},
            "keyframes": sorted({f for r in segments for f in r["keyframes"]}),
        } if contiguous else None
    return out


def recut(row: dict[str, Any], start: int | None, end: int | None, episode: dict[str, Any] | None) -> dict[str, Any]:
    """`row` cut to the corrected [start, end) of its episode, or unchanged and flagged when that cannot be."""
    start = row["start"] if start is None else int(start)
    end = row["end"] if end is None else int(end)
    if (start, end) == (row["start"], row["end"]):
        return row
    why = None
    if episode is None:
        why = "episode_not_contiguous"
    elif not 0 <= start < end <= episode["num_frames"]:
        why = f"[{start},{end})_outside_[0,{episode['num_frames']})"
    if why is not None:
        return dict(row, flags=[*row["flags"], f"{BOUNDARY_REJECTED}:{why}"])
    return dict(row, start=start, end=end, **{c: episode[c][start:end] for c in FRAME_COLUMNS},
                keyframes=[f for f in episode["keyframes"] if start <= f < end],
                flags=[*row["flags"], BOUNDARY_CORRECTED])


def _apply(rows: list[dict[str, Any]], verdicts: dict[tuple, dict], keep: float) -> list[dict[str, Any]]:
    episodes = episode_trajectories(rows)
    kept = []
    for row in rows:
        verdict = verdicts.get((row["source_episode_id"], row["segment_index"]))
        if verdict is None or verdict["quality"] < keep:
            continue
        row = dict(row, verified=True, quality=verdict["quality"], confidence=verdict["confidence"],
                   num_annotators=verdict["num_annotators"])
        if verdict["corrected_subaction"]:
            row["subaction"] = verdict["corrected_subaction"]
        if verdict["corrected_instruction"]:
            row["instruction"] = verdict["corrected_instruction"]
        row = recut(row, verdict["corrected_start"], verdict["corrected_end"], episodes[row["source_episode_id"]])
        row["agreement"] = row["kinematic_subaction"] == row["subaction"]
        kept.append(row)
    return kept


def apply_verdicts(out_dir: str, verdicts: pa.Table) -> dict[str, Any]:
    """Write the verified segments of OUT/la/<source>/ as a new generation and commit it. Returns verification stats.

    The candidates (the annotate run's shards) are read, never rewritten: the verified shards go to
    verified/<generation>/, and saving the manifest makes them current. A review killed before that
    leaves the previous generation in force; its half-written folder is removed by the next one.
    """
    out_dir = out_dir.rstrip("/")
    manifest = Manifest.load(out_dir)
    if manifest.pipeline != "la":
        raise ValueError(f"{out_dir} holds the {manifest.pipeline!r} dataset, not 'la'")
    params = LaParams.model_validate(manifest.config.get("params") or {})
    verdicts = _check_verdicts(verdicts)
    by_key = {(v["source_episode_id"], v["segment_index"]): v for v in verdicts.to_pylist()}
    card = load_output_card("la")
    number = manifest.generation + 1
    folder = f"{VERIFIED_DIR}/{number:04d}"
    _remove_dir(f"{out_dir}/{folder}")

    candidates = kept = 0
    shards = []
    counts: dict[str, Any] = {}
    for shard in sorted(manifest.shards, key=lambda s: s.path):
        rows = _read_shard(out_dir, shard.path)
        verified = _apply(rows, by_key, params.quality_keep)
        path = f"{folder}/{shard.path.rsplit('/', 1)[-1]}"
        with ShardWriter(card, f"{out_dir}/{path}") as writer:
            writer.write_rows(verified)
        n_rows, n_bytes, sha = writer.result  # type: ignore[misc]
        shards.append(shard.model_copy(update={"path": path, "rows": n_rows, "bytes": n_bytes, "sha256": sha}))
        counts = merge_stats(counts, rows_to_counts(verified))
        candidates, kept = candidates + len(rows), kept + len(verified)

    qualities = np.array([v["quality"] for v in by_key.values() if v["quality"] is not None], dtype=np.float64)
    confidences = np.array([v["confidence"] for v in by_key.values() if v["confidence"] is not None], dtype=np.float64)
    verification = {
        "candidates": candidates,
        "reviewed": len(by_key),
        "kept": kept,
        "quality_keep": params.quality_keep,
        "retention_rate": round(kept / candidates, 4) if candidates else 0.0,  # of all candidates
        "retention_of_reviewed": round(kept / len(by_key), 4) if by_key else 0.0,  # the paper's rate
        "mean_quality": round(float(qualities.mean()), 3) if qualities.size else None,
        "mean_confidence": round(float(confidences.mean()), 3) if confidences.size else None,
        "corrected_subactions": sum(1 for v in by_key.values() if v["corrected_subaction"]),
        "corrected_instructions": sum(1 for v in by_key.values() if v["corrected_instruction"]),
        "corrected_boundaries": sum(1 for v in by_key.values()
                                    if v["corrected_start"] is not None or v["corrected_end"] is not None),
        "generation": number,
    }
    stats = counts_to_stats(counts)
    stats["table3"]["candidates"] = manifest.stats.get("table3", {}).get("candidates", stats["table3"]["candidates"])
    stats["table3"]["source"] = manifest.stats.get("table3", {}).get("source", stats["table3"]["source"])
    stats["candidate_primitives"] = manifest.stats.get("candidate_primitives", manifest.stats.get("primitives", {}))
    previous = manifest.verified
    manifest.verified = Generation(number=number, created=now(), shards=shards)
    manifest.stats = {**manifest.stats, **stats, "verification": verification}
    manifest.save(out_dir)  # the commit point
    if previous is not None:
        _remove_dir(f"{out_dir}/{VERIFIED_DIR}/{previous.number:04d}")
    return verification


def publish(out_dir: str) -> dict[str, Any]:
    """LeRobot layouts and card.md from the generation in force (idempotent; the review flow retries it)."""
    out_dir = out_dir.rstrip("/")
    manifest = Manifest.load(out_dir)
    source = manifest.source_card()
    options = manifest.config.get("options") or {}
    layouts = export.write_layouts(out_dir, manifest, source, lav=bool(options.get("lav", False)),
                                   version=str(options.get("lerobot_version", export.DEFAULT_LEROBOT_VERSION)))
    manifest.stats = {**manifest.stats, "lerobot": layouts}
    manifest.save(out_dir)
    write_cards(out_dir, load_output_card("la"), manifest, source)  # card.md and README.md of this generation
    return manifest.stats["lerobot"]
