"""`python -m pipelines view` on an la output (the session's state-only run): the recording read back with
Rerun's own reader holds one segment per la row on the episode's timelines, keyframes and state plots; a
wrong folder, an unknown episode or a missing rerun-sdk end in one line naming the fix."""

from __future__ import annotations

import sys

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from pipelines.cli import app

pytest.importorskip("rerun")

from tests.pipelines.rerun_recording import entities, read_recording  # noqa: E402

runner = CliRunner()


def _episodes(target) -> dict[str, list[dict]]:
    rows: dict[str, list[dict]] = {}
    for row in pq.read_table(target / "shards").to_pylist():
        rows.setdefault(row["source_episode_id"], []).append(row)
    return rows


def test_view_puts_every_segment_and_keyframe_of_the_episode_on_its_timelines(state_only_run, tmp_path):
    episodes = _episodes(state_only_run.target)
    episode, rows = sorted(episodes.items())[-1]  # not the default one
    out = tmp_path / "la.rrd"
    result = runner.invoke(app, ["view", str(state_only_run.target), "--episode", episode, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert f"{len(rows)} rows" in result.output and str(out) in result.output
    logged = read_recording(out)

    segments = logged[("/segments", "TextLog")]
    assert segments.rows == len(rows)
    assert segments.frames == sorted(r["start"] for r in rows)
    bars = entities(logged, "Scalars", "/plot/gripper/segments/")
    assert len(bars) == len(rows)
    for row in rows:
        bar = bars[f"/plot/gripper/segments/{row['segment_index']:03d}"]
        assert bar.frames == list(range(row["start"], row["end"]))

    frames = sorted({t for r in rows for t in range(r["start"], r["end"])})
    keyframes = sorted({k for r in rows for k in r["keyframes"]})
    assert keyframes and logged[("/plot/state", "Scalars")].frames == frames
    assert logged[("/plot/gripper", "Scalars")].frames == frames
    assert logged[("/plot/state/keyframes", "Scalars")].frames == keyframes
    assert logged[("/plot/gripper/keyframes", "Scalars")].frames == keyframes
    state = logged[("/plot/state", "Scalars")].columns["scalars"]
    assert state[0] == pytest.approx(rows[0]["state"][0])  # the first frame's state, every dim
    gripper = logged[("/plot/gripper", "Scalars")]
    fps = rows[0]["fps"]
    assert gripper.seconds == pytest.approx([t / fps for t in frames])  # the `time` timeline, from the card's fps
    assert logged[("/segment", "TextDocument")].rows == len(rows)


def test_view_defaults_to_the_first_episode_of_the_output(state_only_run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["view", str(state_only_run.target)])
    assert result.exit_code == 0, result.output
    first = pq.read_table(sorted((state_only_run.target / "shards").glob("*.parquet"))[0]).column("source_episode_id")
    written = tmp_path / f"la-{state_only_run.manifest.source}-{first[0].as_py()}.rrd"
    assert written.exists() and str(written.name) in result.output


def test_an_unknown_episode_lists_valid_ones(state_only_run, tmp_path):
    result = runner.invoke(app, ["view", str(state_only_run.target), "--episode", "nope", "--out",
                                 str(tmp_path / "x.rrd")])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "no episode 'nope'" in result.output
    assert all(e in result.output for e in _episodes(state_only_run.target))
    assert not (tmp_path / "x.rrd").exists()


def test_a_folder_that_is_not_an_output_says_so(state_only_run, tmp_path):
    out = str(state_only_run.out)  # OUT, not OUT/la/<source>
    result = runner.invoke(app, ["view", out, "--out", str(tmp_path / "x.rrd")])
    assert result.exit_code == 1 and "no manifest.json" in result.output and "not an output folder" in result.output


def test_without_rerun_sdk_the_error_names_the_extra(state_only_run, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "rerun", None)  # `import rerun` raises ImportError
    result = runner.invoke(app, ["view", str(state_only_run.target), "--out", str(tmp_path / "x.rrd")])
    assert result.exit_code == 1 and "rerun-sdk" in result.output and ".[view]" in result.output
