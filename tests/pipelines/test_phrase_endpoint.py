"""The LLM phrase extractor's endpoint: one line before anything runs when there is none, no key for a local one."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.phrases import LlmEndpointError, check_llm_endpoint, run_phrase_extractor
from tests.annotators.segments.fake_openai import FakeOpenAI, Reply

runner = CliRunner()


@pytest.fixture
def no_endpoint(monkeypatch):
    for name in ("OPENAI_BASE_URL", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("settings, environ", [
    ({}, {}),
    ({"model": "m"}, {"LA_VLM_MODEL": "m"}),  # a model is not an endpoint
])
def test_no_endpoint_is_one_line_naming_what_to_set(settings, environ):
    with pytest.raises(LlmEndpointError) as error:
        check_llm_endpoint(settings, environ)
    message = str(error.value)
    assert "\n" not in message
    for name in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "phrase_extractor=llm", "phrase_extractor=rules"):
        assert name in message


@pytest.mark.parametrize("settings, environ", [
    ({}, {"OPENAI_BASE_URL": "http://localhost:8000/v1"}),  # a local server: no key needed
    ({"base_url": "http://localhost:8000/v1"}, {}),
    ({}, {"OPENAI_API_KEY": "sk-test"}),  # OpenAI itself
])
def test_a_base_url_or_a_key_is_an_endpoint(settings, environ):
    check_llm_endpoint(settings, environ)


def test_the_command_line_refuses_the_llm_extractor_without_an_endpoint_before_anything_runs(tmp_path, no_endpoint):
    out = tmp_path / "out"
    result = runner.invoke(app, ["annotate", "sample-bridge", "--pipeline", "gaze", "--out", str(out),
                                 "-o", "phrase_extractor=llm"])
    assert result.exit_code == 2, result.output
    [line] = [line for line in result.output.splitlines() if line.strip()]
    assert line.startswith("error:") and "OPENAI_BASE_URL" in line and "phrase_extractor=rules" in line
    assert not out.exists() and "Missing credentials" not in result.output


@pytest.mark.parametrize("where", ["option", "environment"])
def test_a_local_server_is_asked_without_a_key(tmp_path, monkeypatch, no_endpoint, where):
    server = FakeOpenAI().start()
    try:
        server.script("local-model", [Reply(content=json.dumps({"object": "red block", "destination": "bowl"}))])
        llm = {"model": "local-model"}
        if where == "option":
            llm["base_url"] = server.base_url
        else:  # several endpoints, as the VLM segmenter takes them: the extractor asks the first
            monkeypatch.setenv("OPENAI_BASE_URL", f"{server.base_url},http://127.0.0.1:9/v1")
        extractor = run_phrase_extractor("llm", {}, {"llm": llm}, "NO_SUCH_CACHE_VARIABLE")
        phrases = extractor("put the red block in the bowl")
    finally:
        server.stop()
    assert (phrases.object, phrases.destination) == ("red block", "bowl")
    assert server.counts["local-model"] == 1
