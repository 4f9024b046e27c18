"""Options a user can find (`python -m pipelines options`), and that are checked before anything loads."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from datasets_cards import load_source_card
from pipelines.base import PIPELINES
from pipelines.cli import app
from pipelines.flows.annotate import annotate
from pipelines.flows.arguments import (
    RunArgumentError,
    check_options,
    options_by_pipeline,
)
from pipelines.options import option_rows

runner = CliRunner()


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("error:")]


@pytest.mark.parametrize("pipeline", ["gaze", "pixel", "future", "la"])
def test_every_option_has_a_type_a_default_and_a_help_line(pipeline):
    rows = option_rows(pipeline, PIPELINES.get(pipeline).options_model)
    assert len({r.key for r in rows}) == len(rows) > 5
    assert all(r.type and r.default and r.help for r in rows), [r.key for r in rows if not r.help]


def test_options_command_lists_card_params_and_run_time_keys():
    result = runner.invoke(app, ["options", "gaze"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for key in ("box_threshold", "model", "device", "decode_workers", "montage", "llm_cache"):
        assert f"│ {key} " in result.output
    assert "IDEA-Research/grounding-dino-tiny" in result.output and "datasets_cards/params/gaze.py" in result.output


def test_annotate_help_points_at_the_options_command():
    result = runner.invoke(app, ["annotate", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "python -m pipelines options PIPELINE" in " ".join(result.output.split())


def test_a_misspelt_option_is_refused_in_one_line_naming_the_valid_keys(tmp_path):
    out = tmp_path / "out"
    result = runner.invoke(app, ["annotate", "sample-bridge", "--pipeline", "gaze", "--out", str(out),
                                 "-o", "box_treshold=0.9"])
    assert result.exit_code == 2, result.output
    [line] = error_lines(result.output)
    assert "unknown option 'box_treshold'" in line and "did you mean 'box_threshold'" in line
    assert "text_threshold" in line and "montage" in line and "python -m pipelines options" in line
    assert not out.exists() and "Traceback" not in result.output


@pytest.mark.parametrize("option, named", [("box_threshold=2", "box_threshold"), ("montage=-1", "montage"),
                                           ("device=[1]", "device"), ('llm={"modle": "x"}', "llm.modle")])
def test_an_invalid_value_is_refused_before_anything_is_written(tmp_path, option, named):
    out = tmp_path / "out"
    result = runner.invoke(app, ["annotate", "sample-bridge", "--pipeline", "gaze", "--out", str(out), "-o", option])
    assert result.exit_code == 2, result.output
    [line] = error_lines(result.output)
    assert "invalid option" in line and named in line
    assert not out.exists()


def test_the_flow_refuses_an_unknown_option_before_the_output_is_touched(tmp_path):
    """A deployment caller goes through the flow, not the command line: it is held to the same check."""
    out = tmp_path / "out"
    with pytest.raises(RunArgumentError, match=r"unknown option 'plot'.*did you mean 'plots'"):
        annotate(source="sample-droid", pipeline="la", out=str(out), limit=1, options={"plot": 0})
    assert not out.exists()


def test_an_option_goes_to_the_pipelines_that_know_it():
    card = load_source_card("bridge")  # gaze and pixel
    shares = options_by_pipeline(["gaze", "pixel"], card, {"sam_model": "/w/sam", "montage": 2, "margin": 0.2})
    assert shares == {"gaze": {"montage": 2, "margin": 0.2}, "pixel": {"sam_model": "/w/sam", "montage": 2}}
    with pytest.raises(RunArgumentError, match="unknown option 'sam_modle'.*did you mean 'sam_model'"):
        options_by_pipeline(["gaze", "pixel"], card, {"sam_modle": "/w/sam"})


def test_nested_params_are_checked_field_by_field():
    card = load_source_card("droid")
    check_options("la", card, {"keyframes": {"window": 7}, "vlm": {"max_in_flight": 2}})
    with pytest.raises(RunArgumentError, match="keyframes.window"):
        check_options("la", card, {"keyframes": {"window": 8}})  # odd windows only
    with pytest.raises(RunArgumentError, match="unknown VLM setting"):
        check_options("la", card, {"vlm": {"max_inflight": 2}})
