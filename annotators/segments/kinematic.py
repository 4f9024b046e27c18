"""The kinematic segmenter: atomic segments from robot state alone (no vision, no API).

Phases
1. features  base-frame end-effector velocity (Savitzky–Golay derivative), angular
             velocity in the tool frame (from the orientation dims), gripper rate;
2. frames    every frame gets a motion class: close / open (gripper moving),
             static, rotate (|ω|·lever > speed), up / down (|vz| ≥ ratio·|vxy|),
             horizontal;
3. runs      runs of one class; runs shorter than the minimum segment are absorbed
             by a neighbour (a gripper run first: alignment belongs to the grasp);
             interior pauses shorter than `wait_min_s` end the motion before them
             (the arm settles), or start the grasp/place after them; pauses at the
             episode's start and end stay `wait` (the arm is idle, not settling);
             motion runs are cut where the speed dips (one move ends, another starts),
             and vertical runs of a gripper closed on nothing where the tool enters or
             leaves the contact band (a press at 3 Hz samples no speed dip);
4. labels    each run gets a primitive from its class and the HOLDING / EMPTY
             status (gripper closed part-way, stopped by an object = HOLDING;
             shut fully = closed on nothing), and neighbours with the same
             primitive merge (a move down then forward is one move);
5. words     a vision-agnostic instruction from annotators.segments.templates.

Boundaries thus come from the same evidence as the keyframes (low-motion intervals and
gripper changes, at the segmenter's own thresholds) plus speed dips between moves; the
keyframe list itself is a prompt cue for the VLM segmenter.

Primitive rules (la4vla.txt Table 8, decided from state only):
  close → grasp;  open → place, or grasp when it had closed on nothing (a failed grasp
  reopening);  static → wait (interior pauses only from wait_min_s on);
  up: HOLDING → lift, EMPTY → move;  down: HOLDING → lower, EMPTY → move,
  contact (closed on nothing and near the episode's lowest point, see
  KinematicParams.contact_closed_level / contact_band_m): up or down → press (but a
  descent that only leads into a push or pull is the approach: move),
  horizontal → pull when the motion is mainly toward the base (-x), else push;
  a gripper closed on nothing away from the table holds nothing: → move;
  rotate: about the tool axis → wrist_rotate (HOLDING) / rotate (EMPTY),
  otherwise reorient.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.signal import find_peaks, savgol_filter
from scipy.spatial.transform import Rotation

from annotators.kinematics.pose import CANONICAL_EULER
from annotators.segments.base import SEGMENTERS, Segment, SegmentationInput
from annotators.segments.templates import displacement_to_directions, instruction_for
from datasets_cards.params.la import KinematicParams

CLOSE, OPEN, STATIC, ROTATE, UP, DOWN, HORIZONTAL = "close", "open", "static", "rotate", "up", "down", "horizontal"


@dataclass(frozen=True)
class KinematicFeatures:
    """Per-frame signals of one episode."""

    position: np.ndarray  # T×3 m, base frame
    velocity: np.ndarray  # T×3 m/s, base frame
    angular_velocity: np.ndarray  # T×3 rad/s, tool frame
    gripper: np.ndarray  # T, 0 = open, 1 = closed
    gripper_rate: np.ndarray  # T, 1/s
    classes: np.ndarray  # T motion class (str)
    fps: float = 15.0


def _odd_window(seconds: float, fps: float, length: int) -> int:
    n = max(3, int(round(seconds * fps)) | 1)
    return min(n, length if length % 2 else length - 1)


def _derivative(values: np.ndarray, fps: float, window: int) -> np.ndarray:
    if len(values) < 2:
        return np.zeros_like(values)
    if window < 3:
        return np.gradient(values, 1.0 / fps, axis=0)
    return savgol_filter(values, window, 2, deriv=1, delta=1.0 / fps, axis=0, mode="mirror")


def arm_state_to_angular_velocity(arm_state: np.ndarray, fps: float, window: int) -> np.ndarray:
    """T×6 canonical pose (annotators.kinematics.pose) → T×3 angular velocity (rad/s) in the tool frame."""
    t = len(arm_state)
    if arm_state.shape[1] < 6 or t < 2:
        return np.zeros((t, 3))
    rotations = Rotation.from_euler(CANONICAL_EULER, arm_state[:, 3:6])
    relative = (rotations[:-1].inv() * rotations[1:]).as_rotvec() * fps  # body frame, between frames
    omega = np.concatenate([relative[:1], (relative[:-1] + relative[1:]) / 2, relative[-1:]])  # centred
    if window >= 3 and t >= window:
        omega = savgol_filter(omega, window, 2, axis=0, mode="mirror")
    return omega


def episode_to_features(arm_state: np.ndarray, gripper: np.ndarray, fps: float, params: KinematicParams) -> KinematicFeatures:
    state = np.asarray(arm_state, dtype=np.float64)
    g = np.asarray(gripper, dtype=np.float64).reshape(-1)
    t = len(state)
    window = _odd_window(params.smoothing_s, fps, t)
    position = state[:, :3]
    velocity = _derivative(position, fps, window)
    omega = arm_state_to_angular_velocity(state, fps, window)
    rate = _derivative(g, fps, _odd_window(params.gripper_smoothing_s, fps, t))
    speed = np.linalg.norm(velocity, axis=1)
    horizontal = np.linalg.norm(velocity[:, :2], axis=1)
    angular = np.linalg.norm(omega, axis=1)
    classes = np.full(t, HORIZONTAL, dtype=object)
    vertical = np.abs(velocity[:, 2]) >= params.vertical_ratio * horizontal
    classes[vertical & (velocity[:, 2] > 0)] = UP
    classes[vertical & (velocity[:, 2] <= 0)] = DOWN
    classes[angular * params.rotation_lever > speed] = ROTATE
    classes[(speed < params.static_speed) & (angular < params.static_rotation_speed)] = STATIC
    classes[rate >= params.gripper_rate] = CLOSE
    classes[rate <= -params.gripper_rate] = OPEN
    return KinematicFeatures(position, velocity, omega, g, rate, classes, fps)


def classes_to_runs(classes: np.ndarray) -> list[list]:
    """Runs [start, end, class] of equal consecutive classes."""
    runs: list[list] = []
    for i, c in enumerate(classes):
        if runs and runs[-1][2] == c:
            runs[-1][1] = i + 1
        else:
            runs.append([i, i + 1, c])
    return runs


def _merge_equal(runs: list[list]) -> list[list]:
    merged: list[list] = []
    for run in runs:
        if merged and merged[-1][2] == run[2]:
            merged[-1][1] = run[1]
        else:
            merged.append(list(run))
    return merged


def absorb_short_runs(runs: list[list], min_frames: int) -> list[list]:
    """Give runs shorter than `min_frames` to a neighbour: a gripper run first, else the longer one."""
    runs = _merge_equal(runs)
    while len(runs) > 1:
        lengths = [r[1] - r[0] for r in runs]
        i = int(np.argmin(lengths))
        if lengths[i] >= min_frames:
            break
        neighbours = [j for j in (i - 1, i + 1) if 0 <= j < len(runs)]
        gripper = [j for j in neighbours if runs[j][2] in (CLOSE, OPEN)]
        j = gripper[0] if gripper else max(neighbours, key=lambda k: lengths[k])
        if j < i:
            runs[j][1] = runs[i][1]
        else:
            runs[j][0] = runs[i][0]
        del runs[i]
        runs = _merge_equal(runs)
    return runs


def split_short_pauses(runs: list[list], max_frames: int) -> list[list]:
    """Interior pauses shorter than `max_frames` end the motion before them (the arm settles).

    A pause just before a gripper run belongs to it (aligning, then closing, is one grasp).
    Pauses at the start or end of the episode stay whatever their length: before the first
    move and after the last one the arm is idle, so they are `wait`, not part of a motion.
    """
    out = [list(r) for r in runs]
    for i in range(1, len(out) - 1):
        start, end, c = out[i]
        if c != STATIC or end - start >= max_frames:
            continue
        if out[i + 1][2] in (CLOSE, OPEN):
            out[i + 1][0] = start
        else:
            out[i - 1][1] = end
        out[i] = [start, start, c]
    return _merge_equal([r for r in out if r[1] > r[0]])


def split_at_speed_minima(
    runs: list[list], speed: np.ndarray, prominence: float, min_frames: int, static_speed: float
) -> list[list]:
    """Cut motion runs where the speed dips between two moves (min-jerk junctions).

    Pieces keep their run's class and are labelled separately, so a descend followed by
    a press, or a press followed by a retreat, become two segments. A dip counts only
    with at least `min_frames` moving frames on each side inside the run (the settling
    at the end of a move is no junction).
    """
    speed = np.asarray(speed, dtype=np.float64)
    moving = np.concatenate([[0], np.cumsum(speed >= static_speed)])
    dips, _ = find_peaks(-speed, prominence=prominence)
    out = []
    for start, end, c in runs:
        if c in (STATIC, CLOSE, OPEN):
            out.append([start, end, c])
            continue
        cut = start
        for d in dips:
            if moving[d] - moving[cut] >= min_frames and moving[end] - moving[d] >= min_frames:
                out.append([cut, int(d), c])
                cut = int(d)
        out.append([cut, end, c])
    return out


class KinematicSegmenter:
    """Segment an episode from end-effector kinematics and the gripper (implements Segmenter)."""

    name = "kinematic"

    def __init__(self, params: KinematicParams | None = None, min_segment_frames: int = 1):
        self.params = params or KinematicParams()
        # floor in frames, whatever min_segment_s gives. 1: durations decide (min_segment_s, 0.3 s, is 4
        # frames at 15 Hz but one at 3 Hz; a floor of 3 frames there made every segment last ≥ 1 s)
        self.min_segment_frames = min_segment_frames

    def segment(self, item: SegmentationInput) -> list[Segment]:
        t = item.num_frames
        if t == 0:
            return []
        features = episode_to_features(item.arm_state, item.gripper, item.fps, self.params)
        min_frames = self.min_frames(item.fps)
        wait_frames = max(1, int(round(self.params.wait_min_s * item.fps)))
        runs = absorb_short_runs(classes_to_runs(features.classes), min_frames)
        runs = split_short_pauses(runs, wait_frames)
        speed = np.linalg.norm(features.velocity, axis=1)
        runs = split_at_speed_minima(runs, speed, self.params.split_prominence, min_frames, self.params.static_speed)
        runs = self.split_at_contact_band(features, runs)
        labelled = [(s, e, self.primitive(features, s, e, c)) for s, e, c in runs]
        # a press goes down and comes back up: contact that only goes down before a push or pull
        # is the approach to it (a move)
        for k, (s, e, p) in enumerate(labelled):
            if p == "press":
                after = [q for _, _, q in labelled[k + 1:] if q != "wait"][:1]
                before = [q for _, _, q in labelled[:k] if q != "wait"][-1:]
                if (after and after[0] in ("push", "pull")) or (before and before[0] in ("push", "pull")):
                    labelled[k] = (s, e, "move")
        merged: list[list] = []
        for s, e, p in labelled:
            if merged and merged[-1][2] == p:
                merged[-1][1] = e
            else:
                merged.append([s, e, p])
        return [
            Segment(s, e, p, self.instruction(features, s, e, p, merged[k + 1][2] if k + 1 < len(merged) else None))
            for k, (s, e, p) in enumerate(merged)
        ]

    def min_frames(self, fps: float) -> int:
        """Shortest segment in frames at `fps`: min_segment_s, at least the floor and one frame."""
        return max(1, self.min_segment_frames, int(self.params.min_segment_s * fps + 1e-9))

    def split_at_contact_band(self, features: KinematicFeatures, runs: list[list]) -> list[list]:
        """Cut vertical motion runs where the tool crosses the contact band (contact_band_m above the
        episode's lowest point) while the gripper is closed on nothing: the approach above the band
        and the pressing inside it are two segments even without a pause between them."""
        level = self.params.contact_closed_level
        if level is None:
            return runs
        inside = features.position[:, 2] <= float(features.position[:, 2].min()) + self.params.contact_band_m
        closed = features.gripper >= level
        out = []
        for start, end, c in runs:
            if c not in (UP, DOWN) or not closed[start:end].all():
                out.append([start, end, c])
                continue
            cut = start
            for i in range(start + 1, end):
                if inside[i] != inside[i - 1]:
                    out.append([cut, i, c])
                    cut = i
            out.append([cut, end, c])
        return out

    def holding(self, features: KinematicFeatures, start: int, end: int) -> bool:
        """HOLDING: the gripper is closed, but not so far that it closed on nothing."""
        closed = float(np.median(features.gripper[start:end])) >= self.params.holding_threshold
        return closed and not self.closed_empty(features, start, end)

    def closed_empty(self, features: KinematicFeatures, start: int, end: int) -> bool:
        level = self.params.contact_closed_level
        return level is not None and float(np.median(features.gripper[start:end])) >= level

    def contact(self, features: KinematicFeatures, start: int, end: int) -> bool:
        """Closed on nothing and near the lowest point of the episode: touching something."""
        level = self.params.contact_closed_level
        if level is None or float(np.median(features.gripper[start:end])) < level:
            return False
        floor = float(features.position[:, 2].min())  # the table, or whatever the gripper touched lowest
        return float(np.quantile(features.position[start:end, 2], 0.9)) <= floor + self.params.contact_band_m

    def primitive(self, features: KinematicFeatures, start: int, end: int, motion: str) -> str:
        """The primitive of frames [start, end) whose motion class is `motion`."""
        holding, contact = self.holding(features, start, end), self.contact(features, start, end)
        if motion == CLOSE:
            return "grasp"
        if motion == OPEN:  # reopening a gripper that had closed on nothing is a failed grasp, not a place
            before = features.gripper[max(0, start - self.min_frames(features.fps)):start + 1]
            level = self.params.contact_closed_level
            return "grasp" if level is not None and float(before.max()) >= level else "place"
        if motion == STATIC:
            return "wait"
        if motion == ROTATE:
            omega = np.abs(features.angular_velocity[start:end]).sum(axis=0)
            about_tool = omega[2] >= self.params.tool_axis_share * omega.sum()
            if about_tool:
                return "wrist_rotate" if holding and not contact else "rotate"
            return "reorient"
        if contact:
            if motion in (UP, DOWN):
                return "press"
            d = features.position[end - 1, :2] - features.position[start, :2]
            return "pull" if -d[0] >= abs(d[1]) else "push"  # toward the robot (base -x) is a pull
        if holding:
            return {UP: "lift", DOWN: "lower"}.get(motion, "transport")
        return "move"

    def instruction(self, features: KinematicFeatures, start: int, end: int, primitive: str, next_primitive: str | None) -> str:
        displacement = features.position[end - 1] - features.position[start]
        directions = displacement_to_directions(displacement, self.params.direction_share, self.params.min_direction_m)
        sense = ""
        if primitive in ("wrist_rotate", "rotate"):
            turn = float(features.angular_velocity[start:end, 2].sum())
            sense = "counterclockwise" if turn > 0 else "clockwise"
        target = " toward the object" if primitive == "move" and next_primitive == "grasp" else ""
        return instruction_for(primitive, directions, holding=self.holding(features, start, end), sense=sense, target=target)


@SEGMENTERS.register("kinematic")
def kinematic_segmenter(kinematic: KinematicSegmenter, **_: Any) -> KinematicSegmenter:
    """The kinematic segmenter is its own cross-check: the pipeline's instance is the segmenter."""
    return kinematic
