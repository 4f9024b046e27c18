"""Push without a server: the units' clips, importable task JSON, review order, media URLs."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import av
import numpy as np
import pytest

from datasets_cards import Episode, FrameSequence
from datasets_cards.constants import REVIEW_DIR
from datasets_cards.params.la import LaParams
from pipelines.la.review import labeling
from pipelines.la.review.pull import source_frames
from pipelines.la.review.push import (
    LABEL_CONFIG_FILE,
    LOCAL_FILES_URL,
    export_tasks_json,
    media_url,
    push_or_export,
    write_episode_clips,
    write_episode_keyframe_plot,
)
from pipelines.labelstudio.clips import CONTEXT_COLOR
from tests.pipelines.la.review.conftest import EXTERIOR, WRIST


def decoded(path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def outlined(frame: np.ndarray) -> bool:
    """The frame's top row is the context outline's orange (H.264 moves colours a little)."""
    return bool(np.abs(frame[0].astype(int).mean(axis=0) - CONTEXT_COLOR).max() < 60)


@pytest.mark.parametrize(
    "path, root, expected",
    [
        ("/out/la/x/review/media/a#0.mp4", "/out", LOCAL_FILES_URL + "la/x/review/media/a%230.mp4"),
        ("/out/la/x/a b.mp4", "/out/la", LOCAL_FILES_URL + "x/a%20b.mp4"),
    ],
)
def test_media_url_is_relative_to_the_document_root_and_quoted(path, root, expected):
    assert media_url(path, root) == expected


def test_media_url_outside_the_document_root_is_an_error():
    with pytest.raises(ValueError, match="document root"):
        media_url("/elsewhere/clip.mp4", "/out")


def test_export_writes_one_task_per_segment_with_clips_of_its_frames_and_a_second_of_context(la_run):
    result = export_tasks_json(str(la_run.out_dir))
    tasks = json.loads(open(result.tasks_file).read())
    review = la_run.out_dir / REVIEW_DIR
    assert result.tasks == len(tasks) == 2 * len(la_run.episode_ids) and not result.unreadable
    assert len({t["data"]["key"] for t in tasks}) == len(tasks)
    lengths = dict(zip(la_run.episode_ids, la_run.lengths))
    for t in tasks:
        data = t["data"]
        context = round(data["fps"])  # one second
        first, end = max(0, data["start"] - context), min(lengths[data["source_episode_id"]], data["end"] + context)
        assert data["clip_start"] == first
        for camera in (EXTERIOR, WRIST):
            url = data[labeling.video_key(camera)]
            clip = decoded(la_run.out / url.removeprefix(LOCAL_FILES_URL))  # default document root: the output root
            assert len(clip) == end - first
            inside = np.arange(first, end)
            assert [outlined(f) for f in clip] == list((inside < data["start"]) | (inside >= data["end"]))
        plot = la_run.out / data[labeling.KEYFRAME_PLOT].removeprefix(LOCAL_FILES_URL)
        assert plot.read_bytes().startswith(b"\x89PNG")
        assert data["segment_label"] == f"#{data['segment_index']} {data['subaction']}"
    root = ET.parse(review / LABEL_CONFIG_FILE).getroot()
    assert [v.get("name") for v in root.findall(".//Video")] == [EXTERIOR, WRIST]


def test_disagreements_come_first_and_proposals_are_predictions(la_run):
    tasks = json.loads(open(export_tasks_json(str(la_run.out_dir)).tasks_file).read())
    assert [t["data"]["agreement"] for t in tasks] == [False] + [True] * (len(tasks) - 1)
    assert tasks[0]["data"]["priority"] == 1 and tasks[0]["data"]["key"] == f"{la_run.episode_ids[0]}#1"
    first = tasks[0]
    values = {r["from_name"]: r["value"] for r in first["predictions"][0]["result"]}
    assert values == {
        labeling.SUBACTION: {"choices": [first["data"]["subaction"]]},
        labeling.INSTRUCTION: {"text": [first["data"]["instruction"]]},
        # in the player's frames, counted from 1 at the clip's first (context) frame
        labeling.START: {"number": first["data"]["start"] - first["data"]["clip_start"] + 1},
        labeling.END: {"number": first["data"]["end"] - first["data"]["clip_start"]},
    }
    assert source_frames({labeling.START: values[labeling.START]["number"], labeling.END: values[labeling.END]["number"]},
                         first["data"]["clip_start"]) == {labeling.START: first["data"]["start"],
                                                          labeling.END: first["data"]["end"]}


def test_exports_read_no_source_and_a_retried_unit_keeps_its_clips(la_run, tmp_path):
    import shutil

    shutil.rmtree(la_run.out.parent / "calvin-source")  # the review needs only the output folder
    export_tasks_json(str(la_run.out_dir))
    media = la_run.out_dir / REVIEW_DIR / "media"
    stamps = {p.name: p.stat().st_mtime_ns for p in media.iterdir()}
    export_tasks_json(str(la_run.out_dir))
    episode = Episode(la_run.episode_ids[0], "calvin", "x", 30.0, {EXTERIOR: FrameSequence([b"never decoded"])},
                      [[0.0]], [0.0], [[0.0]])
    assert write_episode_clips(str(la_run.out_dir), episode, [{"source_episode_id": la_run.episode_ids[0],
                               "segment_index": 0, "start": 0, "end": 1}], [EXTERIOR]) == 0
    assert write_episode_keyframe_plot(str(la_run.out_dir), episode, [], np.zeros((1, 6)), LaParams().keyframes) == 0
    assert {p.name: p.stat().st_mtime_ns for p in media.iterdir()} == stamps


def test_an_episode_without_clips_is_reported_not_dropped_silently(la_run):
    for clip in (la_run.out_dir / REVIEW_DIR / "media").glob(f"{la_run.episode_ids[2]}*"):
        clip.unlink()
    result = export_tasks_json(str(la_run.out_dir))
    assert result.tasks == 4 and len(result.unreadable) == 1
    assert result.unreadable[0].startswith(f"{la_run.episode_ids[2]}: no review clips")


def test_without_a_server_push_or_export_writes_task_json(la_run, monkeypatch):
    for var in ("LABEL_STUDIO_URL", "LABEL_STUDIO_API_KEY", "LABEL_STUDIO_USER_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    result = push_or_export(str(la_run.out_dir))
    assert result.tasks_file and result.tasks == 6 and "make labelstudio" in result.summary()


def test_remote_output_folders_are_refused_with_a_reason():
    with pytest.raises(ValueError, match="local output folder"):
        export_tasks_json("s3://bucket/out/la/droid")


def test_a_push_that_fails_still_writes_the_tasks_and_says_how_to_retry(la_run, monkeypatch):
    monkeypatch.setenv("LABEL_STUDIO_URL", "http://127.0.0.1:9")  # nothing listens on the discard port
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "token")
    result = push_or_export(str(la_run.out_dir))
    assert result.push_error and "not reachable" in result.push_error
    assert (la_run.out_dir / "review" / "tasks.json").exists() and result.tasks == 6
    assert "push failed" in result.summary()
    assert f"`python -m pipelines review calvin --out {la_run.out} --push`" in result.summary()  # its run's OUT
