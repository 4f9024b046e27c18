"""The gripper is looked at before the units run: calibrated from the data when asked, a warning when it never moves."""

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from datasets_cards.source import GripperSpec
from pipelines.flows.annotate import annotate
from tests.pipelines.formats.rlds_fixtures import make_rlds_fixture

pytest.importorskip("tensorflow_datasets")


def test_calibration_takes_robust_percentiles_and_keeps_which_end_is_open():
    raw = np.concatenate([np.full(50, 31.0), np.full(50, 2.0), [250.0]])  # one glitch far out
    spec = GripperSpec(key="g", open_value=100.0, closed_value=0.0).calibrated(raw)
    assert spec.open_value == pytest.approx(31.0) and spec.closed_value == pytest.approx(2.0)
    np.testing.assert_allclose(spec.normalise([31.0, 2.0, 16.5]), [0.0, 1.0, 0.5])
    with pytest.raises(ValueError, match="stays at 5"):
        GripperSpec(key="g", open_value=0.0, closed_value=1.0).calibrated(np.full(20, 5.0))


@pytest.fixture(scope="module")
def droid_like(tmp_path_factory) -> Path:
    """DROID-layout episodes whose gripper_position really runs 0 (open) … 1 (closed)."""
    return make_rlds_fixture(tmp_path_factory.mktemp("droid-like"), "droid", n_episodes=3, n_steps=30)


def run(tmp_path: Path, location: Path, gripper: str):
    card = tmp_path / "my-arm.yaml"
    card.write_text(f"extends: droid\nname: my-arm\ndescription: wrong gripper values\nlocation: {location}\n"
                    f"gripper: {gripper}\n")
    return annotate(source=str(card), pipeline="la", out=str(tmp_path / "out"), options={"plots": 0, "review": False})


WRONG = "{key: observation/gripper_position, open_value: -2.0, closed_value: 1.0"  # open reads as 67 % closed


def test_card_values_that_never_span_the_range_are_reported(droid_like, tmp_path):
    manifest = run(tmp_path, droid_like, WRONG + "}")
    report = manifest.stats["gripper"]
    assert not report["calibrated"] and report["normalised_range"][0] == pytest.approx(2 / 3, abs=0.01)
    assert "spans only" in report["warning"] and "gripper.calibrate: true" in report["warning"]


def test_calibrated_from_the_data_the_gripper_spans_open_to_closed(droid_like, tmp_path):
    manifest = run(tmp_path, droid_like, WRONG + ", calibrate: true}")
    report = manifest.stats["gripper"]
    assert report["calibrated"] and "warning" not in report
    assert report["open_value"] == pytest.approx(0.0, abs=0.05) and report["closed_value"] == pytest.approx(1.0, abs=0.05)
    assert manifest.config["source"]["gripper"]["open_value"] == report["open_value"]  # the units used it
    gripper = np.concatenate(pq.read_table(tmp_path / "out" / "la" / "my-arm" / "shards").column("gripper").to_pylist())
    assert gripper.min() < 0.05 and gripper.max() > 0.95
