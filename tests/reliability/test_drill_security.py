"""Reliability drill (issue 12), security: secrets stay in the environment, checkpoints cannot run code.

- An option named like a secret (api_key, token, secret, password, authorization, ... at any depth), or one
  holding the value of a secret environment variable, is refused at the command line (exit 2, one line naming
  the environment variable to use, nothing written, nothing sent to Prefect) and by the flow itself.
- A real `la` run on the embedded sample with a planted key in OPENAI_API_KEY and LABEL_STUDIO_API_KEY uses
  it, and no file under OUT, no Prefect flow-run or task-run parameter, log or artifact holds it.
- The trainer loads checkpoints with weights_only=True: a crafted ckpt.pt is refused in one line naming it,
  and what the trainer saves loads that way.
"""

from __future__ import annotations

import json
import secrets

import pytest
import torch
from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.flows.annotate import annotate
from pipelines.flows.arguments import RunArgumentError, looks_secret
from tests.annotators.segments.fake_openai import FakeOpenAI, Reply, halves_answer
from tests.trainer.factories import make_la_folder
from trainer.__main__ import main as trainer_main
from trainer.models import ModelConfig
from trainer.train import (
    CHECKPOINT,
    CheckpointError,
    TrainConfig,
    load_checkpoint,
    train,
)

runner = CliRunner()
KEY = f"sk-drill-{secrets.token_hex(12)}"  # a fake key, planted; it must never be written anywhere
LS_KEY = f"ls-drill-{secrets.token_hex(12)}"


def _prefect_records() -> str:
    """Every flow run's and task run's parameters, every log line and artifact the session's Prefect API holds."""
    from prefect.client.orchestration import get_client

    texts: list[str] = []
    with get_client(sync_client=True) as client:
        for read in (client.read_flow_runs, client.read_task_runs):
            offset = 0
            while batch := read(limit=200, offset=offset):
                texts += [run.model_dump_json() for run in batch]
                offset += len(batch)
        offset = 0
        while logs := client.read_logs(limit=200, offset=offset):
            texts += [log.message for log in logs]
            offset += len(logs)
        texts += [artifact.model_dump_json() for artifact in client.read_artifacts()]
    return "\n".join(texts)


def _files_holding(root, *needles: str) -> list[str]:
    """Files under `root` whose bytes contain any of `needles`."""
    hits = []
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            if any(n.encode() in data for n in needles):
                hits.append(str(path.relative_to(root)))
    return hits


# -- options that look like secrets ----------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["api_key", "apiKey", "x-api-key", "OPENAI_API_KEY", "hf_token", "Authorization",
                                  "password", "client_secret", "access_token", "credentials"])
def test_credential_names_look_secret(name):
    assert looks_secret(name)


@pytest.mark.parametrize("name", ["max_tokens", "text_threshold", "keyframes", "segmenter", "vlm", "extra_body",
                                  "author", "keys", "review"])
def test_ordinary_option_names_do_not(name):
    assert not looks_secret(name)


SECRET_OPTIONS = {  # case: (--option text, the path the message names)
    "top level": (f"api_key={KEY}", "'api_key'"),
    "nested": (f'vlm={{"api_key": "{KEY}"}}', "'vlm.api_key'"),
    "deep header": (f'vlm={{"extra_body": {{"headers": {{"Authorization": "Bearer {KEY}"}}}}}}',
                    "'vlm.extra_body.headers.Authorization'"),
    "in a list": (f'llm=[{{"token": "{KEY}"}}]', "'llm[0].token'"),
    "password": ('labelstudio={"password": "hunter2"}', "'labelstudio.password'"),
    "the value of a secret variable": (f"vlm_cache=/tmp/cache-{KEY}", "holds the value of a secret environment variable"),
}


