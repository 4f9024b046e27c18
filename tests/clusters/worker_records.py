"""What a cluster run's manifest says about where its units ran."""

from __future__ import annotations

from collections import defaultdict

from datasets_cards.manifest import ShardRecord


def assert_built_once_per_worker(shards: list[ShardRecord], flow_pid: int) -> None:
    """The units ran outside the flow's process, some worker ran several, and no worker built a pipeline (loaded
    models) between two of its units. A worker that served an earlier test has built that test's pipeline too,
    hence "unchanged" rather than "one"."""
    by_worker: dict[str, list[int]] = defaultdict(list)
    for shard in shards:
        by_worker[shard.worker].append(shard.pipelines_built)
    assert str(flow_pid) not in {w.rsplit(":", 1)[1] for w in by_worker}, by_worker
    assert max(len(built) for built in by_worker.values()) > 1, by_worker
    assert all(len(set(built)) == 1 and built[0] >= 1 for built in by_worker.values()), by_worker
