"""Quarantine records: every rejected input, with its reason, so nothing is lost silently."""

from __future__ import annotations

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
