"""Apply human verdicts (LA4VLA Appendix 7.6) to an la output folder.

Phases: keep the candidates (first call copies the shards to candidates/, later calls
read from there, so verdicts can be re-applied as more annotations arrive) → join the
verdicts on (source_episode_id, segment_index) → keep segments whose mean quality ≥
params.la.quality_keep, mark them verified with their scores and corrections → rewrite
the shards, manifest, card.md and LeRobot layouts from the verified set.

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
from datasets_cards import load_output_card, load_source_card
from datasets_cards.constants import CARD_FILE, MANIFEST_FILE
from datasets_cards.manifest import Manifest
from datasets_cards.source import LaParams
from pipelines.card import render_card
from pipelines.io import ShardWriter, read_text, write_text_atomic
from pipelines.la import dataset

CANDIDATES_DIR = "candidates"  # the unverified shards, kept so verdicts can be applied again

# The verdicts of human review, one row per reviewed segment (pipelines/review/pull.py writes them).
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
BOUNDARY_CORRECTED = "boundary_corrected"  # flag of a row re-cut to the verifiers' start/end
BOUNDARY_REJECTED = "boundary_correction_rejected"  # flag "...:<why>" when the correction did not fit
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


def _snapshot_candidates(out_dir: str, manifest: Manifest) -> None:
    """Copy the annotate run's shards to candidates/ once (later calls start from them)."""
    fs, root = fsspec.core.url_to_fs(out_dir)
    if fs.exists(f"{root}/{CANDIDATES_DIR}"):
        return
    fs.makedirs(f"{root}/{CANDIDATES_DIR}", exist_ok=True)
    for shard in manifest.shards:
        fs.copy(f"{root}/{shard.path}", f"{root}/{CANDIDATES_DIR}/{shard.path.rsplit('/', 1)[-1]}")


def _candidate_shard(out_dir: str, shard_path: str) -> pa.Table:
    with fsspec.open(f"{out_dir}/{CANDIDATES_DIR}/{shard_path.rsplit('/', 1)[-1]}", "rb") as f:
        return pq.read_table(f)


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
    """Rewrite OUT/la/<source>/ with the verified segments. Returns verification statistics."""
    out_dir = out_dir.rstrip("/")
    text = read_text(f"{out_dir}/{MANIFEST_FILE}")
    if text is None:
        raise FileNotFoundError(f"no {MANIFEST_FILE} in {out_dir}: run `make annotate` first")
    manifest = Manifest.from_json(text)
    if manifest.pipeline != "la":
        raise ValueError(f"{out_dir} holds the {manifest.pipeline!r} dataset, not 'la'")
    params = LaParams.model_validate(manifest.config.get("params") or {})
    verdicts = _check_verdicts(verdicts)
    by_key = {(v["source_episode_id"], v["segment_index"]): v for v in verdicts.to_pylist()}
    card = load_output_card("la")
    _snapshot_candidates(out_dir, manifest)

    candidates = kept = 0
    shards = []
    for shard in sorted(manifest.shards, key=lambda s: s.path):
        rows = _candidate_shard(out_dir, shard.path).to_pylist()
        verified = _apply(rows, by_key, params.quality_keep)
        with ShardWriter(card, f"{out_dir}/{shard.path}") as writer:
            writer.write_rows(verified)
        n_rows, n_bytes, sha = writer.result  # type: ignore[misc]
        shards.append(shard.model_copy(update={"rows": n_rows, "bytes": n_bytes, "sha256": sha}))
        candidates, kept = candidates + len(rows), kept + len(verified)
    manifest.shards = shards

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
    }
    table = dataset.read_shards(out_dir, manifest)
    stats = dataset.table_to_stats(table)
    stats["table3"]["candidates"] = manifest.stats.get("table3", {}).get("candidates", stats["table3"]["candidates"])
    stats["table3"]["source"] = manifest.stats.get("table3", {}).get("source", stats["table3"]["source"])
    stats["candidate_primitives"] = manifest.stats.get("candidate_primitives", manifest.stats.get("primitives", {}))
    manifest.stats = {**manifest.stats, **stats, "verification": verification}

    source = load_source_card(manifest.source)
    lav = bool((manifest.config.get("options") or {}).get("lav", False))
    manifest.stats["lerobot"] = dataset.write_layouts(out_dir, manifest, table, source, lav=lav)
    write_text_atomic(f"{out_dir}/{MANIFEST_FILE}", manifest.to_json())
    write_text_atomic(f"{out_dir}/{CARD_FILE}", render_card(card, manifest, source))
    return verification
