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

from annotators.detection import Detections, StubDetector
from annotators.segmentation import MaskResult, SegmenterConfig
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


class LosingTracker:
    """Seeds fill their box; every step is lost (an empty mask), so every frame is seeded again."""

    def seed(self, frame, box=None, mask=None):
        from annotators.segmentation.base import box_mask

        return MaskResult(box_mask(frame.shape[:2], box), 1.0)

    def step(self, frame):
        return MaskResult(np.zeros(frame.shape[:2], bool), 0.0)

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass


def camera_parts(folder, positions, outlier: int) -> list[str]:
    """First-close frames of a gripper whose image position is the pinhole projection of its xyz (one outlier)."""
    rows = []
    for e, (xyz, (u, v)) in enumerate(positions):
        image = np.full((120, 160, 3), 128, np.uint8)
        rows.append({"episode_id": f"ep{e}", "first_close_frame": 2, "image": encode_jpeg(image),
                     "ee_xyz": list(xyz), "reason": None, "_uv": (u, v)})
    path = folder / "unit-00000.parquet"
    table = [{k: r[k] for k in FIRST_CLOSE_SCHEMA.names} for r in rows]
    pq.write_table(pa.Table.from_pylist(table, schema=FIRST_CLOSE_SCHEMA), path)
    return [str(path)]


def test_the_end_effector_projection_reseeds_where_the_detector_fails_and_flags_masks_off_it(tmp_path):
    rng = np.random.default_rng(0)
    K = np.array([[150.0, 0, 80], [0, 150, 60], [0, 0, 1]])
    xyz = rng.uniform([-0.3, -0.2, 1.0], [0.3, 0.2, 2.0], (24, 3))
    uv = (xyz @ K.T)[:, :2] / xyz[:, 2:]
    outlier, blind_from = 5, 16  # the detector puts episode 5's gripper elsewhere, and is blind from episode 16 on
    frames_seen = iter(range(10**6))

    def answer(_i, phrase):
        e = next(frames_seen)
        if e >= blind_from:
            return Detections.empty()
        u, v = (20.0, 100.0) if e == outlier else uv[e]
        return Detections(np.array([[u - 6, v - 6, u + 6, v + 6]], np.float32), [0.9], [0])

    folder = tmp_path / "parts"
    folder.mkdir()
    params = with_overrides(load_source_card("fractal").params.pixel,
                            {"track_checkpoint_every": 4, "projection_min_episodes": 12})
    summary = GripperTrackPass(LosingTracker(), StubDetector(answer), params).run(
        str(tmp_path / "out"), camera_parts(folder, list(zip(xyz, uv)), outlier))
    rows = pq.read_table(tmp_path / "out" / TRACK_FILE).to_pylist()
    assert summary["seeded_by_detector"] == blind_from and summary["seeded_by_projection"] == 24 - blind_from
    for e in range(blind_from, 24):  # seeded around the projected end effector, where the gripper is
        assert "gripper_from_projection" in rows[e]["flags"]
        x0, y0, x1, y1 = rows[e]["proposal_box"]
        assert x0 <= uv[e][0] <= x1 and y0 <= uv[e][1] <= y1
    assert [e for e, r in enumerate(rows) if "gripper_off_projection" in r["flags"]] == [outlier]
    assert summary["projection"]["off_projection"] == 1
