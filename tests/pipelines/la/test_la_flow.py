"""The la pipeline through the real Prefect annotate flow: shards, card, LeRobot v3.0 and LA-V.

A synthetic format stands in for the source (pick-and-place with small camera frames, see
conftest.py); another test runs the generated sample-droid when it is present, and one the
synthetic episodes as a source without cameras.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from urllib.parse import unquote

import pytest

from datasets_cards.constants import REVIEW_DIR
from pipelines.flows import annotate as flow_module
from pipelines.la.review import labeling
from pipelines.la.review.push import (
    LABEL_CONFIG_FILE,
    LOCAL_FILES_URL,
    MEDIA_DIR,
    PLOTS_DIR,
    TASKS_FILE,
)
from pipelines.labelstudio.client import LabelStudioClient
from tests.pipelines.la.conftest import (
    CAMERAS,
    SYNTHETIC_SOURCE,
    synthetic_format,
    write_synthetic_card,
)
from tests.pipelines.la.lerobot_checks import assert_lerobot_v30_holds, current_rows, video_frames
from tests.pipelines.hub_checks import check_loads_with_datasets, check_rlds_like_a_training_loader


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    card = write_synthetic_card(tmp_path_factory.mktemp("card"))
    with synthetic_format():
        manifest = flow_module.annotate(source=card, pipeline="la", out=str(out), episodes_per_shard=2,
                                        options={"lav": True, "plots": 2, "review": False})
    return out / "la" / SYNTHETIC_SOURCE, manifest


def test_flow_writes_complete_la_run_with_card(run):
    target, manifest = run
    assert manifest.complete and len(manifest.shards) == 2 and manifest.quarantined == 0
    card = (target / "card.md").read_text()
    assert "Table 3" in card and "| grasp |" in card and "Unverified" in card
    assert manifest.stats["table3"]["source"]["episodes"] == 3
    assert all((target / p).exists() for p in manifest.stats["plots"]) and len(manifest.stats["plots"]) == 2


def test_flow_lerobot_and_lav_layouts_hold_the_rows(run):
    target, manifest = run
    rows = current_rows(target)
    assert_lerobot_v30_holds(target / "lerobot", rows)
    info = assert_lerobot_v30_holds(target / "lerobot_v", rows)
    assert info["total_episodes"] == manifest.rows == manifest.stats["lerobot"]["lav_episodes"]
    videos = {k for k, f in info["features"].items() if f["dtype"] == "video"}
    assert videos == {f"observation.images.{c}" for c in CAMERAS}
    for key in videos:  # v3.0: one video file holds every episode, back to back
        assert video_frames(target / "lerobot_v", key) == [r["end"] - r["start"] for r in rows]


def test_sample_droid_runs_end_to_end(tmp_path):
    from pipelines.sample.ground_truth import DEFAULT_DATA_DIR, GROUND_TRUTH_DIR

    if not (DEFAULT_DATA_DIR / "droid" / GROUND_TRUTH_DIR / "episodes.parquet").exists():
        pytest.skip("no generated sample: run `make sample-data`")
    pytest.importorskip("tensorflow_datasets", reason="reading RLDS needs the `tfds` extra")
    manifest = flow_module.annotate(source="sample-droid", pipeline="la", out=str(tmp_path), limit=2,
                                    episodes_per_shard=1, options={"plots": 1})
    target = tmp_path / "la" / "sample-droid"
    assert manifest.complete and manifest.rows > 2 * 3
    assert_lerobot_v30_holds(target / "lerobot", current_rows(target))
    assert set(manifest.stats["primitives"]) <= {"move", "grasp", "lift", "transport", "lower", "place", "wait",
                                                 "wrist_rotate", "push", "pull", "press", "rotate", "reorient"}


def test_a_label_studio_push_to_no_server_is_not_retried_and_written_as_task_json(tmp_path, monkeypatch):
    monkeypatch.setenv("LABEL_STUDIO_URL", "http://127.0.0.1:9")  # nothing listens on the discard port
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "token")
    calls = []
    call = LabelStudioClient._call
    monkeypatch.setattr(LabelStudioClient, "_call", lambda self, *a, **kw: calls.append(a) or call(self, *a, **kw))
    card = write_synthetic_card(tmp_path)
    with synthetic_format():
        manifest = flow_module.annotate(source=card, pipeline="la", out=str(tmp_path / "out"), retries=1,
                                        options={"plots": 0})
    target = tmp_path / "out" / "la" / SYNTHETIC_SOURCE
    assert manifest.complete and "push failed" in manifest.stats["review"]
    assert "not reachable" in manifest.stats["review"] and (target / "review" / "tasks.json").exists()
    assert len(calls) == 1  # a configuration error: the step's retry would meet the same refusal
    clips = list((target / "review" / "media").glob("*.mp4"))
    assert len(clips) == 2 * manifest.rows  # exterior and wrist clip of every segment, cut inside the units


def test_lav_after_review_keeps_staged_clips_and_recuts_a_moved_boundary_from_them(run, tmp_path):
    """LA-V of the verified generation without the source: staged clips, a moved boundary cut from them."""
    import shutil

    import pyarrow as pa

    from pipelines.la.review.apply import VERDICT_SCHEMA, apply_verdicts, publish

    target, manifest = run
    out = tmp_path / "la" / SYNTHETIC_SOURCE
    shutil.copytree(target, out)
    first = sorted(manifest.shards[0].episodes)[0]
    names = VERDICT_SCHEMA.names
    table = pa.Table.from_pylist([
        dict(zip(names, (first, 0, 3.0, 2.0, 1, None, None, None, None))),
        dict(zip(names, (first, 1, 3.0, 2.0, 1, None, None, 10, None))),  # the verifier moves the start
    ], schema=VERDICT_SCHEMA)
    apply_verdicts(str(out), table)
    info = publish(str(out))
    assert (info["lav_episodes"], info["lav_missing"]) == (2, 0)
    rows = current_rows(out)
    assert_lerobot_v30_holds(out / "lerobot_v", rows)
    recut = rows[1]
    assert recut["start"] == 10 and "boundary_corrected" in recut["flags"]
    assert video_frames(out / "lerobot_v", f"observation.images.{CAMERAS[0]}") == [r["end"] - r["start"] for r in rows]


def test_a_source_without_cameras_gets_review_tasks_with_state_plots_instead_of_clips(state_only_run):
    out, target, manifest = state_only_run.out, state_only_run.target, state_only_run.manifest
    review = target / REVIEW_DIR
    tasks = json.loads((review / TASKS_FILE).read_text())
    assert manifest.complete and manifest.rows > 0 and len(tasks) == manifest.rows
    assert manifest.stats["review"].startswith(f"{manifest.rows} review tasks written")
    for task in tasks:
        data = task["data"]
        assert not [k for k in data if k.startswith("video_")]  # no clip keys at all
        plot = out / unquote(data[labeling.STATE_PLOT].removeprefix(LOCAL_FILES_URL))  # default root: OUT
        assert plot.parent == review / PLOTS_DIR and plot.read_bytes().startswith(b"\x89PNG")
        assert "no cameras" in data["summary"] and "no clip" in data["summary"]
        assert {r["to_name"] for r in task["predictions"][0]["result"]} == {labeling.STATE_PLOT}
    config = ET.parse(review / LABEL_CONFIG_FILE).getroot()
    assert config.find(".//Video") is None and config.find(f".//Image[@name='{labeling.STATE_PLOT}']") is not None
    assert not (review / MEDIA_DIR).exists() and not (target / "lerobot_v").exists()  # no clips, no LA-V
    card = (target / "card.md").read_text()
    assert "no cameras (a state-only recording)" in card and "state plot of each" in card and "instead of clips" in card
    assert "LA-V: none" in card


def test_the_folder_loads_with_datasets_from_its_readme(run, tmp_path):
    target, _ = run  # the LeRobot layouts' Parquet files and the quarantine lie beside the shards
    check_loads_with_datasets(target, tmp_path / "hf")


def test_the_rlds_export_reads_like_a_training_loader(run, tmp_path):
    target, _ = run
    check_rlds_like_a_training_loader(target, tmp_path / "rlds", instruction="instruction", state="state",
                                      fixed_state=False)  # a segment's T×D state: a zlib blob TFDS decodes


def test_a_rerun_of_a_reviewed_output_writes_its_hub_readme_for_the_verified_generation(run, tmp_path):
    """Nothing to annotate, yet README.md is written (an output older than README.md gets one)."""
    import shutil

    import pyarrow as pa

    from pipelines.la.review.apply import VERDICT_SCHEMA, apply_verdicts, publish

    target, manifest = run
    out = tmp_path / "la" / SYNTHETIC_SOURCE
    shutil.copytree(target, out)
    verdicts = [dict(zip(VERDICT_SCHEMA.names, (e, i, 3.0, 2.0, 1, None, None, None, None)))
                for s in manifest.shards for e in s.episodes for i in range(8)]
    apply_verdicts(str(out), pa.Table.from_pylist(verdicts, schema=VERDICT_SCHEMA))
    publish(str(out))
    (out / "README.md").unlink()
    card = write_synthetic_card(tmp_path)
    with synthetic_format():
        again = flow_module.annotate(source=card, pipeline="la", out=str(tmp_path), episodes_per_shard=2,
                                     options={"lav": True, "plots": 2, "review": False})
    assert again.generation == 1 and "verified/0001/shard-*.parquet" in (out / "README.md").read_text()
    check_loads_with_datasets(out, tmp_path / "hf")
