"""The gaze montage: which frames get a tile, what their labels say, and one tile per flag of the run."""

import cv2
import numpy as np

from annotators.detection import Detections, StubDetector
from annotators.gaze import DETECTED, INTERPOLATED, LOW_SCORE, NO_BOX, REJECTED_JUMP
from datasets_cards import Episode, FrameSequence, load_source_card
from datasets_cards.codecs import decode_image
from pipelines.gaze.montage import (
    EXAMPLE,
    choose_tiles,
    flag_tiles,
    row_tile,
    tile_label,
)
from pipelines.gaze.pipeline import GazePipeline

T, H, W = 20, 64, 80
BOX = np.array([20, 20, 36, 36], np.float32)
DROID_ID = "gs://gresearch/robotics/droid/1.0.0/r2d2-data-full/ILIAD+j807b3f8+2023-04-12-18h-06m-14s/trajectory.h5"


def frames_episode(episode_id: str) -> Episode:
    frames = np.zeros((T, H, W, 3), np.uint8)
    frames[:, 20:36, 20:36] = (220, 30, 30)
    return Episode(episode_id=episode_id, source="bridge", instruction="put the red block in the bowl", fps=5.0,
                   frames={"image_0": FrameSequence.from_array(frames)}, arm_state=np.zeros((T, 6)),
                   gripper=np.zeros(T), actions=np.zeros((T, 7)))


def flagged_detector() -> StubDetector:
    """Frames 3-4 missing (interpolated), 8 an outlier (rejected), 12 low score, 15-19 missing (no_box)."""
    def answer(i: int, phrase: str) -> Detections:
        t = i % T
        if t in (3, 4) or t >= 15:
            return Detections.empty()
        box = np.array([60, 0, 78, 12], np.float32) if t == 8 else BOX
        return Detections(box[None], [0.2 if t == 12 else 0.9], [0])

    return StubDetector(answer)


def pipeline(**options) -> GazePipeline:
    return GazePipeline(load_source_card("bridge"), {"detector": "stub", "montage": 1, **options},
                        detector=flagged_detector())


def test_rows_of_the_planted_flags():
    rows = pipeline().annotate(frames_episode("ep0"))
    flags = {f for r in rows for f in r["flags"]}
    assert flags == {DETECTED, INTERPOLATED, REJECTED_JUMP, LOW_SCORE, NO_BOX}


def test_choose_tiles_gives_a_clean_example_and_one_distinct_frame_per_flag():
    rows = pipeline().annotate(frames_episode("ep0"))
    tiles = choose_tiles(rows, example=True, flags={INTERPOLATED, REJECTED_JUMP, LOW_SCORE, NO_BOX})
    reasons = [reason for reason, _ in tiles]
    assert reasons == [EXAMPLE, INTERPOLATED, REJECTED_JUMP, NO_BOX, LOW_SCORE]
    by_reason = dict(tiles)
    assert by_reason[EXAMPLE]["flags"] == [DETECTED] and by_reason[EXAMPLE]["frame_index"] == 9
    assert all(reason in row["flags"] for reason, row in tiles[1:])
    assert len({row["frame_index"] for _, row in tiles}) == len(tiles)  # no frame twice
    assert choose_tiles(rows, example=False, flags={NO_BOX}) == [(NO_BOX, by_reason[NO_BOX])]


def test_labels_are_whole_and_carry_episode_frame_score_and_flags():
    row = pipeline().annotate(frames_episode(DROID_ID))[12]
    label = " ".join(tile_label(row, LOW_SCORE))
    assert f"episode {DROID_ID} frame 12 camera image_0" in label
    assert "score 0.20" in label and "flags detected, low_score" in label and "'red block.' (object)" in label
    tile = row_tile(row, LOW_SCORE)  # the long id wraps onto more lines instead of being cut
    assert tile.shape[1] < 600 and tile.shape[0] > 192 + 3 * 16


def test_a_no_box_tile_has_a_placeholder_crop():
    row = pipeline().annotate(frames_episode("ep0"))[17]
    assert row["crop"] is None and "score none" in " ".join(tile_label(row, NO_BOX))
    assert row_tile(row, NO_BOX).shape[1] == round(W * 192 / H) + 8 + 192


def test_the_run_shows_one_tile_per_flag_from_its_lowest_episode(tmp_path):
    pipe = pipeline()
    out = str(tmp_path)
    staged = []
    for index in (2, 0, 1):  # units in any order: the lowest index with a flag must draw it
        staged.append(pipe.episode_artifacts(frames_episode(f"ep{index}"), pipe.annotate(frames_episode(f"ep{index}")),
                                             out, index))
    candidates: dict[str, list] = {}
    for stats in staged:
        for flag, found in stats.get("montage_flag_tiles", {}).items():
            candidates.setdefault(flag, []).extend(found)
    assert 1 not in {index for found in candidates.values() for index, _ in found}  # drawn after 0: skipped
    shown = flag_tiles(candidates)
    assert shown == [f"_staging/montage/tile-000000-{flag}.png" for flag in
                     (INTERPOLATED, REJECTED_JUMP, NO_BOX, LOW_SCORE)]
    assert [s.get("montage_tiles") for s in staged] == [None, ["_staging/montage/tile-000000-example.png"], None]
    tile = decode_image((tmp_path / shown[2]).read_bytes())
    assert tile.shape[0] > 192 and cv2.imencode(".png", tile)[0]


def test_no_montage_draws_nothing(tmp_path):
    pipe = pipeline(montage=0)
    assert pipe.episode_artifacts(frames_episode("ep0"), pipe.annotate(frames_episode("ep0")), str(tmp_path), 0) == {}
    assert not any(tmp_path.iterdir())
