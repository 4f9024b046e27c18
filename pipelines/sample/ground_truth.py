"""Ground truth of the sample, per schema, as three Parquet tables next to the RLDS data.

Layout: ``<data>/<schema>/ground_truth/{episodes,frames,views}.parquet``

- frames: one row per (episode_id, frame_index): time, scripted step, phase
  (LA vocabulary), whether the target is held, the true gripper closure
  (0 open, 1 closed), target and destination names.
- views: one row per (episode_id, frame_index, camera): visible target box and
  COCO RLE mask, gripper (hand + fingers) box and mask, destination box.
  Boxes are pixel xyxy with exclusive max edges; masks are pycocotools RLE
  `counts` strings with `height`/`width`. Missing (not visible) is null.
- episodes: one row per episode: instruction, task kind, the phase segments
  (start/end frame, inclusive), the phase boundaries (first frame of every
  segment after the first), static intervals and static keyframes, gripper
  close/open transition frames and the first gripper-close frame.

Frame indices count the schema's own frames (DROID 15 Hz, Bridge 5 Hz, Fractal
3 Hz). Episode ids are what the RLDS reader gives each episode under its card's
`episode_id_keys` (`episode_id`): the generator writes ``f"{card_name}-{index:06d}"``
as episode_metadata/file_path, so DROID's id is that path, Bridge's is that path
and the episode number ("sample-bridge-000003#3"), and Fractal (no metadata) gets
the split-and-index form ("sample-fractal-train-000003").

Definitions a perfect detector is scored against:
- static frame: the true tool speed is below `static_speed` m/s and its yaw rate
  below `static_rate` rad/s; static intervals are runs of static frames at
  least `static_seconds` and `min_frames` long; the static keyframe is each interval's midpoint
  ``(start + end) // 2``.
- gripper transition: the first frame at which the closure has passed the
  midpoint between its value before and after a scripted open/close; the
  first gripper-close frame is the first close transition (None without one).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from datasets_cards import load_source_card
from datasets_cards.constants import PROJECT_ROOT
from datasets_cards.source import episode_id as make_episode_id

GROUND_TRUTH_DIR = "ground_truth"
DEFAULT_DATA_DIR = PROJECT_ROOT / "pipelines" / "sample" / "data"
SCHEMAS = ("droid", "bridge", "fractal")
CARD_NAMES = {schema: f"sample-{schema}" for schema in SCHEMAS}


@dataclass(frozen=True)
class StaticRule:
    """What counts as 'static' in the ground truth (see module docstring)."""

    static_speed: float = 0.01  # m/s
    static_rate: float = 0.05  # rad/s
    static_seconds: float = 0.25  # shortest static interval ...
    min_frames: int = 2  # ... and never a single frame (at 3 Hz one slow sample is not a pause)


def sample_file_path(card_name: str, index: int) -> str:
    """What the generator stores as episode_metadata/file_path for episode `index`."""
    return f"{card_name}-{index:06d}"


def episode_id(card_name: str, index: int) -> str:
    """The id the reader gives sample episode `index` (the ground truth's join key)."""
    card = load_source_card(card_name)
    metadata = {"episode_metadata/file_path": sample_file_path(card_name, index), "episode_metadata/episode_id": index}
    return make_episode_id(card.name, card.split, index, [metadata[key] for key in card.episode_id_keys])


def segments_from_labels(labels: list[str]) -> list[tuple[str, int, int]]:
    """Runs of equal labels → (label, start, end) with inclusive ends."""
    segments: list[tuple[str, int, int]] = []
    for i, label in enumerate(labels):
        if segments and segments[-1][0] == label:
            segments[-1] = (label, segments[-1][1], i)
        else:
            segments.append((label, i, i))
    return segments


def intervals_from_flags(flags: np.ndarray, min_length: int) -> list[tuple[int, int]]:
    """Runs of True at least `min_length` long → inclusive (start, end) pairs."""
    intervals, start = [], None
    for i, flag in enumerate(np.append(np.asarray(flags, dtype=bool), False)):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            if i - start >= min_length:
                intervals.append((start, i - 1))
            start = None
    return intervals


def tool_speeds(position: np.ndarray, yaw: np.ndarray, fps: float) -> tuple[np.ndarray, np.ndarray]:
    """Linear (m/s) and yaw (rad/s) speed of the tool at every base-rate frame."""
    if len(position) < 2:
        return np.zeros(len(position)), np.zeros(len(position))
    linear = np.linalg.norm(np.gradient(position, axis=0), axis=1) * fps
    angular = np.abs(np.gradient(np.unwrap(yaw))) * fps
    return linear, angular


def gripper_transitions(
    closure: np.ndarray, events: list[tuple[int, int, float, float]], stride: int
) -> tuple[list[int], list[int]]:
    """(close frames, open frames) at the schema's rate, from scripted gripper events at the base rate."""
    closes, opens = [], []
    open_gap = 0.08
    for start, end, gap_before, gap_after in events:
        before, after = 1 - gap_before / open_gap, 1 - gap_after / open_gap
        if abs(after - before) < 1e-6:
            continue
        midpoint = (before + after) / 2
        window = closure[start : end + 1]
        passed = window >= midpoint if after > before else window <= midpoint
        base_frame = start + int(np.argmax(passed))
        frame = math.ceil(base_frame / stride)
        (closes if after > before else opens).append(frame)
    return closes, opens


def load_ground_truth(schema: str, data_dir: str | Path | None = None) -> GroundTruth:
    """The ground truth of one schema of the sample (droid, bridge or fractal)."""
    if schema not in SCHEMAS:
        raise ValueError(f"unknown sample schema {schema!r}; known: {', '.join(SCHEMAS)}")
    folder = Path(data_dir or DEFAULT_DATA_DIR) / schema / GROUND_TRUTH_DIR
    if not folder.exists():
        raise FileNotFoundError(
            f"no ground truth at {folder}; generate the sample with `make sample-data` "
            f"(python -m pipelines.sample.generator --out {Path(data_dir or DEFAULT_DATA_DIR)})"
        )
    return GroundTruth(
        schema=schema,
        episodes=pd.read_parquet(folder / "episodes.parquet"),
        frames=pd.read_parquet(folder / "frames.parquet"),
        views=pd.read_parquet(folder / "views.parquet"),
    )


@dataclass(frozen=True)
class EpisodeTruth:
    """One episode's ground truth as plain Python/numpy values."""

    episode_id: str
    instruction: str
    task: str
    target: str
    destination: str | None
    num_frames: int
    fps: float
    phases: list[str]  # per frame
    held: np.ndarray  # per frame, bool
    segments: list[tuple[str, int, int]]  # (phase, start, end inclusive)
    boundaries: list[int]
    static_intervals: list[tuple[int, int]]
    static_keyframes: list[int]
    gripper_close_frames: list[int]
    gripper_open_frames: list[int]
    first_close_frame: int | None
    failed_first_grasp: bool


@dataclass(frozen=True)
class GroundTruth:
    """The three tables of one schema; `episode(id)` gives a typed view of one episode."""

    schema: str
    episodes: pd.DataFrame
    frames: pd.DataFrame
    views: pd.DataFrame

    @property
    def episode_ids(self) -> list[str]:
        return self.episodes["episode_id"].tolist()

    def episode(self, episode_id: str) -> EpisodeTruth:
        rows = self.episodes[self.episodes["episode_id"] == episode_id]
        if rows.empty:
            raise KeyError(f"episode {episode_id!r} is not in the {self.schema} ground truth")
        row = rows.iloc[0]
        frames = self.frames[self.frames["episode_id"] == episode_id].sort_values("frame_index")
        first = row["first_close_frame"]
        return EpisodeTruth(
            episode_id=episode_id,
            instruction=row["instruction"],
            task=row["task"],
            target=row["target"],
            destination=row["destination"] or None,
            num_frames=int(row["num_frames"]),
            fps=float(row["fps"]),
            phases=frames["phase"].tolist(),
            held=frames["held"].to_numpy(dtype=bool),
            segments=[(s["phase"], int(s["start"]), int(s["end"])) for s in row["segments"]],
            boundaries=[int(b) for b in row["boundaries"]],
            static_intervals=[(int(a), int(b)) for a, b in row["static_intervals"]],
            static_keyframes=[int(k) for k in row["static_keyframes"]],
            gripper_close_frames=[int(k) for k in row["gripper_close_frames"]],
            gripper_open_frames=[int(k) for k in row["gripper_open_frames"]],
            first_close_frame=None if pd.isna(first) else int(first),
            failed_first_grasp=bool(row["failed_first_grasp"]),
        )

    def boxes(self, camera: str, kind: str = "target") -> dict[str, np.ndarray]:
        """episode id → F×4 float array of `kind` (target | gripper | destination) boxes, NaN where not visible."""
        column = f"{kind}_box"
        if column not in self.views:
            raise ValueError(f"unknown box kind {kind!r}; known: target, gripper, destination")
        views = self.views[self.views["camera"] == camera].sort_values(["episode_id", "frame_index"])
        out = {}
        for eid, group in views.groupby("episode_id", sort=False):
            out[eid] = np.array(
                [np.asarray(b, dtype=float) if b is not None else np.full(4, np.nan) for b in group[column]]
            ).reshape(-1, 4)
        return out
