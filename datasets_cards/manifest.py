"""manifest.json: what an output folder holds, written by the flows, read by the trainer.

The manifest is the single record of completed work: a shard is complete only
once it is listed here (written after the shard's atomic rename), so resuming a
killed run means skipping the units the manifest lists.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel, Field

from datasets_cards.constants import MANIFEST_FORMAT_VERSION


class ShardRecord(BaseModel):
    unit: str  # work-unit key: deterministic from the episodes it covers
    path: str  # relative to the output folder, e.g. "shards/shard-00003.parquet"
    rows: int
    bytes: int
    sha256: str
    episodes: list[str]  # episode ids read for this unit (quarantined ones included)
    seconds: float  # wall time of the unit (read + annotate + write)
    stats: dict[str, Any] = Field(default_factory=dict)  # per-unit statistics the pipeline reports


class Manifest(BaseModel):
    format_version: int = MANIFEST_FORMAT_VERSION
    pipeline: str  # output card name
    output_card_version: str
    source: str  # source card name
    source_location: str
    config_hash: str  # hash of source card + pipeline params + output card version
    config: dict[str, Any]  # the parameters the hash covers, for humans
    code_version: str  # package version + git commit when available
    created: str  # ISO time of the first run
    updated: str
    complete: bool = False  # every planned unit is done and the card is written
    planned_units: int = 0
    shards: list[ShardRecord] = Field(default_factory=list)
    quarantined: int = 0
    stats: dict[str, Any] = Field(default_factory=dict)  # run statistics (card.md, artifact)

    @property
    def rows(self) -> int:
        return sum(s.rows for s in self.shards)

    def completed_units(self) -> set[str]:
        return {s.unit for s in self.shards}

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        return cls.model_validate_json(text)


def config_hash(config: dict[str, Any]) -> str:
    """Stable short hash of a JSON-serialisable config."""
    blob = json.dumps(config, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
