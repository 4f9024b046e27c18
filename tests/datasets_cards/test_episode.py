import io

import numpy as np
import pytest
from PIL import Image

from datasets_cards import Episode, EpisodeError, FrameDecodeError, FrameSequence


def _jpeg(value: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((8, 12, 3), value, np.uint8)).save(buf, format="JPEG")
    return buf.getvalue()


def make_episode(t: int = 4, **overrides) -> Episode:
    fields = dict(
        episode_id="ep", source="test", instruction="pick up the cube", fps=10.0,
        frames={"cam": FrameSequence([_jpeg(10 * i) for i in range(t)])},
        arm_state=np.zeros((t, 6)), gripper=np.zeros(t), actions=np.zeros((t, 7)),
    )
    fields.update(overrides)
    return Episode(**fields)


def test_valid_episode_decodes_frames_lazily():
    ep = make_episode()
    assert ep.num_frames == 4 and ep.cameras == ["cam"]
    frame = ep.frames["cam"][2]
    assert frame.shape == (8, 12, 3) and abs(int(frame.mean()) - 20) <= 2
    assert ep.frames["cam"].load().shape == (4, 8, 12, 3)


@pytest.mark.parametrize(
    "overrides, reason",
    [
        (dict(arm_state=np.zeros((0, 6)), gripper=np.zeros(0), actions=np.zeros((0, 7)), frames={}), "zero-length"),
        (dict(instruction="  "), "missing instruction"),
        (dict(arm_state=np.full((4, 6), np.nan)), "non-finite values"),
        (dict(gripper=np.zeros(3)), "gripper has shape"),
        (dict(actions=np.zeros((5, 7))), "actions have shape"),
        (dict(gripper=np.full(4, 2.0)), "gripper outside"),
        (dict(frames={"cam": FrameSequence([b"x"] * 3)}), "has 3 frames"),
    ],
)
def test_invalid_episode_raises_with_reason(overrides, reason):
    with pytest.raises(EpisodeError, match=reason):
        make_episode(**overrides)


def test_undecodable_frame_raises_frame_decode_error():
    ep = make_episode(frames={"cam": FrameSequence([b"not a jpeg"] * 4)})
    with pytest.raises(FrameDecodeError, match="undecodable"):
        ep.frames["cam"][0]
