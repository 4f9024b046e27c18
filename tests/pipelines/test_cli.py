"""The command line: problems a user can fix end in one line and exit code 1, not a traceback."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from pipelines.cli import _parse_option, app

runner = CliRunner()


@pytest.mark.parametrize(
    "text, expected",
    [
        ("segmenter=vlm", ("segmenter", "vlm")),
        ('vlm={"max_in_flight": 4}', ("vlm", {"max_in_flight": 4})),
        ("plots=0", ("plots", 0)),
        ("lav=true", ("lav", True)),
    ],
)
def test_options_take_json_values_and_fall_back_to_strings(text, expected):
    assert _parse_option(text) == expected


def test_an_option_without_a_value_is_refused():
    with pytest.raises(typer.BadParameter, match="KEY=VALUE"):
        _parse_option("segmenter")


def test_sources_lists_every_card():
    result = runner.invoke(app, ["sources"])
    assert result.exit_code == 0
    assert all(name in result.output for name in ("droid", "bridge", "sample-droid"))


def test_an_unknown_dataset_names_the_known_ones():
    result = runner.invoke(app, ["annotate", "nodata"])
    assert result.exit_code == 2 and "droid" in result.output


def test_a_missing_local_corpus_is_refused_before_anything_runs(tmp_path):
    missing = tmp_path / "droid" / "1.0.1"
    result = runner.invoke(app, ["annotate", "droid", "--location", str(missing), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "does not exist" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "out").exists()


def test_a_run_into_a_folder_of_another_config_is_one_line(tmp_path):
    pytest.importorskip("tensorflow_datasets", reason="reading the RLDS sample needs the `tfds` extra")
    args = ["annotate", "sample-droid", "--limit", "1", "--out", str(tmp_path), "--option", "review=false"]
    assert runner.invoke(app, args).exit_code == 0
    result = runner.invoke(app, [*args, "--option", "lav=true"])  # another output (plots=0 would resume: no rows change)
    assert result.exit_code == 1 and "error:" in result.output and "--overwrite" in result.output


def test_the_vlm_segmenter_without_an_endpoint_says_what_to_set(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    result = runner.invoke(app, ["annotate", "sample-droid", "--option", "segmenter=vlm", "--limit", "1",
                                 "--out", str(tmp_path)])
    assert result.exit_code == 1 and "OPENAI_BASE_URL" in result.output


def test_an_error_message_with_brackets_is_printed_as_written(capsys):
    """rich would read `.[models]` as markup and drop it, telling the user to install '.'."""
    from pipelines.cli import reported_as_errors

    with pytest.raises(typer.Exit):
        with reported_as_errors():
            raise FileNotFoundError("no weights: pip install -e '.[models]' [bold]")
    assert "pip install -e '.[models]' [bold]" in capsys.readouterr().err
