"""Reading a `.rrd` back with Rerun's own reader (rerun.chunk.RrdReader), for the `view` tests."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa


@dataclass
class Logged:
    """What a recording holds at one entity path for one archetype: its rows and their timeline values."""

    rows: int = 0
    static: int = 0
    frames: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    columns: dict[str, list] = field(default_factory=lambda: defaultdict(list))


def read_recording(path: str | Path) -> dict[tuple[str, str], Logged]:
    """(entity path, archetype) → what was logged there, from the file's first recording store."""
    from rerun.chunk import RrdReader

    reader = RrdReader(path)
    assert len(reader.recordings()) == 1
    logged: dict[tuple[str, str], Logged] = defaultdict(Logged)
    for chunk in reader.stream().to_chunks():
        batch = chunk.to_record_batch()
        components = [n for n in batch.schema.names if ":" in n]
        for archetype in sorted({n.split(":")[0] for n in components}):
            entry = logged[(chunk.entity_path, archetype)]
            if chunk.is_static:
                entry.static += chunk.num_rows
                continue
            entry.rows += chunk.num_rows
            entry.frames += batch.column("frame_index").to_pylist()
            if "time" in batch.schema.names:
                entry.seconds += [v / 1e9 for v in batch.column("time").cast(pa.int64()).to_pylist()]
            for name in components:
                if name.startswith(f"{archetype}:"):
                    entry.columns[name.split(":", 1)[1]] += batch.column(name).to_pylist()
    return dict(logged)


def entities(logged: dict[tuple[str, str], Logged], archetype: str, prefix: str = "/") -> dict[str, Logged]:
    """Entity path → what `archetype` logged there, for the paths under `prefix`."""
    return {path: entry for (path, kind), entry in logged.items() if kind == archetype and path.startswith(prefix)}
