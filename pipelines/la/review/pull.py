"""Pull human verdicts from Label Studio and score them (la4vla.txt Appendix 7.6).

Per task: mean quality over annotators (keep when ≥ LaParams.quality_keep),
mean confidence, the number of annotators, and corrections. A correction is the
majority value of a control over the task's annotations, ties going to the most
recent annotation; it counts only when it differs from the proposal (the
prefilled prediction), so annotators who leave a control untouched vote for
the proposal. Agreement is Krippendorff's alpha (interval) on quality over the
tasks with two or more annotations.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from datasets_cards.constants import REVIEW_DIR
from pipelines.io import write_bytes_atomic, write_text_atomic
from pipelines.la.review import labeling
from pipelines.la.review.apply import VERDICT_SCHEMA

VERDICTS_FILE = "verdicts.parquet"
EXPORT_FILE = "export.json"
METRICS_FILE = "metrics.json"

@dataclass(frozen=True)
class Judgement:
    """One annotator's submitted verdict on one task."""

    source_episode_id: str
    segment_index: int
    annotator: str
    quality: int
    confidence: int | None
    values: dict[str, Any]  # editable control → the value submitted (absent when cleared)
    updated_at: str  # ISO time; breaks correction ties in favour of the latest


def _annotator(completed_by: Any) -> str:
    if isinstance(completed_by, dict):  # some exports expand the user
        return str(completed_by.get("email") or completed_by.get("id"))
    return f"user-{completed_by}"


def _score(value: Any) -> int:
    return int(str(value).split()[0])  # alias "2"; a label "2 · Acceptable" if the alias was lost


def result_to_values(result: list[dict[str, Any]]) -> dict[str, Any]:
    """A Label Studio annotation result → {control name: value}."""
    values: dict[str, Any] = {}
    for item in result:
        name, value = item.get("from_name"), item.get("value", {})
        if "choices" in value and value["choices"]:
            values[name] = value["choices"][0]
        elif "text" in value and value["text"]:
            text = " ".join(str(t) for t in value["text"]).strip()
            if text:
                values[name] = text
        elif "number" in value and value["number"] is not None:
            values[name] = int(value["number"])
    return values


def source_frames(values: dict[str, Any], clip_start: int | None) -> dict[str, Any]:
    """The boundary controls of a task with a clip count the player's frames (first, last; from 1) of a clip
    starting at source frame `clip_start`: back to the source episode's [start, end). A task without a clip
    (a state plot, or a project pushed before clips had context) holds source frames already."""
    if clip_start is None:
        return values
    converted = dict(values)
    if labeling.START in values:
        converted[labeling.START] = int(clip_start) + values[labeling.START] - 1
    if labeling.END in values:
        converted[labeling.END] = int(clip_start) + values[labeling.END]
    return converted


def export_to_judgements(export: list[dict[str, Any]]) -> list[Judgement]:
    """Submitted (not skipped) annotations that carry a quality score, boundaries in source frames."""
    judgements = []
    for task in export:
        data = task.get("data", {})
        for annotation in task.get("annotations", []):
            if annotation.get("was_cancelled"):
                continue
            values = source_frames(result_to_values(annotation.get("result", [])), data.get("clip_start"))
            if labeling.QUALITY not in values:
                continue
            judgements.append(
                Judgement(
                    source_episode_id=str(data["source_episode_id"]),
                    segment_index=int(data["segment_index"]),
                    annotator=_annotator(annotation.get("completed_by")),
                    quality=_score(values.pop(labeling.QUALITY)),
                    confidence=_score(values.pop(labeling.CONFIDENCE)) if labeling.CONFIDENCE in values else None,
                    values=values,
                    updated_at=str(annotation.get("updated_at") or annotation.get("created_at") or ""),
                )
            )
    return judgements


def proposals(export: list[dict[str, Any]]) -> dict[tuple[str, int], dict[str, Any]]:
    """(source_episode_id, segment_index) → the proposed value of every editable control."""
    return {
        (str(t["data"]["source_episode_id"]), int(t["data"]["segment_index"])): {
            c: t["data"].get(c) for c in labeling.EDITABLE_CONTROLS
        }
        for t in export
    }


def majority_correction(judgements: list[Judgement], control: str, proposed: Any) -> Any:
    """The majority submitted value (ties → latest annotation), or None when it is the proposal."""
    votes = [(j.values[control], j.updated_at) for j in judgements if control in j.values]
    if not votes:
        return None
    counts = Counter(v for v, _ in votes)
    top = max(counts.values())
    tied = {v for v, n in counts.items() if n == top}
    winner = max((u, v) for v, u in votes if v in tied)[1] if len(tied) > 1 else next(iter(tied))
    return None if winner == proposed else winner


