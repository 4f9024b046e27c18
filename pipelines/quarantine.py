"""Quarantine records: every rejected input, with its reason, so nothing is lost silently."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass

import pyarrow as pa

QUARANTINE_SCHEMA = pa.schema(
    [
        pa.field("episode_id", pa.string()),
        pa.field("source", pa.string()),
        pa.field("unit", pa.string()),
        pa.field("stage", pa.string()),  # read | annotate | artifacts | unit
        pa.field("reason", pa.string()),
    ]
)


@dataclass(frozen=True)
class Quarantined:
    """Yielded by readers (and produced by flows) in place of an Episode that failed."""

    episode_id: str
    reason: str
    stage: str = "read"
    source: str = ""
    unit: str = ""

    def as_row(self) -> dict:
        return asdict(self)


def quarantine_table(records: list[Quarantined]) -> pa.Table:
    return pa.Table.from_pylist([r.as_row() for r in records], schema=QUARANTINE_SCHEMA)


def reason_kind(reason: str) -> str:
    """A reason's kind, its text before the first colon ("bad frame: camera 'x' frame 3 ..." → "bad frame"):
    reasons name their episode's details after it, so kinds are what repeat across episodes."""
    return reason.split(":", 1)[0].strip() or reason


def quarantine_summary(table: pa.Table, kinds: int = 10) -> dict:
    """What card.md's failures section shows: quarantined episodes per stage, and the most frequent kinds of
    reason with their count and one full example."""
    rows = table.select(["stage", "reason"]).to_pylist()
    by_stage = Counter(r["stage"] for r in rows)
    by_kind = Counter((r["stage"], reason_kind(r["reason"])) for r in rows)
    example = {}
    for r in rows:
        example.setdefault((r["stage"], reason_kind(r["reason"])), r["reason"])
    return {
        "episodes": len(rows),
        "by_stage": dict(by_stage.most_common()),
        "reasons": [{"stage": stage, "kind": kind, "episodes": n, "example": example[stage, kind]}
                    for (stage, kind), n in by_kind.most_common(kinds)],
    }
