import json
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.formats.lerobot.validate import validate_lerobot_v21
from tests.pipelines.formats.lerobot_fixtures import STATIC_KEY, write_calvin_v21

EP1_DATA = "data/chunk-000/episode_000001.parquet"
EP1_VIDEO = f"videos/chunk-000/{STATIC_KEY}/episode_000001.mp4"


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    return write_calvin_v21(tmp_path_factory.mktemp("good") / "ds")


def _edit_json(path, change):
    value = json.loads(path.read_text())
    change(value)
    path.write_text(json.dumps(value))


def _edit_lines(path, change):
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows = change(rows)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _drop_column(root, rel, column):
    table = pq.read_table(root / rel)
    pq.write_table(table.drop_columns([column]), root / rel)


def _narrow_column(root, rel, column):
    table = pq.read_table(root / rel)
    narrow = pa.array([row[:3] for row in table.column(column).to_pylist()], pa.list_(pa.float32()))
    pq.write_table(table.set_column(table.schema.get_field_index(column), column, narrow), root / rel)


def _drop_stats(rows, key):
    del rows[1]["stats"][key]
    return rows


# (name, how to break a copy of a good dataset, a substring of the expected violation)
BREAKAGES = [
    ("missing info.json", lambda r: (r / "meta/info.json").unlink(), "meta/info.json: missing"),
    ("wrong version", lambda r: _edit_json(r / "meta/info.json", lambda i: i.update(codebase_version="v2.0")),
     "codebase_version is 'v2.0'"),
    ("missing info key", lambda r: _edit_json(r / "meta/info.json", lambda i: i.pop("total_chunks")),
     "missing keys ['total_chunks']"),
    ("wrong total episodes", lambda r: _edit_json(r / "meta/info.json", lambda i: i.update(total_episodes=4)),
     "total_episodes is 4, files hold 3"),
    ("wrong total frames", lambda r: _edit_json(r / "meta/info.json", lambda i: i.update(total_frames=1)),
     "total_frames is 1, files hold 30"),
    ("video info incomplete",
     lambda r: _edit_json(r / "meta/info.json", lambda i: i["features"][STATIC_KEY]["info"].pop("video.codec")),
     "info lacks ['video.codec']"),
    ("missing episodes.jsonl", lambda r: (r / "meta/episodes.jsonl").unlink(), "meta/episodes.jsonl: missing"),
    ("episode length wrong", lambda r: _edit_lines(r / "meta/episodes.jsonl",
                                                   lambda rows: [{**e, "length": 9} for e in rows]),
     "10 rows, meta/episodes.jsonl says 9"),
    ("missing tasks.jsonl", lambda r: (r / "meta/tasks.jsonl").unlink(), "meta/tasks.jsonl: missing"),
    ("unknown task", lambda r: _edit_lines(r / "meta/tasks.jsonl", lambda rows: rows[:1]), "unknown tasks"),
    ("missing stats", lambda r: (r / "meta/episodes_stats.jsonl").unlink(), "episodes_stats.jsonl: missing"),
    ("stats missing a feature", lambda r: _edit_lines(r / "meta/episodes_stats.jsonl",
                                                      lambda rows: _drop_stats(rows, "action")),
     "episode 1 has no stats for 'action'"),
    ("missing parquet", lambda r: (r / EP1_DATA).unlink(), f"{EP1_DATA}: missing"),
    ("missing column", lambda r: _drop_column(r, EP1_DATA, "action"), "column 'action' missing"),
    ("wrong feature shape", lambda r: _narrow_column(r, EP1_DATA, "observation.state"),
     "column 'observation.state' has type list<element: float>, feature shape is [15]"),
    ("missing video", lambda r: (r / EP1_VIDEO).unlink(), f"{EP1_VIDEO}: missing"),
    ("video too short", lambda r: shutil.copy(r / EP1_VIDEO.replace("000001", "000000"), r / EP1_VIDEO),
     "8 frames, episode length is 10"),
]


def test_valid_dataset_has_no_violations(good):
    assert validate_lerobot_v21(good) == []


@pytest.mark.parametrize("name, breakage, message", BREAKAGES, ids=[b[0] for b in BREAKAGES])
def test_validator_reports_each_violation(good, tmp_path, name, breakage, message):
    root = shutil.copytree(good, tmp_path / "ds")
    breakage(root)
    problems = validate_lerobot_v21(root)
    assert any(message in p for p in problems), problems


def test_validator_can_skip_video_checks(good, tmp_path):
    root = shutil.copytree(good, tmp_path / "ds")
    (root / EP1_VIDEO).unlink()
    assert validate_lerobot_v21(root, check_videos=False) == []
