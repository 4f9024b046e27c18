"""The whole pixel flow with oracle models (benchmarks/pixel_oracle.py): perfect answers must come out as the truth.

Proposals, the detector's crop offset, filters, propagation bookkeeping, lost flags and rows are the real code.
"""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

pytest.importorskip("tensorflow_datasets")

from benchmarks.pixel_oracle import ORACLE, oracle_backends, score
from pipelines.flows.annotate import annotate


@pytest.mark.parametrize("schema", ["fractal", "bridge"])
def test_perfect_models_give_the_truth_on_every_frame(schema, tmp_path):
    with oracle_backends(schema) as truth:
        manifest = annotate(source=f"sample-{schema}", pipeline="pixel", out=str(tmp_path),
                            options={"detector": ORACLE, "segmenter": ORACLE, "montage": 2})
    rows = pq.read_table(tmp_path / "pixel" / f"sample-{schema}" / "shards").to_pylist()
    result = score(truth, rows)
    assert result["episodes"] == 6 and manifest.stats["discards"] == {"no_close": 6}
    assert result["mask_iou_at_g"] == result["mask_iou_all_frames"] == result["lost_flag_agrees"] == 1.0
