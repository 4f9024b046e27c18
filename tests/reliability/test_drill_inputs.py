"""Reliability drill (issue 12), hostile inputs: damaged TFDS metadata, numbers out of range, and episodes
whose values are wrong but finite (a gripper past closed, a 3e38 state spike, an instruction that is not UTF-8).

Outcomes asserted: a clear one-line error naming the file (exit code 1), a refused command line (exit code 2,
nothing written), quarantined with its reason, or finished.
"""

from __future__ import annotations

import re
import shutil
import typing

import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

pytest.importorskip("tensorflow_datasets", reason="RLDS needs the tfds extra")

from datasets_cards import Episode, EpisodeError, FrameSequence, load_source_card
from datasets_cards.episode import GRIPPER_CLIPPED
from datasets_cards.manifest import Manifest
from datasets_cards.source import StateSpec
from pipelines.cli import app
from pipelines.flows.annotate import annotate
from pipelines.flows.arguments import RunArgumentError
from pipelines.formats import Quarantined, open_reader
from pipelines.formats.base import DamagedSourceError
from pipelines.sample.generator.synthetic_rlds import GRIPPER_BEYOND_CLOSED
from tests.pipelines.formats.rlds_fixtures import expected_gripper, make_rlds_fixture

runner = CliRunner()
N_STEPS = 30
FAULTS = {1: "invalid_utf8_instruction", 2: "state_spike", 3: "gripper_beyond_closed"}
LA_OPTIONS = ["-o", "review=false", "-o", "plots=0"]  # la without review clips or plots: the inputs are the point


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    """A clean DROID-schema corpus (version folder): the one the damaged copies start from."""
    return make_rlds_fixture(tmp_path_factory.mktemp("drill-clean"), "droid", 2, 6)


@pytest.fixture(scope="module")
def faulty(tmp_path_factory):
    """A DROID-schema corpus of five episodes, FAULTS at 1-3, 0 and 4 clean."""
    return make_rlds_fixture(tmp_path_factory.mktemp("drill-faulty"), "droid", 5, N_STEPS, faults=FAULTS)


# -- damaged metadata ------------------------------------------------------------------------------------------

