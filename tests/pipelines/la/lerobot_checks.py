"""Read an la LeRobot v3.0 folder back and compare it with the rows it was written from.

The suite's own v2.1 validator checks the v2.1 option; v3.0 is checked here for values and, against the
real `lerobot` package, by `make conformance` (tests/conformance/).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from pipelines.la.export import row_to_data


def assert_lerobot_v30_holds(root: str | Path, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Every row is one episode of `root`, in order, with its task and LA-33K arrays; returns info.json."""
    root = Path(root)
    info = json.loads((root / "meta" / "info.json").read_text())
    assert info["codebase_version"] == "v3.0"
    assert info["total_episodes"] == len(rows) and info["total_frames"] == sum(r["end"] - r["start"] for r in rows)
    data = pq.read_table(root / "data").to_pydict()
    tasks = pq.read_table(root / "meta" / "tasks.parquet").to_pydict()
    task_of = dict(zip(tasks["task_index"], tasks["task"], strict=True))
    episodes = np.asarray(data["episode_index"])
    for i, row in enumerate(rows):
        at = np.flatnonzero(episodes == i)
        assert [data["frame_index"][j] for j in at] == list(range(row["end"] - row["start"]))
        assert {task_of[data["task_index"][j]] for j in at} == {row["instruction"]}
        for key, expected in row_to_data(row).items():
            got = np.asarray([data[key][j] for j in at], dtype=np.float32).reshape(expected.shape)
            np.testing.assert_array_equal(got, expected, err_msg=f"episode {i} {key}")
    return info


def current_rows(out: str | Path) -> list[dict[str, Any]]:
    """The rows of the output's current generation, in shard order."""
    from datasets_cards.manifest import Manifest

    manifest = Manifest.load(str(out))
    return [r for s in manifest.current_shards for r in pq.read_table(Path(out) / s.path).to_pylist()]


def video_frames(root: str | Path, key: str) -> list[int]:
    """Frames of each episode in the v3.0 video of `key`, decoded and cut at the episodes' timestamps."""
    import av

    from pipelines.formats.lerobot import layout

    root = Path(root)
    info = json.loads((root / "meta" / "info.json").read_text())
    episodes = pq.read_table(root / "meta" / "episodes").to_pydict()
    columns = layout.v30_video_columns(key)
    path = root / info["video_path"].format(video_key=key, chunk_index=0, file_index=0)
    with av.open(str(path)) as container:
        stamps = [float(f.pts * f.time_base) for f in container.decode(video=0)]
    spans = zip(episodes[columns["from_timestamp"]], episodes[columns["to_timestamp"]], strict=True)
    half = 0.5 / info["fps"]
    return [sum(lo - half <= t < hi - half for t in stamps) for lo, hi in spans]
