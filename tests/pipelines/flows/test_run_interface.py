"""What a run tells its user: an unreachable corpus in one line, hints in the words of the interface used
(command line or deployment), configuration errors not retried, units named in the UI and the log."""

from __future__ import annotations

import base64
import importlib.util
import io

import numpy as np
import pytest
from PIL import Image
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.states import Failed

from datasets_cards import list_sources, load_source_card
from datasets_cards.errors import RunAbortError
from pipelines.artifact_images import MAX_SIDE, inline_images
from pipelines.flows import hints
from pipelines.flows.annotate import ConfigMismatchError, annotate, worth_retrying
from pipelines.flows.sources import SourceUnreachableError, check_source_reachable
from pipelines.io.location import location_problem
from pipelines.labelstudio.client import (
    LabelStudioClient,
    LabelStudioError,
    LabelStudioUnreachableError,
)
from tests.servers.prefect_server import free_port

needs_sample = pytest.mark.skipif("sample-droid" not in list_sources(), reason="needs the embedded sample")


@pytest.fixture
def deployment(monkeypatch):
    """Hints as a flow run started from a deployment sees them."""
    monkeypatch.setattr(hints, "in_deployment", lambda: True)


def test_location_problem_names_what_is_missing(tmp_path):
    assert location_problem(str(tmp_path)) is None
    assert location_problem(str(tmp_path / "missing")) == "nothing is there"
    assert "Protocol not known: nope" in location_problem("nope://bucket/droid")
    if importlib.util.find_spec("gcsfs") is None:
        assert "gcsfs" in location_problem("gs://gresearch/robotics/droid/1.0.1")


def test_unreachable_corpus_names_the_flag_and_the_sample_on_the_command_line(tmp_path):
    card = load_source_card("droid")
    with pytest.raises(SourceUnreachableError) as error:
        check_source_reachable("droid", card, str(tmp_path / "droid"), "la")
    assert str(error.value) == (f"droid is not reachable at {tmp_path / 'droid'}: nothing is there. Set --location "
                                "/path/to/droid to where the corpus is, or run `annotate sample-droid --pipeline la` "
                                "on the embedded sample")


def test_unreachable_corpus_names_the_parameter_and_the_sample_deployment(deployment, tmp_path):
    with pytest.raises(SourceUnreachableError, match=r"Set --param location=/path/to/bridge to where the corpus "
                                                     r"is, or run the deployment annotate/pixel-sample-bridge on"):
        check_source_reachable("bridge", load_source_card("bridge"), str(tmp_path / "nowhere"), "pixel")


def test_a_card_files_own_location_is_left_to_its_reader(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("extends: droid\nname: mine\nformat: rlds\nlocation: memory://nowhere\n")
    check_source_reachable(str(path), load_source_card(str(path)), None, "la")  # no error: its format decides


def test_the_flow_refuses_an_unreachable_corpus_before_taking_the_output(tmp_path):
    with pytest.raises(SourceUnreachableError, match="droid is not reachable at .*. Set --location"):
        annotate(source="droid", pipeline="la", out=str(tmp_path / "out"), location=str(tmp_path / "missing"))
    assert not (tmp_path / "out").exists()  # no lease, no manifest: nothing was started


def test_flags_speak_the_interface(monkeypatch):
    assert (hints.flag("out"), hints.flag("overwrite", True), hints.flag("location", "/d")) == (
        "--out", "--overwrite", "--location /d")
    monkeypatch.setattr(hints, "in_deployment", lambda: True)
    assert (hints.flag("out"), hints.flag("overwrite", True), hints.flag("location", "/d")) == (
        "--param out=…", "--param overwrite=true", "--param location=/d")


@pytest.mark.parametrize("error, retried", [
    (LabelStudioUnreachableError("Label Studio at http://127.0.0.1:1 is not reachable"), False),
    (ConfigMismatchError("written with another config"), False),
    (RunAbortError("rejected key"), False),
    (LabelStudioError("POST /api/projects → 502"), True),
    (OSError("disk went away"), True),
])
def test_configuration_errors_are_not_retried(error, retried):
    assert worth_retrying(None, None, Failed(data=error)) is retried


def test_no_label_studio_at_the_url_is_a_configuration_error():
    with (LabelStudioClient(f"http://127.0.0.1:{free_port()}", "token", timeout=5) as client,
          pytest.raises(LabelStudioUnreachableError, match="is not reachable")):
        client.projects()


def _png(path, width, height):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).save(path)


def test_card_images_are_inlined_small_and_few(tmp_path):
    (tmp_path / "plots").mkdir()
    for i in range(3):
        _png(tmp_path / "plots" / f"ep{i}.png", 1600, 400)
    markdown = ("![a](plots/ep0.png)\n![gone](plots/missing.png)\n![b](plots/ep1.png)\n![c](plots/ep2.png)\n"
                "![web](https://example.org/x.png)\n")
    out = inline_images(markdown, str(tmp_path), max_images=2).splitlines()
    for line in (out[0], out[2]):
        kind, data = line.split("](data:image/")[1].rstrip(")").split(";base64,")
        image = Image.open(io.BytesIO(base64.b64decode(data)))
        assert kind in ("png", "jpeg") and image.size == (MAX_SIDE, MAX_SIDE // 4)
    assert out[1] == f"*gone: `{tmp_path}/plots/missing.png` (FileNotFoundError)*"  # says where it should be
    assert out[3] == f"*c: `{tmp_path}/plots/ep2.png`*"  # past the limit: named, not inlined
    assert out[4] == "![web](https://example.org/x.png)"


@needs_sample
def test_deployment_words_in_a_config_clash_and_units_named_in_the_ui(deployment, tmp_path):
    out = str(tmp_path / "out")
    state = annotate(source="sample-droid", pipeline="la", out=out, limit=2, episodes_per_shard=1,
                     options={"review": False}, return_state=True)
    assert state.is_completed()
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[
            state.state_details.flow_run_id])))
        names = sorted(t.name for t in client.read_task_runs() if t.flow_run_id == state.state_details.flow_run_id)
    assert runs[0].name == "la-sample-droid"
    assert [n for n in names if n.startswith("unit-")] == ["unit-00000 [0:1]", "unit-00001 [1:2]"]
    with pytest.raises(ConfigMismatchError, match=r"Use another --param out=…, or --param overwrite=true"):
        annotate(source="sample-droid", pipeline="la", out=out, limit=2, episodes_per_shard=2, options={"review": False})