def _truncate(path):
    text = path.read_text()
    path.write_text(text[: len(text) // 2])


DAMAGE = {  # case: (file, how it is damaged, what the message says)
    "missing features.json": ("features.json", lambda p: p.unlink(), "features.json is missing"),
    "truncated features.json": ("features.json", _truncate, "features.json is not valid JSON"),
    "features.json not an object": ("features.json", lambda p: p.write_text("[1, 2]"), "holds a JSON list"),
    "features.json not TFDS": ("features.json", lambda p: p.write_text('{"type": "nothing"}'), "TFDS cannot restore"),
    "truncated dataset_info.json": ("dataset_info.json", _truncate, "dataset_info.json is not valid JSON"),
    "empty dataset_info.json": ("dataset_info.json", lambda p: p.write_text(""), "dataset_info.json is empty"),
    "missing dataset_info.json": ("dataset_info.json", lambda p: p.unlink(), "dataset_info.json is missing"),
}


def _damaged_copy(clean, tmp_path, case):
    copy = shutil.copytree(clean, tmp_path / "droid" / clean.name)
    name, damage, _ = DAMAGE[case]
    damage(copy / name)
    return copy, copy / name


@pytest.mark.parametrize("case", list(DAMAGE))
def test_damaged_metadata_is_one_line_naming_the_file_when_the_reader_opens(clean, tmp_path, case):
    copy, damaged = _damaged_copy(clean, tmp_path, case)
    with pytest.raises(DamagedSourceError) as info:
        open_reader(load_source_card("droid"), str(copy))
    message = str(info.value)
    assert "\n" not in message and DAMAGE[case][2] in message
    assert (str(damaged) in message) if "TFDS cannot" not in message else (str(copy) in message)
    assert "old TFDS version" not in message


def test_a_version_folder_without_dataset_info_is_named_from_the_dataset_folder_too(clean, tmp_path):
    copy, damaged = _damaged_copy(clean, tmp_path, "missing dataset_info.json")
    with pytest.raises(DamagedSourceError, match="is missing") as info:
        open_reader(load_source_card("droid"), str(copy.parent))  # the card points at the dataset, not the version
    assert str(damaged) in str(info.value)


@pytest.mark.parametrize("case", ["missing features.json", "truncated dataset_info.json"])
def test_annotate_on_damaged_metadata_exits_1_with_one_line_naming_the_file(clean, tmp_path, case):
    copy, damaged = _damaged_copy(clean, tmp_path, case)
    out = tmp_path / "out"
    result = runner.invoke(app, ["annotate", "droid", "--location", str(copy), "--out", str(out), *LA_OPTIONS])
    assert result.exit_code == 1, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and str(damaged) in errors[0] and DAMAGE[case][2] in errors[0]
    assert "Traceback" not in result.output
    target = out / "la" / "droid"  # refused when the reader opened: no manifest, no shard
    assert not (target / "manifest.json").exists() and not (target / "shards").exists()


# -- numbers at the boundary -----------------------------------------------------------------------------------

def _numeric_parameters():
    """(command, parameter, its typer OptionInfo/ArgumentInfo) of every int or float parameter of the CLI."""
    for command in app.registered_commands:
        for name, hint in typing.get_type_hints(command.callback, include_extras=True).items():
            base, *meta = typing.get_args(hint) if typing.get_origin(hint) is typing.Annotated else (hint,)
            kinds = set(typing.get_args(base)) - {type(None)} or {base}
            if kinds & {int, float}:
                yield command.callback.__name__, name, meta[0] if meta else None


def test_every_numeric_option_of_every_command_is_bounded():
    numeric = list(_numeric_parameters())
    assert {name for _, name, _ in numeric} >= {"limit", "episodes_per_shard", "workers", "retries"}
    unbounded = [(command, name) for command, name, info in numeric
                 if info is None or (info.min is None and info.max is None and info.callback is None)]
    assert not unbounded, f"numeric options without a range or a check: {unbounded}"


@pytest.mark.parametrize(("option", "value"), [("--episodes-per-shard", "0"), ("--limit", "-2"), ("--limit", "0"),
                                                ("--workers", "0"), ("--retries", "-1")])
def test_a_number_out_of_range_is_refused_before_anything_runs(clean, tmp_path, option, value):
    out = tmp_path / "out"
    result = runner.invoke(app, ["annotate", "droid", "--location", str(clean), "--out", str(out), option, value])
    said = " ".join(re.sub("[│╭╮╰╯─]", " ", result.output).split())  # typer's error box, unwrapped
    assert result.exit_code == 2 and f"Invalid value for '{option}'" in said and "greater than or equal to" in said, said
    assert "Traceback" not in result.output and not out.exists()


@pytest.mark.parametrize(("argument", "value"), [("limit", -2), ("episodes_per_shard", 0), ("retries", -1)])
def test_the_flow_refuses_the_same_numbers_for_deployment_callers(clean, tmp_path, argument, value):
    with pytest.raises(RunArgumentError, match=f"{argument} must be an integer >= "):
        annotate(source="droid", pipeline="la", out=str(tmp_path / "out"), location=str(clean), **{argument: value})
    written = [p.name for p in (tmp_path / "out").rglob("*") if p.is_file()]  # the output lease comes and goes
    assert written == [], written


# -- wrong but finite values -----------------------------------------------------------------------------------

def test_faulty_episodes_are_quarantined_with_their_reason_or_counted(faulty):
    items = list(open_reader(load_source_card("droid"), str(faulty)).read(0, 5))
    reasons = {i: item.reason for i, item in enumerate(items) if isinstance(item, Quarantined)}
    assert set(reasons) == {1, 2}
    assert reasons[1].startswith("instruction is not valid UTF-8") and "\\xff" in reasons[1]
    assert reasons[2].startswith("implausible state: z = 3e+38 at step 15 is outside state.plausible_range")
    closed_steps = int(expected_gripper(N_STEPS).sum())
    clipped = {i: item.metadata[GRIPPER_CLIPPED] for i, item in enumerate(items) if isinstance(item, Episode)}
    assert clipped == {0: 0, 3: closed_steps, 4: 0}  # the gripper past closed is still read, its clipping counted
    assert items[3].metadata["gripper_raw"].max() == np.float32(GRIPPER_BEYOND_CLOSED) and items[3].gripper.max() == 1


def test_the_plausible_range_is_the_cards_per_dim(faulty):
    card = load_source_card("droid")
    wide = card.model_copy(update={name: getattr(card, name).model_copy(update={"plausible_range": (-1e39, 1e39)})
                                   for name in ("state", "action")})  # DROID's absolute actions repeat the spike
    assert isinstance(next(iter(open_reader(wide, str(faulty)).read(2, 3))), Episode)

    def z_within(low: float, high: float):  # one range per dim: only z is bounded tightly
        ranges = [(-1e4, 1e4)] * 6
        ranges[2] = (low, high)
        state = StateSpec(**{**card.state.model_dump(), "plausible_range": ranges})
        return next(iter(open_reader(card.model_copy(update={"state": state}), str(faulty)).read(0, 1)))

    assert isinstance(z_within(0.0, 1.0), Episode)  # the clean episode's z is a few decimetres
    too_low = z_within(1.0, 2.0)
    assert isinstance(too_low, Quarantined) and too_low.reason.startswith("implausible state: z = 0.")
    assert "outside state.plausible_range [1, 2]" in too_low.reason
    per_dim = [(-1e4, 1e4)] * 6
    with pytest.raises(ValueError, match="plausible_range has 2 ranges for 6 names"):
        StateSpec(**{**card.state.model_dump(), "plausible_range": per_dim[:2]})
    with pytest.raises(ValueError, match="finite low < high"):
        StateSpec(**{**card.state.model_dump(), "plausible_range": (1.0, -1.0)})


def test_an_instruction_decoded_with_replacement_characters_breaks_the_episode_invariant():
    with pytest.raises(EpisodeError, match="U\\+FFFD"):
        Episode("e", "s", "pick up the \ufffd cube", 10.0, {"c": FrameSequence.from_array(np.zeros((2, 4, 4, 3), np.uint8))},
                np.zeros((2, 6)), np.zeros(2), np.zeros((2, 7)))


def test_a_run_over_the_faulty_corpus_finishes_with_the_faults_quarantined(faulty, tmp_path):
    out = tmp_path / "out"
    result = runner.invoke(app, ["annotate", "droid", "--location", str(faulty), "--out", str(out), "--pipeline", "la",
                                 *LA_OPTIONS])
    assert result.exit_code == 0, result.output
    quarantine = pq.read_table(out / "la" / "droid" / "quarantine.parquet").to_pylist()
    reasons = sorted(row["reason"].split(" (")[0].split(":")[0] for row in quarantine)
    assert reasons == ["implausible state", "instruction is not valid UTF-8"]
    assert all(row["stage"] == "read" for row in quarantine)
    manifest = Manifest.load(str(out / "la" / "droid"))  # the gripper past its closed value is counted, not hidden
    assert manifest.stats["gripper"]["clipped_values"] == int(expected_gripper(N_STEPS).sum())
