"""Plots drawn inside the units: keyframe plots for card.md (motion magnitude, threshold, keyframes,
gripper and segments), and per-segment state plots that review tasks show when the source has no cameras."""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np

from annotators.keyframes import STATIC, Keyframe, arm_state_to_motion, motion_to_trace
from annotators.kinematics import POSE_NAMES
from datasets_cards.params.la import KeyframeParams
from pipelines.io import write_bytes_atomic

KEYFRAME_COLORS = {STATIC: "tab:blue", "gripper_close": "tab:red", "gripper_open": "tab:green"}
POSE_PANELS = (("Δ position", slice(0, 3)), ("Δ rotation (rad)", slice(3, 6)))  # of the canonical pose


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # headless workers
    import matplotlib.pyplot as plt

    return plt


def _png(fig, dpi: int) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    _pyplot().close(fig)
    return buf.getvalue()


def episode_plot_png(
    episode_id: str,
    arm_state: np.ndarray,
    gripper: np.ndarray,
    fps: float,
    params: KeyframeParams,
    keyframes: Sequence[Keyframe],
    segments: Sequence[tuple[int, int, str]],
) -> bytes:
    """PNG of one episode: motion magnitude with its threshold and static frames, gripper, segments."""
    plt = _pyplot()
    trace = motion_to_trace(arm_state_to_motion(arm_state, fps, params), fps, params)
    t = np.arange(len(arm_state)) / fps
    fig, (ax_motion, ax_grip) = plt.subplots(2, 1, figsize=(10, 4.5), sharex=True, height_ratios=[2, 1])
    ax_motion.plot(t, trace.motion, color="black", lw=1, label="motion magnitude")
    ax_motion.axhline(trace.threshold, color="tab:orange", ls="--", lw=1, label="adaptive threshold")
    static = np.zeros(len(arm_state), dtype=bool)  # the merged intervals the static keyframes come from
    for k in keyframes:
        if k.kind == STATIC:
            static[k.interval[0]:k.interval[1]] = True
    ax_motion.fill_between(t, 0, 1, where=static, color="tab:blue", alpha=0.12, step="mid", label="static")
    for k in keyframes:
        for ax in (ax_motion, ax_grip):
            ax.axvline(k.time_s, color=KEYFRAME_COLORS.get(k.kind, "gray"), lw=1.2)
    ax_motion.set_ylim(0, 1.05)
    ax_motion.set_ylabel("motion")
    ax_motion.set_title(episode_id, fontsize=9)
    ax_motion.legend(loc="upper right", fontsize=7)
    ax_grip.plot(t, gripper, color="tab:purple", lw=1)
    ax_grip.set_ylim(-0.05, 1.3)
    ax_grip.set_ylabel("gripper")
    ax_grip.set_xlabel("time (s)")
    for i, (start, end, label) in enumerate(segments):
        ax_grip.axvspan(start / fps, end / fps, ymin=0.8, ymax=1.0, color=f"C{i % 10}", alpha=0.35)
        ax_grip.text((start + end) / 2 / fps, 1.17, label, ha="center", va="center", fontsize=6)
    fig.tight_layout()
    return _png(fig, dpi=90)


def write_episode_plot(path: str, *args, **kwargs) -> None:
    write_bytes_atomic(path, episode_plot_png(*args, **kwargs))


def segment_plot_png(title: str, pose: np.ndarray, gripper: np.ndarray, start: int, end: int, context: int) -> bytes:
    """PNG of one segment [start, end) for a review without video: the canonical pose (T×6) and the gripper over
    the segment and `context` frames either side, the segment shaded and its boundaries drawn at start and end.

    The x axis is in source-episode frames, the unit of the task's start/end controls; pose channels are
    drawn as the change since the segment's first frame, so a few centimetres of motion stay visible.
    """
    plt = _pyplot()
    lo, hi = max(0, start - context), min(len(pose), end + context)
    frames = np.arange(lo, hi)
    delta = np.asarray(pose[lo:hi], dtype=np.float64) - np.asarray(pose[start], dtype=np.float64)
    fig, axes = plt.subplots(len(POSE_PANELS) + 1, 1, figsize=(6, 5), sharex=True)
    for ax, (label, cols) in zip(axes, POSE_PANELS):
        for name, channel in zip(POSE_NAMES[cols], delta[:, cols].T):
            ax.plot(frames, channel, lw=1, label=name)
        ax.set_ylabel(label, fontsize=7)
        ax.legend(loc="upper left", fontsize=6, ncol=3)
    axes[-1].plot(frames, gripper[lo:hi], color="tab:purple", lw=1)
    axes[-1].set_ylim(-0.05, 1.05)
    axes[-1].set_ylabel("gripper (1 = closed)", fontsize=7)
    axes[-1].set_xlabel("source-episode frame")
    for ax in axes:
        ax.axvspan(start, end, color="tab:gray", alpha=0.15)
        for boundary in (start, end):  # where the start/end controls point: end is the frame after the last
            ax.axvline(boundary, color="black", lw=1.2, ls="--")
        ax.tick_params(labelsize=6)
    axes[0].set_title(f"{title}\nsegment [{start}, {end}) shaded", fontsize=8)
    fig.tight_layout()
    return _png(fig, dpi=80)


def write_segment_plot(path: str, *args, **kwargs) -> None:
    write_bytes_atomic(path, segment_plot_png(*args, **kwargs))
