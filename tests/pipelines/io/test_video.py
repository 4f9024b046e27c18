"""The MP4 encoder wrapper: round trip, and the caller's thread left as it was."""

import os

import numpy as np
import pytest

from pipelines.io.video import VideoEncoder, count_frames, decode_segment, pick_video_codec

pytest.importorskip("av")


def test_frames_round_trip_through_the_picked_encoder(tmp_path):
    frames = np.zeros((6, 32, 48, 3), np.uint8)
    frames[:, 8:24, 16:32] = 200
    path = str(tmp_path / "clip.mp4")
    with VideoEncoder(path, fps=10, height=32, width=48) as encoder:
        encoder.write(frames)
    assert count_frames(path) == 6
    decoded = decode_segment(path, start_time=0.2, num_frames=3, fps=10)
    assert decoded.shape == (3, 32, 48, 3)
    assert np.abs(decoded.astype(int) - frames[2:5]).mean() < 8  # lossy, but the square is there


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                    reason="SVT-AV1 raises the thread to real time only when the process runs as root")
def test_svt_av1_leaves_the_calling_thread_on_its_own_scheduling_policy(tmp_path):
    """As root, SVT-AV1 switches the thread that opens it to SCHED_FIFO 99; that stalled the suite on 2 cores."""
    if pick_video_codec([(15, 21)], preferred=("libsvtav1",)) != "libsvtav1":
        pytest.skip("this FFmpeg build has no libsvtav1")
    before = os.sched_getscheduler(0), os.sched_getparam(0)
    with VideoEncoder(str(tmp_path / "odd.mp4"), fps=10, height=15, width=21, codec="libsvtav1") as encoder:
        encoder.write(np.full((4, 15, 21, 3), 90, np.uint8))
        assert (os.sched_getscheduler(0), os.sched_getparam(0)) == before
    assert (os.sched_getscheduler(0), os.sched_getparam(0)) == before
    assert count_frames(str(tmp_path / "odd.mp4")) == 4
