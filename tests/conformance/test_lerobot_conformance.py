"""la's LeRobot folders loaded by LeRobot itself (`make conformance`; skipped without LeRobot's virtualenv).

The la flow writes v3.0 (vision-free and LA-V) on the synthetic DROID-shaped source; LeRobot's
`LeRobotDataset` must load each folder and return the values of the shards' rows. The v2.1 option is
converted by LeRobot's own v2.1 → v3.0 converter first, as LeRobot asks of every v2.1 dataset.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from datasets_cards.manifest import Manifest
from pipelines.flows import annotate as flow_module
from pipelines.la.export import row_to_data, write_layouts
from tests.pipelines.la.conftest import CAMERAS, SYNTHETIC_SOURCE, synthetic_format, write_synthetic_card
from tests.pipelines.la.lerobot_checks import current_rows

LEROBOT_PYTHON = os.environ.get("LEROBOT_PYTHON")
LOADER = Path(__file__).with_name("lerobot_load.py")
pytestmark = pytest.mark.skipif(not LEROBOT_PYTHON, reason="needs LeRobot's own virtualenv: run `make conformance`")


@pytest.fixture(scope="module")
def la_output(tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    card = write_synthetic_card(tmp_path_factory.mktemp("card"))
    with synthetic_format():
        flow_module.annotate(source=card, pipeline="la", out=str(out), options={"lav": True, "plots": 0, "review": False})
    target = out / "la" / SYNTHETIC_SOURCE
    return target, current_rows(target)


def load_with_lerobot(root: Path, tmp: Path, convert_v21: bool = False) -> dict:
    result = tmp / f"{root.name}.json"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp / "hf"), "HF_LEROBOT_HOME": str(tmp / "lerobot")}
    command = [LEROBOT_PYTHON, str(LOADER), str(root), str(result), *(["--convert-v21"] if convert_v21 else [])]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(result.read_text())


def camera_shapes(root: Path) -> dict[str, tuple[int, int, int]]:
    """What LeRobot returns for each camera of our info.json: C × H × W."""
    features = json.loads((root / "meta" / "info.json").read_text())["features"]
    return {key: (3, f["shape"][0], f["shape"][1]) for key, f in features.items() if f["dtype"] == "video"}


def assert_lerobot_returns_the_rows(loaded: dict, rows: list[dict], cameras: dict[str, tuple[int, int, int]]) -> None:
    assert loaded["codebase_version"] == "v3.0" and loaded["num_episodes"] == len(rows)
    frames = loaded["frames"]
    assert len(frames) == sum(r["end"] - r["start"] for r in rows)
    for i, row in enumerate(rows):
        mine = [f for f in frames if f["episode_index"] == i]
        assert [f["frame_index"] for f in mine] == list(range(row["end"] - row["start"]))
        assert {f["task"] for f in mine} == {row["instruction"]}
        np.testing.assert_allclose([f["timestamp"] for f in mine], np.arange(len(mine)) / loaded["fps"], atol=1e-4)
        for key, expected in row_to_data(row).items():
            got = np.asarray([f[key] for f in mine], dtype=np.float32).reshape(expected.shape)
            np.testing.assert_array_equal(got, expected, err_msg=f"episode {i} {key}")
        for key, shape in cameras.items():  # LeRobot decodes the video frame of every index
            assert {tuple(f[key]) for f in mine} == {shape}


@pytest.mark.parametrize("layout, cameras", [("lerobot", 0), ("lerobot_v", len(CAMERAS))])
def test_lerobot_loads_our_v30_folders_and_returns_what_we_wrote(la_output, layout, cameras, tmp_path):
    target, rows = la_output
    shapes = camera_shapes(target / layout)
    assert len(shapes) == cameras
    assert_lerobot_returns_the_rows(load_with_lerobot(target / layout, tmp_path), rows, shapes)


@pytest.mark.parametrize("layout, cameras", [("lerobot", 0), ("lerobot_v", len(CAMERAS))])
def test_lerobot_converts_our_v21_folders_and_returns_what_we_wrote(la_output, layout, cameras, tmp_path):
    target, rows = la_output
    copy = tmp_path / "out"
    shutil.copytree(target, copy)
    write_layouts(str(copy), Manifest.load(str(copy)), Manifest.load(str(copy)).source_card(), lav=True, version="2.1")
    assert json.loads((copy / layout / "meta" / "info.json").read_text())["codebase_version"] == "v2.1"
    shapes = camera_shapes(copy / layout)
    assert len(shapes) == cameras
    assert_lerobot_returns_the_rows(load_with_lerobot(copy / layout, tmp_path, convert_v21=True), rows, shapes)
