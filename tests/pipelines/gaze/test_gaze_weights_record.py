"""`annotate --option model=PATH`: the manifest records the folder the run used, its hash, device and dtype, and
other weights under the same path do not resume into its rows."""

from __future__ import annotations

import shutil

import pytest
from typer.testing import CliRunner

pytest.importorskip("torch")
pytest.importorskip("tensorflow_datasets")

from annotators.weights import weights_sha256
from datasets_cards.manifest import Manifest
from pipelines import base
from pipelines.cli import app
from tests.pipelines.gaze.test_gaze_flow import bridge_source

runner = CliRunner()


def annotate(source: str, location: str | None, out, model) -> object:
    args = ["annotate", source, "--pipeline", "gaze", "--out", str(out), "--limit", "1", "--retries", "0",
            "-o", f"model={model}", "-o", "device=cpu", "-o", "batch_size=4", "-o", "montage=0"]
    return runner.invoke(app, [*args, *(["--location", location] if location else [])])


def test_the_manifest_names_the_weights_the_run_used_and_refuses_other_ones(tmp_path, tiny_grounding_dino_path):
    model = shutil.copytree(tiny_grounding_dino_path, tmp_path / "my-grounding-dino")
    source, location = bridge_source(tmp_path)
    out = tmp_path / "out"
    result = annotate(source, location, out, model)
    assert result.exit_code == 0, result.output
    manifest = Manifest.load(str(out / "gaze" / source))
    assert manifest.config["params"]["model"] == str(model)  # the value used, not the card's hub id
    [record] = manifest.models
    assert (record.family, record.model, record.folder) == ("Grounding DINO", str(model), str(model.resolve()))
    assert record.sha256 == weights_sha256(model) and record.revision is None
    assert (record.device, record.dtype) == ("cpu", "float32")
    assert manifest.config["weights"] == {"Grounding DINO": record.sha256}
    card = (out / "gaze" / source / "card.md").read_text()  # the card says what ran, where, on what
    assert f"from `{model.resolve()}`" in card and "on cpu in float32" in card

    # Other weights under the same path (re-trained, re-downloaded) are another config: no silent resume.
    weights = model / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    base._cached.cache_clear()  # a second command is a new process: nothing of the first run's pipeline is kept
    again = annotate(source, location, out, model)
    assert again.exit_code == 1 and "--overwrite" in again.output, again.output
    assert "weights.Grounding DINO" in again.output  # the message names what changed
