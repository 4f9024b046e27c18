"""The drill on bad frames (issue 12, part 1) and on the review retry command (part 10).

A frame after frame 0 that is corrupt, truncated, empty or of another size passes the reader (it
decodes frame 0 only) and la's kinematic segmenter (state only). The rule: a pipeline decodes every
frame it needs inside the unit and quarantines the episode whose frames do not all decode, the reason
naming camera and frame index; la needs the review cameras' frames for its clips and every camera's
for LA-V, gaze the frames it detects on. Nothing after the unit decodes a source frame: the LeRobot
export, the Label Studio push and the review's LA-V copy run with the corpus deleted.

The la case runs as a user would: `annotate droid --location ...` with a Label Studio that is down,
then the retry command the run printed, as printed, against a small fake Label Studio whose verifier
accepts every segment. The corpora: 6 episodes of 30 steps, episodes 1-4 each with one bad late frame.
"""

from __future__ import annotations

import itertools
import json
import re
import shlex
import shutil
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from datasets_cards import Episode, FrameDecodeError, FrameSequence
from datasets_cards.codecs import encode_jpeg
from datasets_cards.constants import QUARANTINE_FILE, REVIEW_DIR
from datasets_cards.manifest import Manifest
from pipelines.base import NamedFrames, checked_frames
from pipelines.cli import app
from pipelines.flows.annotate import annotate
from tests.pipelines.formats.rlds_fixtures import make_rlds_fixture

pytest.importorskip("tensorflow_datasets")

N_EPISODES, N_STEPS, PER_SHARD = 6, 30, 3
FRAME_FAULTS = {1: "corrupt_late_frame", 2: "truncated_late_frame", 3: "empty_late_frame", 4: "wrong_size_late_frame"}
GOOD = (0, 5)
LATE = N_STEPS - 1  # the faults spoil the last step of every camera
# What each fault's quarantine reason says after "bad frame: camera '<camera>' frame 29 of 30: ".
SAYS = {
    "corrupt_late_frame": r"undecodable frame \(18 bytes\)",
    "truncated_late_frame": r"undecodable frame \(\d+ bytes\)",
    "empty_late_frame": r"undecodable frame \(0 bytes\)",
    "wrong_size_late_frame": r"is 16×24×3, the camera's other frames are 32×48×3",
}
runner = CliRunner()


@pytest.fixture(scope="module")
def droid_corpus(tmp_path_factory) -> Path:
    return make_rlds_fixture(tmp_path_factory.mktemp("droid-frames"), "droid", N_EPISODES, N_STEPS, faults=FRAME_FAULTS)


def droid_id(index: int) -> str:
    return f"/synthetic/droid/success/episode_{index:06d}/trajectory.h5"


def quarantine(target: Path) -> dict[str, dict]:
    return {r["episode_id"]: r for r in pq.read_table(target / QUARANTINE_FILE).to_pylist()}


def shard_rows(target: Path, manifest: Manifest) -> list[dict]:
    return [r for s in manifest.current_shards for r in pq.read_table(target / s.path).to_pylist()]


def assert_quarantined_for_frames(target: Path, ids: dict[int, str], camera: str, stage: str) -> None:
    found = quarantine(target)
    assert set(found) == {ids[i] for i in FRAME_FAULTS}, found
    for index, fault in FRAME_FAULTS.items():
        record = found[ids[index]]
        assert record["stage"] == stage
        assert re.fullmatch(rf"bad frame: camera '{camera}' frame {LATE} of {N_STEPS}: {SAYS[fault]}.*",
                            record["reason"]), record["reason"]


# --- the rule itself: every bad frame named, camera and index ---------------------------------------------

def test_checked_frames_names_the_camera_and_every_bad_frame():
    good = [encode_jpeg(np.full((8, 12, 3), 50 * i, np.uint8)) for i in range(6)]
    frames = [good[0], b"", good[2], encode_jpeg(np.zeros((4, 6, 3), np.uint8)), good[4][:40], good[5]]
    episode = Episode("ep", "s", "pick", 10.0, {"cam": FrameSequence(frames)}, np.zeros((6, 3)), np.zeros(6),
                      np.zeros((6, 2)))
    with pytest.raises(FrameDecodeError) as err:
        checked_frames(episode, "cam")
    assert err.value.episode_id == "ep"
    assert err.value.reason == ("bad frame: camera 'cam' frame 1 of 6: undecodable frame (0 bytes): not a JPEG or PNG "
                                "image (also bad: frames 3, 4)")
    with pytest.raises(FrameDecodeError, match=r"^ep: bad frame: camera 'cam' frame 4 of 6: undecodable frame \(40 "):
        NamedFrames(episode, "cam")[4]  # what the VLM segmenter reads its few frames through
    whole = Episode("ep", "s", "pick", 10.0, {"cam": FrameSequence(good)}, np.zeros((6, 3)), np.zeros(6), np.zeros((6, 2)))
    assert checked_frames(whole, "cam").shape == (6, 8, 12, 3)


