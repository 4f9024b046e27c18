"""A LeRobot recording as people make them (an SO-101 arm, joint positions, no videos) → a card → la rows."""

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml
from typer.testing import CliRunner

from datasets_cards import load_source_card
from pipelines.cli import app
from pipelines.formats.lerobot.writer import LeRobotEpisode, write_lerobot_v30

JOINTS = ["shoulder_pan.pos", "shoulder_lift.pos", "elbow_flex.pos", "wrist_flex.pos", "wrist_roll.pos", "gripper.pos"]
FPS = 30
# Five revolute joints (pan about z, then pitch joints about y, roll about x) and a tool frame.
SO101_LIKE = """<?xml version="1.0"?>
<robot name="so101_like">
  <link name="base"/><link name="l1"/><link name="l2"/><link name="l3"/><link name="l4"/><link name="l5"/>
  <link name="gripper_tip"/>
  {joints}
  <joint name="tip" type="fixed"><parent link="l5"/><child link="gripper_tip"/><origin xyz="0.1 0 0"/></joint>
</robot>
"""
AXES = ["0 0 1", "0 1 0", "0 1 0", "0 1 0", "1 0 0"]
OFFSETS = ["0 0 0.05", "0 0 0.05", "0.11 0 0", "0.13 0 0", "0.05 0 0"]


def write_urdf(path: Path) -> Path:
    links = ["base", "l1", "l2", "l3", "l4", "l5"]
    joints = "\n  ".join(
        f'<joint name="j{i}" type="revolute"><parent link="{links[i]}"/><child link="{links[i + 1]}"/>'
        f'<origin xyz="{OFFSETS[i]}"/><axis xyz="{AXES[i]}"/>'
        '<limit lower="-3" upper="3" effort="1" velocity="1"/></joint>'
        for i in range(5)
    )
    path.write_text(SO101_LIKE.format(joints=joints))
    return path


def so101_episode(seed: int) -> LeRobotEpisode:
    """Reach down, close the jaw, lift, open: open is raw 35 (a real SO-101 opens to about 35 of 100); on the
    cube the jaw stops at 14, and episode 2 misses it and shuts to 2."""
    t = 90
    phase = np.linspace(0, 1, t)
    lift = np.where(phase < 0.3, -0.6 * phase / 0.3, np.where(phase < 0.5, -0.6, -0.6 + 0.9 * (phase - 0.5)))
    joints = np.zeros((t, 6), np.float32)
    joints[:, 0] = 0.2 * phase + 0.05 * seed
    joints[:, 1] = lift
    joints[:, 2] = -lift / 2
    closing = np.clip((phase - 0.32) / 0.12, 0, 1) - np.clip((phase - 0.8) / 0.12, 0, 1)  # the jaw moves in ~0.4 s
    joints[:, 5] = 35.0 - (33.0 if seed == 2 else 21.0) * closing
    return LeRobotEpisode("pick up the cube", {"observation.state": joints, "action": joints.copy()})


@pytest.fixture(scope="module")
def so101(tmp_path_factory) -> Path:
    features = {key: {"dtype": "float32", "shape": [6], "names": JOINTS} for key in ("observation.state", "action")}
    return write_lerobot_v30(tmp_path_factory.mktemp("so101") / "ds", fps=FPS, features=features,
                             episodes=[so101_episode(i) for i in range(3)], robot_type="so101_follower")


def test_the_card_command_reads_the_datasets_own_keys(so101, tmp_path):
    result = CliRunner().invoke(app, ["lerobot-card", str(so101), "--name", "my-so101", "--out", str(tmp_path / "c.yaml")])
    assert result.exit_code == 0, result.output
    assert "no cameras" in result.output and "state.urdf" in result.output
    card = load_source_card(str(tmp_path / "c.yaml"))
    assert card.cameras == {} and card.fps == FPS and card.state.space == "joint"
    assert card.state.dims == [0, 1, 2, 3, 4] and card.gripper.index == 5 and card.gripper.calibrate


def test_state_only_joint_space_recording_gives_la_rows_once_the_card_names_a_urdf(so101, tmp_path):
    card_path = tmp_path / "so101.yaml"
    assert CliRunner().invoke(app, ["lerobot-card", str(so101), "--name", "so101-test", "--out", str(card_path)]).exit_code == 0
    without = CliRunner().invoke(app, ["annotate", str(card_path), "--pipeline", "la", "--out", str(tmp_path / "a")])
    assert without.exit_code == 1 and "state.urdf" in without.output  # refused, naming what to add

    card = yaml.safe_load(card_path.read_text())
    card["state"].update(urdf=str(write_urdf(tmp_path / "arm.urdf")), ee_frame="gripper_tip")
    card_path.write_text(yaml.safe_dump(card))
    done = CliRunner().invoke(app, ["annotate", str(card_path), "--pipeline", "la", "--out", str(tmp_path / "b"),
                                    "-o", "plots=0"])
    assert done.exit_code == 0, done.output
    rows = pq.read_table(tmp_path / "b" / "la" / "so101-test" / "shards").to_pylist()
    assert {r["source_episode_id"] for r in rows} == {f"so101-test-{i:06d}" for i in range(3)}
    assert {"grasp", "place"} <= {r["subaction"] for r in rows}
    gripper = np.concatenate([r["gripper"] for r in rows])
    assert gripper.min() < 0.05 and gripper.max() > 0.95  # calibrated: the 35-of-100 jaw spans open to closed
    target = tmp_path / "b" / "la" / "so101-test"
    assert not (target / "review" / "media").exists()  # no cameras, no clips ...
    card_md = (target / "card.md").read_text()
    assert "no cameras (a state-only recording)" in card_md and "LA-V: none" in card_md  # ... and the card says so


def test_pipelines_that_look_at_images_refuse_a_card_without_cameras():
    from datasets_cards import CardError
    from pipelines.base import make_pipeline

    with pytest.raises(CardError, match="gaze pipeline looks at images.*'so101' declares no cameras"):
        make_pipeline("gaze", load_source_card("so101"), {"model": "unused"})
