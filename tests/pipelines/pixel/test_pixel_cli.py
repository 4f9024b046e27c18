"""`python -m pipelines annotate sample-fractal --pipeline pixel` as a user types it: with weights (tiny, on disk)
it writes shards, manifest, card and montage; without them it ends in one message naming every model (under
Prefect's temporary server, as `make annotate` runs it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("tensorflow_datasets")


def run_cli(args: list[str], tmp_path, **env: str) -> subprocess.CompletedProcess:
    """The command in its own process, as typed (model loading writes progress bars to the real stderr); with no
    PREFECT_API_URL in `env` it starts Prefect's temporary server (≈12 s here)."""
    environment = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"), **env}
    return subprocess.run([sys.executable, "-m", "pipelines", *args], check=False, capture_output=True, text=True,
                          env=environment,
                          timeout=600)


def test_with_weights_on_disk_the_command_writes_the_whole_output(tmp_path, tiny_grounding_dino_path, tiny_sam2_path,
                                                                   prefect_api):
    args = ["annotate", "sample-fractal", "--pipeline", "pixel", "--out", str(tmp_path), "--limit", "3",
            "-o", f"detector_model={tiny_grounding_dino_path}", "-o", f"sam_model={tiny_sam2_path}",
            "-o", "device=cpu", "-o", "box_threshold=0", "-o", "text_threshold=0",
            "-o", "max_mask_of_image=1", "-o", "max_mask_of_proposal=1", "-o", "min_mask_inside_proposal=0"]
    result = run_cli(args, tmp_path, **prefect_api)  # the session's server: the temporary one is tested below
    assert result.returncode == 0, result.stdout + result.stderr
    target = tmp_path / "pixel" / "sample-fractal"
    manifest = json.loads((target / "manifest.json").read_text())
    assert manifest["complete"] and sum(s["rows"] for s in manifest["shards"]) > 0
    assert (target / "card.md").exists() and (target / "montage.png").exists()
    assert list((target / "shards").glob("shard-*.parquet"))


def test_without_weights_one_message_names_every_model_and_how_to_fetch_it(tmp_path):
    result = run_cli(["annotate", "sample-fractal", "--pipeline", "pixel", "--out", str(tmp_path / "out")], tmp_path,
                     HF_HUB_CACHE=str(tmp_path / "empty-cache"), HF_HUB_OFFLINE="1")
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "IDEA-Research/grounding-dino-tiny" in output and "facebook/sam2.1-hiera-tiny" in output
    assert "download" in output and "Traceback" not in output