# --- la: review clips and LA-V need the frames; the retry command works as printed --------------------------

class FakeLabelStudio:
    """The few Label Studio endpoints the push and the review call; one verifier gives every task quality 3."""

    def __init__(self) -> None:
        self.projects: list[dict] = []
        self.tasks: dict[int, list[dict]] = {}
        self.storages: list[dict] = []
        ids = itertools.count(1)
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _reply(self, body: object, status: int = 200) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _body(self) -> object:
                return json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"null")

            def do_GET(self) -> None:
                url = urlparse(self.path)
                query = parse_qs(url.query)
                if url.path == "/api/projects":
                    self._reply({"results": fake.projects, "next": None})
                elif url.path == "/api/storages/localfiles":
                    self._reply([s for s in fake.storages if str(s["project"]) == query["project"][0]])
                elif url.path == "/api/users":
                    self._reply([{"id": 1, "email": "verifier@example.org"}])
                elif url.path.endswith("/export"):
                    self._reply(fake.tasks.get(int(url.path.split("/")[3]), []))
                else:
                    self._reply({"detail": f"no route {url.path}"}, 404)

            def do_POST(self) -> None:
                url, body = urlparse(self.path), self._body()
                if url.path == "/api/projects":
                    project = {"id": next(ids), **body}
                    fake.projects.append(project)
                    self._reply(project, 201)
                elif url.path == "/api/storages/localfiles":
                    fake.storages.append({"id": next(ids), **body})
                    self._reply(fake.storages[-1], 201)
                elif url.path.endswith("/import"):
                    accept = [{"from_name": "quality", "to_name": "x", "type": "choices", "value": {"choices": ["3"]}},
                              {"from_name": "confidence", "to_name": "x", "type": "choices", "value": {"choices": ["2"]}}]
                    tasks = fake.tasks.setdefault(int(url.path.split("/")[3]), [])
                    tasks += [{"id": next(ids), "data": t["data"], "annotations": [
                        {"id": next(ids), "completed_by": 1, "result": accept, "was_cancelled": False,
                         "updated_at": "2025-01-01T00:00:00Z"}]} for t in body]
                    self._reply({"task_count": len(body)}, 201)
                else:
                    self._reply({"detail": f"no route {url.path}"}, 404)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FakeLabelStudio:
        self._thread.start()
        return self

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def labelstudio_down(monkeypatch) -> Iterator[None]:
    monkeypatch.setenv("LABEL_STUDIO_URL", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "drill-token")
    monkeypatch.delenv("LABEL_STUDIO_USER_TOKEN", raising=False)
    monkeypatch.delenv("LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT", raising=False)
    yield


