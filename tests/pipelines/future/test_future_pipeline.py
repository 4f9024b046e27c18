"""The future pipeline without the flow: cross-episode batches, stride and views, layouts, a frame that fails.

A stub encoder (each token is the mean colour of its cell) makes every row's feature checkable
against the frame it claims to come from.
"""

from __future__ import annotations

import numpy as np
import pytest

from annotators.vision import VisionEncoderConfig, make_vision_encoder
from annotators.vision.views import image_to_view, view_box
from datasets_cards import (
    CardError,
    Episode,
    EpisodeError,
    FrameSequence,
    decode_image,
    encode_jpeg,
    load_source_card,
)
from pipelines.future.pipeline import FuturePipeline, read_ahead, stored_frames

SIZE = (32, 48)


def raw_frame(episode: int, t: int) -> np.ndarray:
    """A frame whose colour says which episode and step it is."""
    image = np.zeros((40, 60, 3), np.uint8)
    image[..., 0], image[..., 1], image[..., 2] = 20 * episode, 5 * t, 128
    return image


def frame(episode: int, t: int) -> np.ndarray:
    """The frame as the pipeline decodes it (JPEG, quality 100)."""
    return decode_image(encode_jpeg(raw_frame(episode, t), 100))


def episode(index: int, length: int, bad_frame: int | None = None, encoded: bool = True) -> Episode:
    frames = [raw_frame(index, t) for t in range(length)]
    if encoded:
        data = [b"not a jpeg" if t == bad_frame else encode_jpeg(f, 100) for t, f in enumerate(frames)]
        cameras = {"exterior_1_left": FrameSequence(data)}
    else:
        cameras = {"exterior_1_left": FrameSequence.from_array(np.stack(frames))}
    state = np.column_stack([np.arange(length) * 0.01, np.zeros((length, 5))]).astype(np.float32)
    return Episode(f"ep{index}", "droid", "pick the block", 15.0, cameras, state,
                   np.linspace(0, 1, length, dtype=np.float32), np.ones((length, 7), np.float32))


def pipeline(**options) -> FuturePipeline:
    card = load_source_card("droid")
    options = {"encoder": "stub", "batch_size": 5, "view": {"size": list(SIZE)}, "decode_workers": 2, **options}
    stub = make_vision_encoder("stub", VisionEncoderConfig(image_size=SIZE, pool=options.get("pool", 1)))
    return FuturePipeline(card, options, encoder=stub)


def expected_feature(pipe: FuturePipeline, image: np.ndarray) -> np.ndarray:
    v = pipe.params.view
    view = image_to_view(image, view_box(*image.shape[:2], tuple(v.rows), tuple(v.cols), v.crop), SIZE)
    return pipe.encoder.encode(view[None]).tokens[0].reshape(-1)


@pytest.mark.parametrize(("length", "stride", "frames"), [
    (1, 1, [0]), (5, 1, [0, 1, 2, 3, 4]), (7, 3, [0, 3, 6]), (8, 3, [0, 3, 6, 7]), (2, 5, [0, 1]),
])
def test_stored_frames_are_every_stride_th_and_the_last(length, stride, frames):
    assert stored_frames(length, stride) == frames


def test_batches_cross_episodes_and_every_row_holds_its_own_frames_tokens():
    pipe = pipeline()
    episodes = [episode(0, 3), episode(1, 7), episode(2, 1), episode(3, 4)]  # 15 frames, batches of 5
    results = list(pipe.annotate_many(episodes))
    assert [e.episode_id for e, _ in results] == ["ep0", "ep1", "ep2", "ep3"]
    assert pipe.encoder.calls == 3
    for (ep, rows), index in zip(results, range(4), strict=True):
        assert [r["frame_index"] for r in rows] == list(range(ep.num_frames))
        for row in rows:
            assert row["num_frames"] == ep.num_frames and row["view"] == 0 and row["camera"] == "exterior_1_left"
            np.testing.assert_array_equal(row["feature"], expected_feature(pipe, frame(index, row["frame_index"])))


def test_a_frame_that_does_not_decode_quarantines_its_episode_only():
    pipe = pipeline()
    episodes = [episode(0, 4), episode(1, 6, bad_frame=3), episode(2, 4)]
    results = list(pipe.annotate_many(episodes))
    assert [e.episode_id for e, _ in results] == ["ep0", "ep1", "ep2"]
    error = results[1][1]
    assert isinstance(error, EpisodeError)
    assert error.reason.startswith("bad frame: camera 'exterior_1_left' frame 3 of 6: undecodable frame")
    for index in (0, 2):
        rows = results[index][1]
        assert len(rows) == 4
        np.testing.assert_array_equal(rows[-1]["feature"], expected_feature(pipe, frame(index, 3)))


def test_video_like_frames_are_loaded_once_and_cut_the_same_way():
    pipe = pipeline()
    [(_, rows)] = list(pipe.annotate_many([episode(5, 6, encoded=False)]))
    for row in rows:
        np.testing.assert_array_equal(row["feature"], expected_feature(pipe, raw_frame(5, row["frame_index"])))


