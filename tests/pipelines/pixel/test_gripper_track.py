"""The gripper tracking pass: one stream over every episode's first-close frame, with a tiny random-weight SAM 2.

A pass killed in the middle resumes from its checkpoint and ends with exactly the rows of an uninterrupted
pass (the tracker's bounded state is restored, not rebuilt); a track that is lost is re-seeded.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

pytest.importorskip("torch")

from annotators.segmentation import SegmenterConfig
from annotators.segmentation.video import StreamingTracker
from datasets_cards import load_source_card
from datasets_cards.codecs import encode_jpeg
from datasets_cards.params import with_overrides
from pipelines.pixel import gripper_track
from pipelines.pixel.first_close import FIRST_CLOSE_SCHEMA
from pipelines.pixel.gripper_track import CHECKPOINT_FILE, TRACK_FILE, GripperTrackPass
from tests.pipelines.pixel.pixel_episodes import GRIPPER_BOX, detector

FRAMES = 11


def parts(folder) -> list[str]:
    """Two stage-1 parts of first-close frames: a dark square that drifts, and one episode without a frame."""
    rng = np.random.default_rng(1)
    paths = []
    for index, episodes in enumerate((range(6), range(6, FRAMES))):
        rows = []
        for e in episodes:
            image = (120 + rng.integers(-20, 20, (64, 80, 3))).astype(np.uint8)
            image[10 + e % 3:30 + e % 3, 30 + e:50 + e] = 30
            rows.append({"episode_id": f"ep{e}", "first_close_frame": 3, "image": encode_jpeg(image),
                         "ee_xyz": [0.1 * e, 0.0, 0.3], "reason": None})
        rows.append({"episode_id": f"open{index}", "first_close_frame": None, "image": None, "ee_xyz": None,
                     "reason": "no_close: never"})
        path = folder / f"unit-{index:05d}.parquet"
        pq.write_table(pa.Table.from_pylist(rows, schema=FIRST_CLOSE_SCHEMA), path)
        paths.append(str(path))
    return paths


def track_pass(sam_path, **overrides) -> GripperTrackPass:
    params = with_overrides(load_source_card("fractal").params.pixel,
                            {"track_checkpoint_every": 3, "projection_min_episodes": 100, **overrides})
    return GripperTrackPass(StreamingTracker(SegmenterConfig(model=str(sam_path), device="cpu")), detector(), params)


def test_a_killed_pass_resumes_from_its_checkpoint_to_the_same_rows(tmp_path, tiny_sam2_path, monkeypatch):
    folder = tmp_path / "parts"
    folder.mkdir()
    inputs = parts(folder)
    whole = track_pass(tiny_sam2_path).run(str(tmp_path / "whole"), inputs)
    expected = pq.read_table(tmp_path / "whole" / TRACK_FILE)
    assert whole["frames"] == expected.num_rows == FRAMES  # one row per first-close frame, none for the others

    stream = gripper_track.stream_first_close

    def killed_after_seven(paths):
        for i, frame in enumerate(stream(paths)):
            if i == 7:
                raise KeyboardInterrupt("killed")
            yield frame

    monkeypatch.setattr(gripper_track, "stream_first_close", killed_after_seven)
    with pytest.raises(KeyboardInterrupt):
        track_pass(tiny_sam2_path).run(str(tmp_path / "resumed"), inputs)
    assert (tmp_path / "resumed" / CHECKPOINT_FILE).exists() and not (tmp_path / "resumed" / TRACK_FILE).exists()
    monkeypatch.setattr(gripper_track, "stream_first_close", stream)
    resumed = track_pass(tiny_sam2_path).run(str(tmp_path / "resumed"), inputs)  # a new process: a new tracker
    assert resumed == whole
    assert pq.read_table(tmp_path / "resumed" / TRACK_FILE).equals(expected)


def test_a_lost_track_is_reseeded_by_the_detector(tmp_path, tiny_sam2_path):
    folder = tmp_path / "parts"
    folder.mkdir()
    # An object-presence threshold no mask reaches: every frame after the first is lost, and re-seeded.
    summary = track_pass(tiny_sam2_path, reseed_min_score=1.0).run(str(tmp_path / "out"), parts(folder))
    assert summary["seeded_by_detector"] == FRAMES and summary["reseeds"] == FRAMES - 1
    rows = pq.read_table(tmp_path / "out" / TRACK_FILE).to_pylist()
    assert rows[0]["flags"] == [] and all("gripper_reseeded" in r["flags"] for r in rows[1:])
    x0, y0, x1, y1 = GRIPPER_BOX
    assert all(r["proposal_box"] is not None for r in rows if r["gripper_mask"] is not None)
    assert x1 - x0 > 0 and y1 - y0 > 0