def judgements_to_verdicts(
    judgements: list[Judgement], proposed: dict[tuple[str, int], dict[str, Any]]
) -> pa.Table:
    """One verdict row per annotated task (VERDICT_SCHEMA), sorted by key."""
    by_task: dict[tuple[str, int], list[Judgement]] = {}
    for j in judgements:
        by_task.setdefault((j.source_episode_id, j.segment_index), []).append(j)
    rows = []
    for key in sorted(by_task):
        group = by_task[key]
        confidences = [j.confidence for j in group if j.confidence is not None]
        prop = proposed.get(key, {})
        rows.append(
            {
                "source_episode_id": key[0],
                "segment_index": key[1],
                "quality": float(np.mean([j.quality for j in group])),
                "confidence": float(np.mean(confidences)) if confidences else None,
                "num_annotators": len({j.annotator for j in group}),
                **{
                    f"corrected_{c}": majority_correction(group, c, prop.get(c))
                    for c in labeling.EDITABLE_CONTROLS
                },
            }
        )
    return pa.Table.from_pylist(rows, schema=VERDICT_SCHEMA)


def quality_alpha(judgements: list[Judgement]) -> float | None:
    """Krippendorff's alpha (interval) on quality over tasks with ≥ 2 annotations; None if undefined."""
    import krippendorff

    tasks: dict[tuple[str, int], dict[str, int]] = {}
    for j in judgements:
        tasks.setdefault((j.source_episode_id, j.segment_index), {})[j.annotator] = j.quality
    multi = [t for t in tasks.values() if len(t) >= 2]
    annotators = sorted({a for t in multi for a in t})
    if not multi:
        return None
    data = np.array([[t.get(a, np.nan) for t in multi] for a in annotators], dtype=float)
    try:
        alpha = float(krippendorff.alpha(reliability_data=data, level_of_measurement="interval"))
    except ValueError:  # a single distinct value: agreement is undefined, not perfect
        return None
    return None if math.isnan(alpha) else alpha


def review_metrics(
    verdicts: pa.Table, judgements: list[Judgement], candidates: int, quality_keep: float
) -> dict[str, Any]:
    """Numbers for card.md: reviewed, kept, retention, alpha, confidence, per-annotator counts."""
    quality = np.asarray(verdicts.column("quality").to_pylist(), dtype=float)
    kept = int((quality >= quality_keep).sum())
    confidence = [c for c in verdicts.column("confidence").to_pylist() if c is not None]
    corrected = {
        c: sum(v is not None for v in verdicts.column(f"corrected_{c}").to_pylist())
        for c in labeling.EDITABLE_CONTROLS
    }
    alpha = quality_alpha(judgements)
    return {
        "candidates": candidates,
        "reviewed": verdicts.num_rows,
        "kept": kept,
        "retention": kept / verdicts.num_rows if verdicts.num_rows else None,  # of reviewed (the paper's)
        "retention_of_candidates": kept / candidates if candidates else None,
        "quality_keep": quality_keep,
        "mean_quality": float(quality.mean()) if len(quality) else None,
        "mean_confidence": float(np.mean(confidence)) if confidence else None,
        "multi_annotated": sum(n >= 2 for n in verdicts.column("num_annotators").to_pylist()),
        "krippendorff_alpha": alpha,
        "annotations": len(judgements),
        "per_annotator": dict(sorted(Counter(j.annotator for j in judgements).items())),
        "corrected": corrected,
    }


def save_review(out_dir: str, export: list[dict[str, Any]], verdicts: pa.Table, metrics: dict[str, Any]) -> None:
    """review/export.json (raw), review/verdicts.parquet and review/metrics.json."""
    review = f"{out_dir}/{REVIEW_DIR}"
    write_text_atomic(f"{review}/{EXPORT_FILE}", json.dumps(export, indent=1, default=str))
    sink = pa.BufferOutputStream()
    pq.write_table(verdicts, sink)
    write_bytes_atomic(f"{review}/{VERDICTS_FILE}", sink.getvalue().to_pybytes())
    write_text_atomic(f"{review}/{METRICS_FILE}", json.dumps(metrics, indent=2))


def verdicts_from_export(
    export: list[dict[str, Any]], quality_keep: float
) -> tuple[pa.Table, dict[str, Any]]:
    """Label Studio JSON export → (verdicts table, metrics)."""
    judgements = export_to_judgements(export)
    verdicts = judgements_to_verdicts(judgements, proposals(export))
    return verdicts, review_metrics(verdicts, judgements, len(export), quality_keep)