@pytest.mark.parametrize("case", list(SECRET_OPTIONS))
def test_a_secret_option_is_refused_in_one_line_before_anything_runs(case, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    text, named = SECRET_OPTIONS[case]
    out = tmp_path / "out"
    result = runner.invoke(app, ["annotate", "sample-droid", "--limit", "1", "--out", str(out), "-o", text])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and named in errors[0] and "OPENAI_API_KEY" in errors[0]
    assert "LABEL_STUDIO_API_KEY" in errors[0] and KEY not in result.output and "Traceback" not in result.output
    assert not out.exists()
    assert KEY not in _prefect_records()


def test_the_flow_refuses_a_secret_option_and_redacts_it_from_its_prefect_parameters(tmp_path, monkeypatch):
    """A deployment caller's parameters reach Prefect before the flow body runs: the flow refuses the run and
    overwrites the secrets in the recorded parameters."""
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", LS_KEY)
    out = tmp_path / "out"
    options = {"vlm": {"api_key": KEY, "max_in_flight": 2}, "note": f"token {LS_KEY} inside"}
    with pytest.raises(RunArgumentError, match=r"'vlm\.api_key', 'note .*' looks like a secret.*OPENAI_API_KEY"):
        annotate(source="sample-droid", pipeline="la", out=str(out), limit=1, options=options)
    assert [p for p in out.rglob("*") if p.is_file()] == []  # no manifest, card or log line of it
    records = _prefect_records()
    assert KEY not in records and LS_KEY not in records
    assert '"api_key":"<redacted>","max_in_flight":2' in records and "token <redacted> inside" in records


# -- a planted key in the environment, a real run --------------------------------------------------------------

@pytest.fixture
def vlm_server():
    server = FakeOpenAI().start()
    yield server
    server.stop()


def test_a_key_in_the_environment_reaches_no_artifact_of_a_real_run(vlm_server, tmp_path, monkeypatch):
    pytest.importorskip("tensorflow_datasets", reason="reading the RLDS sample needs the `tfds` extra")
    vlm_server.script("drill-planted", [Reply(halves_answer("move", "lift"))])
    monkeypatch.setenv("OPENAI_BASE_URL", vlm_server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("LA_VLM_MODEL", "drill-planted")
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", LS_KEY)  # without LABEL_STUDIO_URL: review tasks as JSON files
    monkeypatch.delenv("LABEL_STUDIO_URL", raising=False)
    monkeypatch.delenv("LA_VLM_CACHE", raising=False)
    out = tmp_path / "out"
    settings = json.dumps({"backoff_base_s": 0.001, "backoff_max_s": 0.005})
    result = runner.invoke(app, ["annotate", "sample-droid", "--pipeline", "la", "--limit", "2",
                                 "--episodes-per-shard", "1", "--out", str(out), "-o", "segmenter=vlm",
                                 "-o", f"vlm={settings}"])
    assert result.exit_code == 0, result.output
    assert vlm_server.counts["drill-planted"] >= 2  # the endpoint was asked, with the key from the environment
    files = [p for p in out.rglob("*") if p.is_file()]
    assert any(p.name == "manifest.json" for p in files) and any(p.suffix == ".parquet" for p in files)
    assert any(p.suffix == ".log" for p in files) and any(p.name == "tasks.json" for p in files)
    assert _files_holding(out, KEY, LS_KEY) == []
    assert KEY not in result.output and LS_KEY not in result.output
    records = _prefect_records()
    assert '"segmenter":"vlm"' in records  # this run's flow-run parameters are among those scanned
    assert KEY not in records and LS_KEY not in records


# -- trainer checkpoints ---------------------------------------------------------------------------------------

class _Payload:
    """What a crafted checkpoint smuggles in: unpickling it with weights_only=False would create `marker`."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return open, (self.marker, "w")


def test_a_crafted_checkpoint_is_refused_in_one_line_and_runs_nothing(tmp_path, capsys):
    marker = tmp_path / "pwned"
    torch.save({"model": _Payload(str(marker)), "optimizer": {}, "iter": 0}, tmp_path / CHECKPOINT)
    cfg = TrainConfig(recipe="la", data=str(tmp_path / "never-read"), out=str(tmp_path))
    with pytest.raises(CheckpointError, match="refusing to load checkpoint .*ckpt.pt.*open") as info:
        train(cfg)  # refused before any data is read
    assert str(tmp_path / CHECKPOINT) in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(SystemExit) as exit_info:
        trainer_main(["--recipe", "la", "--data", str(tmp_path / "never-read"), "--out", str(tmp_path)])
    assert str(exit_info.value).startswith("error: refusing to load checkpoint") and "\n" not in str(exit_info.value)
    assert not marker.exists()


def test_a_truncated_checkpoint_is_one_line_naming_it(tmp_path):
    torch.save({"model": {}, "optimizer": {}, "iter": 0}, tmp_path / CHECKPOINT)
    data = (tmp_path / CHECKPOINT).read_bytes()
    (tmp_path / CHECKPOINT).write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="cannot read checkpoint") as info:
        load_checkpoint(tmp_path / CHECKPOINT)
    assert str(tmp_path / CHECKPOINT) in str(info.value) and "\n" not in str(info.value)


def test_what_the_trainer_saves_loads_with_weights_only(tmp_path):
    data = tmp_path / "la"
    make_la_folder(data, episodes=8)
    small = ModelConfig(dim=32, layers=1, heads=2, horizon=4, image_size=32, patch=8, crop_size=8, crop_patch=4,
                        flow_steps=2)
    cfg = TrainConfig(recipe="la", data=str(data), out=str(tmp_path / "ckpt"), steps=2, batch_size=4, warmup=1,
                      num_workers=0, log_interval=0, buffer_size=8, holdout_fraction=0.25, model=small)
    train(cfg)
    checkpoint = load_checkpoint(tmp_path / "ckpt" / CHECKPOINT)  # weights_only=True
    assert checkpoint["iter"] == 2 and checkpoint["config"]["model"]["dim"] == 32
    assert isinstance(checkpoint["config"], dict) and checkpoint["optimizer"]["state"]


def test_a_secret_option_is_redacted_even_when_the_folder_is_locked_by_another_run(tmp_path):
    """The check comes before the card is loaded and the lease taken: a held lease must not keep the key."""
    import json
    import time

    from pipelines.io.lease import LEASE_FILE

    target = tmp_path / "out" / "la" / "sample-droid"
    target.mkdir(parents=True)
    owner = {"host": "elsewhere", "pid": 1, "run_id": "theirs", "token": "t" * 32, "boot_id": "b", "pid_ns": "p"}
    (target / LEASE_FILE).write_text(json.dumps({"owner": owner, "expires_at": time.time() + 60}))
    with pytest.raises(RunArgumentError, match="looks like a secret"):
        annotate(source="sample-droid", pipeline="la", out=str(tmp_path / "out"), limit=1,
                 options={"vlm": {"api_key": KEY}})
    assert KEY not in _prefect_records()


def test_a_secret_in_a_card_files_params_is_refused_before_it_reaches_the_manifest(tmp_path):
    card = tmp_path / "my-robot.yaml"
    card.write_text("extends: sample-droid\nname: my-robot\nparams:\n  la:\n    extra:\n      vlm:\n"
                    f"        api_key: {KEY}\n")
    out = tmp_path / "out"
    result = runner.invoke(app, ["annotate", str(card), "--limit", "1", "--out", str(out), "--pipeline", "la"])
    assert result.exit_code == 2 and "la.extra.vlm.api_key" in result.output and KEY not in result.output
    assert not out.exists()
    with pytest.raises(RunArgumentError, match="look like a secret"):
        annotate(source=str(card), pipeline="la", out=str(out), limit=1)
    assert not [p for p in out.rglob("*") if p.is_file() and KEY in p.read_text(errors="ignore")]
