"""Ground-truth tables of simulated episodes (the layout is described in pipelines.sample.ground_truth)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from pipelines.sample.ground_truth import (
    CARD_NAMES,
    StaticRule,
    episode_id,
    gripper_transitions,
    intervals_from_flags,
    segments_from_labels,
    tool_speeds,
)


def build_tables(sim, schema: str, stride: int, index: int, rule: StaticRule = StaticRule()) -> dict[str, list[dict]]:
    """Ground-truth rows of one simulated episode in one schema (see module docstring)."""
    card = CARD_NAMES[schema]
    eid = episode_id(card, index)
    motion = sim.motion
    sampled = sim.schemas[schema]
    base = sampled.frame_indices
    fps = sim.fps / stride
    phases = [motion.phase[t] for t in base]
    linear, angular = tool_speeds(sim.tool_position, sim.tool_euler[:, 2], sim.fps)
    static = (linear[base] < rule.static_speed) & (angular[base] < rule.static_rate)
    intervals = intervals_from_flags(static, max(rule.min_frames, math.ceil(rule.static_seconds * fps)))
    closes, opens = gripper_transitions(sim.closure, motion.gripper_events, stride)
    n = len(base)
    closes = [f for f in closes if f < n]
    opens = [f for f in opens if f < n]
    segments = segments_from_labels(phases)
    task = sim.task
    frames = [
        {
            "episode_id": eid,
            "frame_index": k,
            "time_s": k / fps,
            "step": motion.step[t],
            "phase": motion.phase[t],
            "held": bool(motion.held[t]),
            "gripper_closure": float(sim.closure[t]),
            "target": task.target.name,
            "destination": task.destination.name if task.destination else None,
        }
        for k, t in enumerate(base)
    ]
    views = []
    for camera, truths in sampled.views.items():
        for k, v in enumerate(truths):
            views.append(
                {
                    "episode_id": eid,
                    "frame_index": k,
                    "camera": camera,
                    "target_box": v.target_box,
                    "target_rle": v.target_rle,
                    "gripper_box": v.gripper_box,
                    "gripper_rle": v.gripper_rle,
                    "destination_box": v.destination_box,
                }
            )
    episode = {
        "episode_id": eid,
        "episode_index": index,
        "instruction": task.instruction,
        "task": task.kind,
        "target": task.target.name,
        "destination": task.destination.name if task.destination else None,
        "num_frames": n,
        "fps": fps,
        "segments": [{"phase": p, "start": a, "end": b} for p, a, b in segments],
        "boundaries": [a for _, a, _ in segments[1:]],
        "static_intervals": [[a, b] for a, b in intervals],
        "static_keyframes": [(a + b) // 2 for a, b in intervals],
        "gripper_close_frames": closes,
        "gripper_open_frames": opens,
        "first_close_frame": closes[0] if closes else None,
        "failed_first_grasp": task.failed_first_grasp,
    }
    return {"episodes": [episode], "frames": frames, "views": views}


def write_tables(rows: dict[str, list[dict]], folder: Path, image_size: tuple[int, int]) -> None:
    """Write the three tables (atomically per file) into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, table in rows.items():
        frame = pd.DataFrame(table)
        if name == "views":
            frame["height"], frame["width"] = image_size
        if name == "episodes":
            frame["first_close_frame"] = frame["first_close_frame"].astype("Int64")
        tmp = folder / f".{name}.parquet.tmp"
        frame.to_parquet(tmp, index=False)
        tmp.replace(folder / f"{name}.parquet")
