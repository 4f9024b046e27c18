"""MP4 video through PyAV: encode frames, decode an episode's segment, count frames.

One encoder may receive several episodes in a row (v3.0 concatenates them in one
file); frame i of the file has presentation time i / fps, so an episode that
starts at frame k starts at `from_timestamp = k / fps`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from fractions import Fraction
from typing import IO

import numpy as np

# Encoders tried in order: h264 is fast and everywhere; AV1 is LeRobot's default;
# mpeg4 ships with every FFmpeg build.
PREFERRED_CODECS = ("libx264", "libsvtav1", "mpeg4")
PIX_FMT = "yuv420p"
GOP_SIZE = 2  # short GOPs keep seeking to an episode inside a shared file cheap (LeRobot uses g=2)
EVEN_SIZE_ONLY = {"libx264"}  # refuses odd widths/heights in yuv420p; the others pad
# Name recorded in info.json `video.codec`, as FFmpeg's decoder names the stream.
CODEC_NAMES = {"libx264": "h264", "libsvtav1": "av1", "mpeg4": "mpeg4"}


def pick_video_codec(sizes: list[tuple[int, int]] = (), preferred: tuple[str, ...] = PREFERRED_CODECS) -> str:
    """The first encoder in `preferred` this FFmpeg build offers that accepts every (H, W) in `sizes`."""
    import av

    odd = any(h % 2 or w % 2 for h, w in sizes)
    for name in preferred:
        if odd and name in EVEN_SIZE_ONLY:
            continue
        try:
            av.codec.Codec(name, "w")
        except Exception:  # PyAV raises UnknownCodecError or a plain ValueError by version
            continue
        return name
    raise RuntimeError(f"none of the video encoders {preferred} is available for frame sizes {list(sizes)}")


@contextlib.contextmanager
def keep_thread_scheduling() -> Iterator[None]:
    """Give the calling thread back its scheduling policy after an encoder call.

    SVT-AV1 (libsvtav1), when the process runs as root (containers, CI), switches the
    thread that opens the encoder to SCHED_FIFO at priority 99. Every thread that thread
    starts later inherits it, and two such threads busy-waiting (MKL's thread-exit cleanup
    does) own both cores of a small machine for good: the whole process stalls.
    """
    if not hasattr(os, "sched_getscheduler"):  # not Linux: nothing to keep
        yield
        return
    policy, param = os.sched_getscheduler(0), os.sched_getparam(0)
    try:
        yield
    finally:
        if (os.sched_getscheduler(0), os.sched_getparam(0)) != (policy, param):
            os.sched_setscheduler(0, policy, param)


def _rate(fps: float) -> Fraction:
    return Fraction(fps).limit_denominator(1001)


class VideoEncoder:
    """Append uint8 T×H×W×3 frames to one MP4 file; `close()` flushes it."""

    def __init__(self, path: str, *, fps: float, height: int, width: int, codec: str | None = None):
        import av

        self.codec = codec or pick_video_codec([(height, width)])
        if self.codec == "libsvtav1":
            os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints its configuration to stderr unless told not to
        self.frames_written = 0
        self._container = av.open(path, mode="w")
        self._stream = self._container.add_stream(self.codec, rate=_rate(fps))
        self._stream.width, self._stream.height = width, height
        self._stream.pix_fmt = PIX_FMT
        self._stream.codec_context.gop_size = GOP_SIZE
        self._stream.codec_context.time_base = 1 / _rate(fps)

    def write(self, frames: np.ndarray) -> None:
        import av

        for image in frames:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image, dtype=np.uint8), format="rgb24")
            frame.pts = self.frames_written
            frame.time_base = self._stream.codec_context.time_base
            with keep_thread_scheduling():  # the encoder opens on the first frame
                packets = self._stream.encode(frame)
            self._container.mux(packets)
            self.frames_written += 1

    def close(self) -> None:
        with keep_thread_scheduling():
            self._container.mux(self._stream.encode())
            self._container.close()

    def __enter__(self) -> VideoEncoder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def decode_segment(source: str | IO[bytes], *, start_time: float, num_frames: int, fps: float) -> np.ndarray:
    """`num_frames` RGB frames starting at `start_time` seconds → uint8 T×H×W×3.

    Seeks to the keyframe before `start_time` and drops frames earlier than it by
    more than half a frame period. Raises ValueError if the file has too few frames.
    """
    import av

    tolerance = 0.5 / fps
    out: list[np.ndarray] = []
    with av.open(source) as container:
        stream = container.streams.video[0]
        if start_time > tolerance:
            container.seek(int((start_time - tolerance) / stream.time_base), stream=stream, backward=True)
        for frame in container.decode(stream):
            if frame.time is not None and frame.time < start_time - tolerance:
                continue
            out.append(frame.to_ndarray(format="rgb24"))
            if len(out) == num_frames:
                break
    if len(out) != num_frames:
        raise ValueError(f"video has {len(out)} frames from t={start_time:.3f}s, expected {num_frames}")
    return np.stack(out)


def count_frames(source: str | IO[bytes]) -> int:
    """Frames in the first video stream, counted from packets (no decoding)."""
    import av

    with av.open(source) as container:
        stream = container.streams.video[0]
        return sum(1 for packet in container.demux(stream) if packet.size > 0)
