"""The pixel stage's staged files across runs: never reused by another configuration, re-read when rewritten."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

pytest.importorskip("tensorflow_datasets")

from datasets_cards.constants import MANIFEST_FILE  # noqa: E402
from pipelines.flows.annotate import annotate  # noqa: E402
from pipelines.pixel.gripper_track import TRACK_FILE  # noqa: E402

DRY = {"detector": "centre", "segmenter": "stub", "montage": 0}


def proposals(target) -> dict[str, list[float]]:
    return {r["episode_id"]: r["proposal_box"] for r in pq.read_table(target / TRACK_FILE).to_pylist()}


def test_a_lost_manifest_does_not_let_another_config_reuse_the_staged_track(tmp_path):
    args = {"source": "sample-fractal", "pipeline": "pixel", "out": str(tmp_path), "limit": 4}
    annotate(**args, options={**DRY, "proposal_scale": 2.0})
    target = tmp_path / "pixel" / "sample-fractal"
    first = proposals(target)
    for name in (MANIFEST_FILE, "_staging/manifest.backup.json"):  # the manifest is gone: nothing refuses the run
        (target / name).unlink()
    annotate(**args, options={**DRY, "proposal_scale": 1.0})
    second = proposals(target)
    assert first.keys() == second.keys() and first != second  # staged again with the new scale
    rows = pq.read_table(target / "shards").to_pylist()
    assert {tuple(r["proposal_box"]) for r in rows} <= {tuple(v) for v in second.values()}
