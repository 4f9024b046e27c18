"""Keyframe plots for card.md: motion magnitude, threshold, keyframes, gripper and segments."""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np

from annotators.keyframes import STATIC, Keyframe, arm_state_to_motion, motion_to_trace
from datasets_cards.params.la import KeyframeParams
from pipelines.io import write_bytes_atomic

KEYFRAME_COLORS = {STATIC: "tab:blue", "gripper_close": "tab:red", "gripper_open": "tab:green"}


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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()


def write_episode_plot(path: str, *args, **kwargs) -> None:
    write_bytes_atomic(path, episode_plot_png(*args, **kwargs))
