"""The gaze pipeline on in-memory episodes with a stub detector: rows, flags, crops, phases, errors."""

import cv2
import numpy as np
import pyarrow as pa
import pytest

from annotators.detection import Detections, StubDetector
from annotators.gaze import DETECTED, INTERPOLATED, NO_BOX, REJECTED_JUMP
from datasets_cards import Episode, EpisodeError, FrameSequence, load_source_card
from datasets_cards.params import with_overrides
from pipelines.gaze.pipeline import GazePipeline

T, H, W = 12, 64, 80
OBJECT_BOX = np.array([20, 20, 36, 36], np.float32)
DESTINATION_BOX = np.array([50, 30, 70, 50], np.float32)


def jpeg(image: np.ndarray) -> bytes:
    return cv2.imencode(".jpg", image[..., ::-1])[1].tobytes()


def episode(instruction="put the red block in the bowl", gripper=None, encoded=True, camera="image_0") -> Episode:
    frames = np.zeros((T, H, W, 3), np.uint8)
    frames[:, 20:36, 20:36] = (220, 30, 30)
    seq = FrameSequence([jpeg(f) for f in frames]) if encoded else FrameSequence.from_array(frames)
    return Episode(
        episode_id="ep0", source="bridge", instruction=instruction, fps=5.0, frames={camera: seq},
        arm_state=np.arange(T * 6, dtype=np.float32).reshape(T, 6),
        gripper=np.zeros(T) if gripper is None else gripper, actions=np.ones((T, 7)),
    )


def stub(missing=(), outliers=(), destination_box=DESTINATION_BOX) -> StubDetector:
    def answer(i, phrase):
        if i in missing:
            return Detections.empty()
        box = np.array([60, 0, 78, 12], np.float32) if i in outliers else (
            destination_box if phrase == "bowl." else OBJECT_BOX)
        return Detections(box[None], [0.9], [0])

    return StubDetector(answer)


def pipeline(detector, **options) -> GazePipeline:
    return GazePipeline(load_source_card("bridge"), {"detector": "stub", "montage": 0, **options}, detector=detector)


def test_rows_follow_the_output_card_schema():
    pipe = pipeline(stub())
    rows = pipe.annotate(episode())
    assert len(rows) == T and [r["frame_index"] for r in rows] == list(range(T))
    table = pa.Table.from_pylist(rows, schema=pipe.output.arrow_schema())  # raises on a schema mismatch
    assert table.num_rows == T
    first = rows[0]
    assert first["target_phrase"] == "red block." and first["camera"] == "image_0"
    assert first["box"] == OBJECT_BOX.tolist() and first["flags"] == [DETECTED]
    assert first["state"] == list(range(6)) and first["action"] == [1.0] * 7 and first["gripper"] == 0.0


