"""benchmarks/gpu_suite.py in CPU mode at tiny sizes: stages run in child processes, every row reaches the JSON and
the Markdown table, each ratio is computed from that run's measured numbers, and a stage past its slice is reported."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")
pytest.importorskip("tensorflow_datasets")

from benchmarks import gpu_suite

STAGES = ["la", "reader", "trainer-la"]  # the cheap stages; the model stages run in `make bench-gpu`


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    folder = tmp_path_factory.mktemp("suite")
    gpu_suite.main(["--device", "cpu", "--profile", "tiny", "--stages", *STAGES, "--budget", "600",
                    "--out", str(folder)])
    return folder


def test_every_stage_finishes_and_each_row_is_in_the_json_and_the_table(out):
    report = json.loads((out / "suite.json").read_text())
    assert [(s["stage"], s["status"]) for s in report["stages"]] == [(s, "ok") for s in STAGES]
    assert {r["stage"] for r in report["rows"]} == set(STAGES)
    table = (out / "suite.md").read_text()
    assert "| stage | what | ratio / value | ours | reference | unit | target | pass |" in table
    for row in report["rows"]:
        assert f"| {row['stage']} | {row['what']} | {gpu_suite.fmt(row['value'])} |" in table


def test_ratios_come_from_the_numbers_measured_in_the_run(out):
    report = json.loads((out / "suite.json").read_text())
    results = {s["stage"]: s["result"] for s in report["stages"]}
    rows = {(r["stage"], r["what"]): r for r in report["rows"]}
    passes = {p["name"]: p for p in results["reader"]["passes"]}
    for mode in ("lazy", "decoded"):
        row = rows[("reader", f"RLDS reader / raw tf.data, {mode}")]
        ours, raw = passes[mode], passes[f"raw tf.data {mode}"]
        assert row["ours"] == pytest.approx(ours["frames"] / ours["seconds"])
        assert row["reference"] == pytest.approx(raw["frames"] / raw["seconds"])
        assert row["value"] == pytest.approx(row["ours"] / row["reference"])
    trainer = results["trainer-la"]
    wait = rows[("trainer-la", f"data wait / step time ({trainer['workers_per_process']} workers)")]
    assert wait["value"] == trainer["data_wait_fraction"] and wait["passed"] == (wait["value"] < 0.05)
    la = results["la"]
    assert rows[("la", f"keyframes + kinematic labels, steps/s ({la['steps']} steps)")]["value"] == la["steps_per_s"]


def test_a_stage_past_its_slice_is_reported_out_of_time_not_dropped(tmp_path):
    report = gpu_suite.main(["--device", "cpu", "--profile", "tiny", "--stages", "la", "--budget", "0.5",
                             "--out", str(tmp_path)])
    assert [(s["stage"], s["status"]) for s in report["stages"]] == [("la", "out of time")]
    assert report["rows"] == []
    assert "| la | **out of time** after" in (tmp_path / "suite.md").read_text()


@pytest.mark.parametrize(
    "rows_of, result, expected",
    [
        (gpu_suite.gaze_rows, {"b_ours_fps": 200.0, "a_peer_fps": 20.0, "c_model_fps": 400.0},
         [(10.0, True), (0.5, False), (200.0, True)]),
        (gpu_suite.future_rows, {"frames_per_s": {"b_ours_pipeline": 90.0, "a_stock_one_image": 30.0,
                                                  "c1_tower_alone_ours": 100.0}},
         [(3.0, False), (0.9, True)]),
        (gpu_suite.pixel_rows, {"fps": {"a1": 2.0, "b8": 12.0, "c8": 24.0}}, [(6.0, True), (0.5, None)]),
        (gpu_suite.pixel_memory_rows, {"runs": [{"frames": 100, "cuda_peak_mib": 1000.0},
                                                {"frames": 1000, "cuda_peak_mib": 1100.0}]}, [(1.1, False)]),
    ],
)
def test_rows_divide_ours_by_the_reference_and_check_the_target(rows_of, result, expected):
    assert [(pytest.approx(r.value), r.passed) for r in rows_of(result)] == expected