def test_stride_keeps_the_actions_in_between_and_views_repeat_each_frame():
    own = {"width": 0, "state": "raw", "gripper": True, "state_slots": [], "action": "raw"}  # the Episode's vectors
    pipe = pipeline(stride=3, views=2, layout=own)
    [(_ep, rows)] = list(pipe.annotate_many([episode(0, 8)]))
    assert [(r["frame_index"], r["view"]) for r in rows] == [(t, v) for t in (0, 3, 6, 7) for v in range(3)]
    assert [len(r["actions"]) for r in rows if r["view"] == 0] == [3, 3, 1, 1]
    assert len(rows[0]["state"]) == 7 and rows[0]["state_valid"].tolist() == [1] * 7  # arm state + gripper
    centre, first, second = (r["feature"] for r in rows[:3])
    assert not np.array_equal(centre, first) and not np.array_equal(first, second)  # jittered views differ
    again = next(iter(pipeline(stride=3, views=2, layout=own).annotate_many([episode(0, 8)])))[1]
    np.testing.assert_array_equal(again[1]["feature"], first)  # the same draw in every run


def test_droid_layout_places_pose_rot6d_and_gripper_and_actions_are_next_states():
    pipe = pipeline()
    [(ep, rows)] = list(pipe.annotate_many([episode(0, 4)]))
    valid = rows[0]["state_valid"]
    assert valid.tolist() == [1] * 9 + [0] * 9 + [1, 0]
    state = np.stack([r["state"] for r in rows])
    np.testing.assert_allclose(state[:, 0], ep.arm_state[:, 0])  # x
    np.testing.assert_allclose(state[:, 3:9], np.tile([1, 0, 0, 0, 1, 0], (4, 1)), atol=1e-6)  # no rotation
    np.testing.assert_allclose(state[:, 18], ep.gripper)
    actions = np.concatenate([r["actions"] for r in rows])
    np.testing.assert_array_equal(actions[:-1], state[1:])
    np.testing.assert_array_equal(actions[-1], state[-1])


def test_a_layout_that_does_not_fit_the_episode_is_a_card_error():
    pipe = pipeline(layout={"width": 8, "state": "raw", "gripper": False, "state_slots": [0, 1], "action": "raw",
                            "action_slots": [0, 1, 2, 3, 4, 5, 6]})
    with pytest.raises(CardError, match="state_slots has 2 indices, the episode has 6"):
        list(pipe.annotate_many([episode(0, 3)]))


def test_the_default_camera_is_the_first_exterior_one():
    assert pipeline().cameras(episode(0, 2)) == ["exterior_1_left"]
    with pytest.raises(EpisodeError, match="not in the episode"):
        pipeline(cameras=["wrist_left"]).cameras(episode(0, 2))


def test_read_ahead_keeps_the_order_and_hands_over_the_readers_error():
    def source():
        yield from range(5)
        raise OSError("disk went away")

    got = []
    with pytest.raises(OSError, match="disk went away"):
        got.extend(read_ahead(source(), 2))
    assert got == [0, 1, 2, 3, 4]
    assert list(read_ahead(iter(range(3)), 0)) == [0, 1, 2]


def test_a_frame_of_another_size_quarantines_its_episode():
    odd = episode(1, 5)
    data = list(odd.frames["exterior_1_left"].encoded)
    data[2] = encode_jpeg(np.zeros((20, 30, 3), np.uint8))
    odd.frames["exterior_1_left"] = FrameSequence(data)
    results = list(pipeline().annotate_many([episode(0, 3), odd]))
    assert len(results[0][1]) == 3
    assert results[1][1].reason == ("bad frame: camera 'exterior_1_left' frame 2 of 5: is 20×30×3, the camera's "
                                    "other frames are 40×60×3")


@pytest.mark.parametrize("option", ["prefetch", "decode_workers"])
def test_a_prefetch_or_pool_of_zero_is_refused_instead_of_spinning(option):
    with pytest.raises(ValueError, match=f"(?s){option}.*greater than or equal to 1"):  # FutureOptions' bounds
        pipeline(**{option: 0})


@pytest.mark.parametrize("encoder, model", [("qwen2_5_vl", "Qwen/Qwen2.5-VL-3B-Instruct"),
                                            ("dinov2", "facebook/dinov2-base"),
                                            ("siglip", "google/siglip2-base-patch16-224")])
def test_each_encoder_loads_its_own_default_checkpoint(encoder, model):
    assert pipeline(encoder=encoder).encoder_config().model == model


def test_pose_rot6d_on_a_card_without_rotation_is_a_card_error():
    card = load_source_card("droid")
    card = card.model_copy(update={"state": card.state.model_copy(update={"rotation": "none"})})
    layout = {"width": 20, "state": "pose_rot6d", "gripper": True,
              "state_slots": [0, 1, 2, 3, 4, 5, 6, 7, 8, 18], "action": "next_state"}
    stub = make_vision_encoder("stub", VisionEncoderConfig(image_size=SIZE))
    with pytest.raises(CardError, match="state.rotation is none"):
        FuturePipeline(card, {"encoder": "stub", "layout": layout}, encoder=stub)