def test_source_jpeg_is_kept_and_the_crop_shows_the_object():
    ep = episode()
    row = pipeline(stub(), margin=0.0, min_crop=1).annotate(ep)[3]
    assert row["image"] == ep.frames["image_0"].encoded[3]
    crop = cv2.imdecode(np.frombuffer(row["crop"], np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
    assert crop.shape[:2] == (16, 16) and crop[..., 0].mean() > 150 and row["crop_box"] == [20, 20, 36, 36]


def test_frames_in_memory_are_encoded():
    row = pipeline(stub()).annotate(episode(encoded=False))[0]
    assert row["image"][:2] == b"\xff\xd8"


def test_outlier_rejected_short_gap_interpolated_long_gap_flagged():
    detector = stub(missing={1, 2, 7, 8, 9, 10, 11}, outliers={4})
    rows = pipeline(detector).annotate(episode())
    flags = [r["flags"] for r in rows]
    assert flags[1] == flags[2] == [INTERPOLATED] and rows[1]["score"] is None
    assert flags[4] == [REJECTED_JUMP, INTERPOLATED] and rows[4]["box"] == OBJECT_BOX.tolist()
    assert all(f == [NO_BOX] for f in flags[7:]) and all(r["crop"] is None and r["box"] is None for r in rows[7:])
    stats = pipeline(stub()).unit_stats(rows)
    assert stats["frames"] == T and stats["with_box"] == 7 and stats["episode_coverage"] == [round(7 / 12, 4)]


def test_phase_aware_targets_the_destination_while_the_gripper_holds():
    # A wide object stops the fingers at 0.4: below any fixed "closed" level, but a close that holds.
    gripper = np.array([0, 0, 0, 0, 0.4, 0.4, 0.4, 0.4, 0, 0, 0, 0], np.float32)
    pipe = pipeline(stub(), phase_aware=True)
    rows = pipe.annotate(episode(gripper=gripper))
    assert [r["target_phrase"] for r in rows] == ["red block."] * 4 + ["bowl."] * 4 + ["red block."] * 4
    assert [r["phase"] for r in rows] == ["object"] * 4 + ["destination"] * 4 + ["object"] * 4
    # the switch is not a jump: consistency runs within each phase
    assert all(r["flags"] == [DETECTED] for r in rows) and rows[5]["box"] == DESTINATION_BOX.tolist()
    assert pipe.unit_stats(rows)["destination_frames"] == 4


def test_phase_aware_keeps_the_object_through_a_missed_grasp():
    # The fingers meet (fully closed, 1.0): nothing is held, the object is still the target.
    gripper = np.array([0, 0, 1, 1, 1, 0, 0, 0, 0.4, 0.4, 0.4, 0], np.float32)
    rows = pipeline(stub(), phase_aware=True).annotate(episode(gripper=gripper))
    assert [r["phase"] for r in rows] == ["object"] * 8 + ["destination"] * 3 + ["object"]


def test_a_commanded_gripper_holds_whenever_it_is_closed():
    # LIBERO's card logs the commanded gripper (+1 = close): fully closed is no sign of a missed grasp.
    gripper = np.array([0, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0, 0], np.float32)
    pipe = GazePipeline(load_source_card("libero"), {"detector": "stub", "montage": 0, "phase_aware": True},
                        detector=stub())
    rows = pipe.annotate(episode(gripper=gripper, camera="agentview"))
    assert [r["phase"] for r in rows] == ["object"] * 3 + ["destination"] * 5 + ["object"] * 4


def test_phase_aware_is_off_by_default():
    gripper = np.ones(T, np.float32)
    assert {r["target_phrase"] for r in pipeline(stub()).annotate(episode(gripper=gripper))} == {"red block."}


def test_square_option_gives_square_crops():
    rows = pipeline(stub(), square=True, min_crop=8, margin=0.0).annotate(episode())
    crop = cv2.imdecode(np.frombuffer(rows[0]["crop"], np.uint8), cv2.IMREAD_COLOR)
    assert crop.shape[0] == crop.shape[1]


def test_instruction_without_target_is_an_episode_error():
    with pytest.raises(EpisodeError, match="no target phrase"):
        pipeline(stub()).annotate(episode(instruction="..."))


def test_unknown_camera_is_an_episode_error():
    with pytest.raises(EpisodeError, match="wrist"):
        pipeline(stub(), cameras=["wrist"]).annotate(episode())


@pytest.mark.parametrize("options, field, value", [({}, "margin", 0.15), ({"margin": 0.3}, "margin", 0.3),
                                                   ({"phrase_extractor": "llm"}, "phrase_extractor", "llm")])
def test_options_override_the_cards_gaze_params(options, field, value):
    params = with_overrides(load_source_card("bridge").params.gaze, options)
    assert getattr(params, field) == value


def test_invalid_option_value_is_refused():
    with pytest.raises(ValueError, match="box_threshold"):
        with_overrides(load_source_card("bridge").params.gaze, {"box_threshold": 3})