def test_la_quarantines_episodes_whose_clip_frames_are_bad_and_the_printed_review_command_works(
        droid_corpus, tmp_path, monkeypatch, labelstudio_down):
    corpus = tmp_path / "droid" / "1.0.1"  # a copy: it is deleted before the review
    shutil.copytree(droid_corpus, corpus)
    monkeypatch.chdir(tmp_path)  # OUT given relative, as on a workstation
    command = ["annotate", "droid", "--location", str(corpus), "--out", "outputs", "--episodes-per-shard",
               str(PER_SHARD), "-o", "lav=true", "-o", "plots=0", "--retries", "0"]
    result = runner.invoke(app, command)
    assert result.exit_code == 0, result.output
    assert re.search(rf", {len(FRAME_FAULTS)} quarantined, (\d+ min )?\d+ s → outputs/la/droid/card\.md$",
                     result.output.strip().splitlines()[-1])
    target = tmp_path / "outputs" / "la" / "droid"
    manifest = Manifest.load(str(target))
    assert manifest.complete and manifest.quarantined == len(FRAME_FAULTS)
    ids = {i: droid_id(i) for i in range(N_EPISODES)}
    assert_quarantined_for_frames(target, ids, "exterior_1_left", "artifacts")
    rows = shard_rows(target, manifest)
    assert {r["source_episode_id"] for r in rows} == {ids[i] for i in GOOD}
    media = sorted(p.name for p in (target / REVIEW_DIR / "media").iterdir())  # only the kept episodes' media
    clips = [m for m in media if m.endswith(".mp4")]
    assert len(clips) == 2 * len(rows) and len(media) == len(clips) + len(GOOD)  # + one keyframe plot an episode
    assert all(m.startswith(("_synthetic_droid_success_episode_000000", "_synthetic_droid_success_episode_000005"))
               for m in media)
    assert manifest.stats["lerobot"]["lav_episodes"] == len(rows) and manifest.stats["lerobot"]["lav_missing"] == 0
    printed = re.search(r"run `([^`]+)`", manifest.stats["review"])
    assert "Label Studio push failed" in manifest.stats["review"] and printed, manifest.stats["review"]
    retry = printed.group(1)
    assert retry == f"python -m pipelines review droid --out {tmp_path / 'outputs'} --push"  # runs from anywhere

    rerun = runner.invoke(app, command)  # the output finishes again, the same
    assert rerun.exit_code == 0, rerun.output
    again = Manifest.load(str(target))
    assert again.complete and again.quarantined == len(FRAME_FAULTS) and again.rows == manifest.rows

    shutil.rmtree(tmp_path / "droid")  # nothing after the units reads the source
    with FakeLabelStudio() as labelstudio:
        monkeypatch.setenv("LABEL_STUDIO_URL", labelstudio.url)
        argv = shlex.split(retry)
        assert argv[:3] == ["python", "-m", "pipelines"]
        reviewed = runner.invoke(app, argv[3:])  # the command as printed, from the same folder
        assert reviewed.exit_code == 0, reviewed.output
        assert sum(len(t) for t in labelstudio.tasks.values()) == len(rows)
    verified = Manifest.load(str(target))
    assert verified.generation == 1 and verified.rows == len(rows)  # every segment accepted
    assert verified.stats["verification"]["kept"] == len(rows)
    assert verified.stats["lerobot"]["lav_episodes"] == len(rows)  # LA-V copied from the staged clips
    assert (target / "lerobot_v" / "meta" / "info.json").exists()


def test_la_without_clips_decodes_no_frame_and_keeps_every_episode(droid_corpus, tmp_path):
    card = tmp_path / "my-droid.yaml"
    card.write_text(f"extends: droid\nname: my-droid\ndescription: droid-like\nlocation: {droid_corpus}\n")
    manifest = annotate(source=str(card), pipeline="la", out=str(tmp_path / "out"), episodes_per_shard=PER_SHARD,
                        options={"plots": 0, "review": False}, retries=0)
    assert manifest.complete and manifest.quarantined == 0  # the kinematic segmenter reads state only
    assert len({e for s in manifest.shards for e in s.episodes}) == N_EPISODES


# --- gaze: the frames it detects on ------------------------------------------------------------------------

def test_gaze_quarantines_the_episode_naming_camera_and_frame_and_reruns_finish(tmp_path):
    corpus = make_rlds_fixture(tmp_path / "data", "bridge", N_EPISODES, N_STEPS, faults=FRAME_FAULTS)
    card = tmp_path / "my-bridge.yaml"
    card.write_text(f"extends: bridge\nname: my-bridge\ndescription: bridge-like\nlocation: {corpus}\n")
    args = {"source": str(card), "pipeline": "gaze", "out": str(tmp_path / "out"), "episodes_per_shard": PER_SHARD,
            "options": {"detector": "stub", "montage": 1}, "retries": 0}
    manifest = annotate(**args)
    target = tmp_path / "out" / "gaze" / "my-bridge"
    assert manifest.complete and manifest.quarantined == len(FRAME_FAULTS)
    ids = {i: f"/synthetic/bridge/raw/folder{i // 2}/out.npy#{i % 2}" for i in range(N_EPISODES)}
    assert_quarantined_for_frames(target, ids, "image_0", "annotate")
    rows = shard_rows(target, manifest)
    assert len(rows) == len(GOOD) * N_STEPS and {r["episode_id"] for r in rows} == {ids[i] for i in GOOD}
    again = annotate(**args)
    assert again.complete and again.rows == manifest.rows and again.quarantined == len(FRAME_FAULTS)
