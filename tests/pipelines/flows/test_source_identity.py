"""An output folder knows what it was made from: other data is refused like another config, the same data
moved is followed, the embedded sample is named as the sample, and a larger limit extends an output."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from datasets_cards.manifest import Manifest
from tests.pipelines.formats.rlds_fixtures import make_rlds_fixture
from tests.servers.cli import run_cli

pytest.importorskip("tensorflow_datasets", reason="the RLDS sources need the `tfds` extra")

SAMPLE = Path(__file__).resolve().parents[3] / "pipelines" / "sample" / "data" / "droid"


class Run:
    """`python -m pipelines annotate ...` in its own process, as a user types it (against the session's server)."""

    def __init__(self, env: dict[str, str]):
        self.env = env

    def __call__(self, out: Path, *args: str, pipeline: str = "la") -> subprocess.CompletedProcess:
        quiet = ["-o", "review=false", "-o", "plots=0"] if pipeline == "la" else ["-o", "montage=0"]
        command = [sys.executable, "-m", "pipelines", "annotate", *args, "--pipeline", pipeline, "--out", str(out),
                   *quiet]
        done = run_cli(command, self.env)
        done.output = done.stdout + done.stderr  # type: ignore[attr-defined]
        return done


@pytest.fixture(scope="module")
def annotate(prefect_api) -> Run:
    return Run(prefect_api)


def episodes(target: Path) -> list[str]:
    return sorted(e for s in Manifest.load(str(target)).shards for e in s.episodes)


@pytest.fixture(scope="module")
def two_droid_copies(tmp_path_factory) -> tuple[Path, Path]:
    """Two DROID-schema datasets of 4 and 6 episodes: what two copies of 'DROID' on two disks may hold."""
    root = tmp_path_factory.mktemp("droids")
    small = make_rlds_fixture(root / "a", "droid", n_episodes=4, n_steps=40, seed=1)
    large = make_rlds_fixture(root / "b", "droid", n_episodes=6, n_steps=40, seed=2)
    return small, large


def test_another_source_into_the_same_output_is_refused_and_nothing_mixes(annotate, tmp_path, two_droid_copies):
    small, large = two_droid_copies
    assert annotate(tmp_path, "droid", "--location", str(small)).returncode == 0
    target = tmp_path / "la" / "droid"
    before = episodes(target)
    shards = sorted(p.read_bytes() for p in (target / "shards").iterdir())

    result = annotate(tmp_path, "droid", "--location", str(large))
    assert result.returncode == 1, result.output
    assert "other data" in result.output and str(small) in result.output and "--overwrite" in result.output
    assert episodes(target) == before  # the first source's output is untouched
    assert sorted(p.read_bytes() for p in (target / "shards").iterdir()) == shards

    result = annotate(tmp_path, "droid", "--location", str(large), "--overwrite")
    assert result.returncode == 0, result.output
    manifest = Manifest.load(str(target))
    assert manifest.source_location == str(large) and len(episodes(target)) == 6


def test_the_same_data_moved_resumes_and_records_its_new_place(annotate, tmp_path, two_droid_copies):
    small, _ = two_droid_copies
    assert annotate(tmp_path / "out", "droid", "--location", str(small)).returncode == 0
    moved = tmp_path / "moved" / "1.0.1"
    shutil.copytree(small, moved)
    target = tmp_path / "out" / "la" / "droid"
    rows = Manifest.load(str(target)).rows

    result = annotate(tmp_path / "out", "droid", "--location", str(moved))
    assert result.returncode == 0, result.output
    manifest = Manifest.load(str(target))
    assert manifest.source_location == str(moved) and manifest.rows == rows


def test_the_embedded_sample_passed_as_a_location_is_named_and_described_as_the_sample(annotate, tmp_path):
    result = annotate(tmp_path, "droid", "--location", str(SAMPLE), "--limit", "1")
    assert result.returncode == 0, result.output
    assert "embedded sample" in result.output
    assert "oneDNN" not in result.output and "absl::InitializeLog" not in result.output  # no library notices
    assert not (tmp_path / "la" / "droid").exists()
    card = (tmp_path / "la" / "sample-droid" / "card.md").read_text()
    assert "Simulated DROID-schema sample" in card and "76k" not in card.lower()


def test_a_larger_limit_extends_the_output_and_a_smaller_one_is_refused(annotate, tmp_path):
    per_shard = ["--episodes-per-shard", "3"]
    assert annotate(tmp_path / "grown", "sample-droid", "--limit", "2", *per_shard).returncode == 0
    target = tmp_path / "grown" / "la" / "sample-droid"
    first = {s.unit: s.sha256 for s in Manifest.load(str(target)).shards}
    assert list(first) == ["0:2"]

    result = annotate(tmp_path / "grown", "sample-droid", "--limit", "5", *per_shard)
    assert result.returncode == 0, result.output
    assert annotate(tmp_path / "fresh", "sample-droid", "--limit", "5", *per_shard).returncode == 0
    grown, fresh = Manifest.load(str(target)), Manifest.load(str(tmp_path / "fresh" / "la" / "sample-droid"))
    assert [s.unit for s in grown.shards] == ["0:3", "3:5"]
    assert episodes(target) == episodes(tmp_path / "fresh" / "la" / "sample-droid")
    for a, b in zip(grown.shards, fresh.shards, strict=True):  # the same rows as one run at the larger limit
        assert pq.read_table(target / a.path).equals(pq.read_table(tmp_path / "fresh" / "la" / "sample-droid" / b.path))
    assert grown.config_hash == fresh.config_hash

    result = annotate(tmp_path / "grown", "sample-droid", "--limit", "1", *per_shard)
    assert result.returncode == 1 and "never shrinks" in result.output
    assert [s.unit for s in Manifest.load(str(target)).shards] == ["0:3", "3:5"]


def test_an_output_of_an_older_version_that_hashed_the_limit_still_resumes(annotate, tmp_path):
    assert annotate(tmp_path, "sample-droid", "--limit", "2").returncode == 0
    target = tmp_path / "la" / "sample-droid"
    path = target / "manifest.json"
    old = json.loads(path.read_text())
    old["config"]["limit"] = 2  # as versions before the limit extended outputs wrote it
    old["config_hash"] = "0123456789abcdef"
    path.write_text(json.dumps(old))
    result = annotate(tmp_path, "sample-droid", "--limit", "2")
    assert result.returncode == 0, result.output
    assert "limit" not in Manifest.load(str(target)).config


def test_a_config_clash_is_refused_before_any_model_loads(annotate, tmp_path):
    assert annotate(tmp_path, "sample-bridge", "--limit", "1", "-o", "detector=centre", pipeline="gaze").returncode == 0
    # The second run names weights that do not exist: were they looked for first, that would be the error.
    result = annotate(tmp_path, "sample-bridge", "--limit", "1", "-o", "detector=transformers",
                      "-o", f"model={tmp_path / 'no-such-weights'}", pipeline="gaze")
    assert result.returncode == 1, result.output
    assert "differs in" in result.output and "params.detector" in result.output and "params.model" in result.output
    assert "does not exist" not in result.output and "--overwrite" in result.output
    alone = annotate(tmp_path / "fresh", "sample-bridge", "--limit", "1", "-o", "detector=transformers",
                     "-o", f"model={tmp_path / 'no-such-weights'}", pipeline="gaze")
    assert alone.returncode == 1 and "does not exist" in alone.output  # what the clash kept from happening


def test_a_copy_of_the_embedded_sample_is_recognised_by_its_data(annotate, tmp_path):
    copy = tmp_path / "my-droid" / "1.0.1"
    shutil.copytree(SAMPLE / "1.0.1", copy)
    result = annotate(tmp_path / "out", "droid", "--location", str(copy), "--limit", "1")
    assert result.returncode == 0, result.output
    assert not (tmp_path / "out" / "la" / "droid").exists()
    assert (tmp_path / "out" / "la" / "sample-droid" / "card.md").exists()
    assert "la/sample-droid/card.md" in result.output  # the last line names the folder the run wrote


def test_options_that_do_not_change_rows_may_change_on_resume(annotate, tmp_path):
    assert annotate(tmp_path, "sample-droid", "--limit", "1").returncode == 0
    result = annotate(tmp_path, "sample-droid", "--limit", "1", "-o", "plots=1")
    assert result.returncode == 0, result.output
    assert "plots" not in Manifest.load(str(tmp_path / "la" / "sample-droid")).config["options"]


def test_a_card_that_calibrates_its_gripper_extends_too(annotate, tmp_path):
    """The gripper is surveyed on the corpus's first episodes whatever the limit, so the card stays the same."""
    card = tmp_path / "calibrated.yaml"
    card.write_text(f"extends: sample-droid\nname: calibrated-droid\nlocation: {SAMPLE / '1.0.1'}\n"
                    "gripper: {calibrate: true}\n")
    per_shard = ["--episodes-per-shard", "3"]
    assert annotate(tmp_path, str(card), "--limit", "2", *per_shard).returncode == 0
    result = annotate(tmp_path, str(card), "--limit", "5", *per_shard)
    assert result.returncode == 0, result.output
    assert [s.unit for s in Manifest.load(str(tmp_path / "la" / "calibrated-droid")).shards] == ["0:3", "3:5"]
