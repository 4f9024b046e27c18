"""An la output folder over a tiny CALVIN-shaped LeRobot source (the real Label Studio server is
tests/conftest.py's `label_studio`).

The la rows are written directly (ShardWriter + manifest), so these tests exercise
the review and not the segmenters: every episode has two segments, [0, T/2) and
[T/2, T); the second segment of episode 0 is a kinematic disagreement.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pytest

from datasets_cards import load_output_card, load_source_card
from datasets_cards.constants import SHARD_PATTERN, SHARDS_DIR
from datasets_cards.manifest import Manifest, ShardRecord
from datasets_cards.params.la import LaParams
from pipelines.formats import open_reader
from pipelines.io import ShardWriter
from pipelines.la.review.push import review_cameras, write_episode_clips, write_episode_keyframe_plot
from tests.pipelines.formats.lerobot_fixtures import write_calvin_v21

SOURCE = "calvin"
EXTERIOR, WRIST = "static", "gripper"


@dataclass(frozen=True)
class LaRun:
    out: Path  # output root OUT
    out_dir: Path  # OUT/la/calvin
    episode_ids: list[str]
    lengths: list[int]


def with_defaults(row: dict, schema: pa.Schema) -> dict:
    """Columns this factory does not care about: empty lists / nulls (keeps up with the card)."""
    return {f.name: row.get(f.name, [] if pa.types.is_list(f.type) else None) for f in schema}


def la_rows(episodes, location: str) -> list[dict]:
    schema = load_output_card("la").arrow_schema()
    rows = []
    for e, episode in enumerate(episodes):
        t = episode.num_frames
        for index, (start, end, subaction) in enumerate([(0, t // 2, "grasp"), (t // 2, t, "lift")]):
            agree = not (e == 0 and index == 1)
            rows.append(with_defaults({
                "episode_id": f"{episode.episode_id}#{index}", "source": SOURCE,
                "source_episode_id": episode.episode_id, "segment_index": index, "subaction": subaction,
                "instruction": f"{subaction} the object", "task": episode.instruction, "start": start, "end": end,
                "fps": episode.fps, "state": episode.arm_state[start:end].tolist(),
                "state_names": ["x", "y", "z", "roll", "pitch", "yaw"], "gripper": episode.gripper[start:end].tolist(),
                "actions": episode.actions[start:end].tolist(), "action_names": [f"a{i}" for i in range(7)],
                "segmenter": "kinematic", "kinematic_subaction": subaction if agree else "move", "agreement": agree,
                "verified": False, "quality": None, "confidence": None, "num_annotators": 0,
                "cameras": [EXTERIOR, WRIST], "source_location": location,
            }, schema))
    return rows


def write_la_run(root: Path) -> LaRun:
    """OUT/la/calvin/ with one shard of candidates and its manifest (as `make annotate` leaves it)."""
    location = str(write_calvin_v21(root / "calvin-source"))
    card = load_source_card(SOURCE)
    episodes = list(open_reader(card, location).read(0, 3))
    out = root / "out"
    out_dir = out / "la" / SOURCE
    shard = f"{SHARDS_DIR}/{SHARD_PATTERN.format(index=0)}"
    output = load_output_card("la")
    rows = la_rows(episodes, location)
    with ShardWriter(output, str(out_dir / shard)) as writer:
        writer.write_rows(rows)
    for episode in episodes:  # what each annotate unit does while the frames are in memory
        mine = [r for r in rows if r["source_episode_id"] == episode.episode_id]
        write_episode_clips(str(out_dir), episode, mine, review_cameras(card))
        write_episode_keyframe_plot(str(out_dir), episode, mine, episode.arm_state[:, :6], LaParams().keyframes)
    rows, size, sha = writer.result
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    manifest = Manifest(
        pipeline="la", output_card_version=output.version, source=SOURCE, source_location=location,
        config_hash="0123456789abcdef",
        config={"source": card.model_dump(mode="json"), "params": LaParams().model_dump(mode="json")},
        code_version="test", created=now, updated=now, complete=True, planned_units=1,
        shards=[ShardRecord(unit="0:3", path=shard, rows=rows, bytes=size, sha256=sha,
                            episodes=[e.episode_id for e in episodes], seconds=0.0)],
    )
    manifest.save(str(out_dir))
    return LaRun(out, out_dir, [e.episode_id for e in episodes], [e.num_frames for e in episodes])


@pytest.fixture
def la_run(tmp_path) -> LaRun:
    return write_la_run(tmp_path)
