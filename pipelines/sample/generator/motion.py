"""Scripted controller: a task → per-frame end-effector targets, gripper gap, phase labels.

The script is a sequence of atomic steps (approach, descend, close, lift,
transport, lower, release, retreat, push, press, wrist rotation, idle waits),
each a minimum-jerk move over a number of frames at the base rate. Every frame
carries the step name and its label in the LA vocabulary, which is the ground
truth; the object that is held or pushed follows the end effector rigidly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pipelines.sample.generator.plan import TaskSpec
from pipelines.sample.generator.scene import FINGER_TRAVEL

OPEN_GAP = 2 * FINGER_TRAVEL  # m between the fingers when fully open
HOVER = 0.12  # m above the object's top for the pre-grasp pose
CARRY = 0.16  # m above the table while transporting
PUSH_DISTANCE = 0.12  # m
PRESS_DEPTH = 0.012  # m the button travels
RETREAT = np.array([0.4, 0.0, 0.22])  # where the operator parks the arm: still in the exterior views
TOOL_ROLL = np.pi - 0.18  # the hand tilts a little off vertical, like a teleoperator's hand
PUSH_VECTORS = {"left": (0.0, 1.0), "right": (0.0, -1.0), "forward": (1.0, 0.0), "backward": (-1.0, 0.0)}


@dataclass
class Motion:
    """Per-frame script output at the base rate (all arrays length T)."""

    fps: float
    position: list = field(default_factory=list)  # grasp-frame xyz targets
    yaw: list = field(default_factory=list)
    gap: list = field(default_factory=list)  # finger gap (m)
    step: list = field(default_factory=list)  # script step name
    phase: list = field(default_factory=list)  # LA vocabulary label
    held: list = field(default_factory=list)  # the target is rigidly attached to the gripper
    target_position: list = field(default_factory=list)  # centre of the manipulated object
    target_yaw: list = field(default_factory=list)
    gripper_events: list = field(default_factory=list)  # (start_frame, end_frame, gap_before, gap_after)

    def __len__(self) -> int:
        return len(self.step)

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "position": np.array(self.position),
            "yaw": np.array(self.yaw),
            "gap": np.array(self.gap),
            "held": np.array(self.held, dtype=bool),
            "target_position": np.array(self.target_position),
            "target_yaw": np.array(self.target_yaw),
        }


def min_jerk(n: int) -> np.ndarray:
    """Progress 0 → 1 over n frames (excluding the start, including the end)."""
    t = np.arange(1, n + 1) / n
    return 10 * t**3 - 15 * t**4 + 6 * t**5


class _Script:
    def __init__(self, task: TaskSpec, rng: np.random.Generator, fps: float, start: np.ndarray, start_yaw: float):
        self.task, self.rng, self.motion = task, rng, Motion(fps)
        # Pushes and presses are recorded with the gripper already closed, as a fist.
        closed_start = task.kind in ("push", "pull", "press")
        self.position, self.yaw = start.astype(float), float(start_yaw)
        self.gap = 0.0 if closed_start else OPEN_GAP
        self.target = np.array([*task.target.xy, task.target.kind.height_ratio * task.target.width / 2])
        self.target_yaw = task.target.yaw
        self.held = False
        self.pushing = False

    def frames_for(self, distance: float, speed: float, minimum: int = 6) -> int:
        return max(minimum, int(round(distance / speed * self.motion.fps)))

    def _emit(self, step: str, phase: str) -> None:
        m = self.motion
        m.position.append(self.position.copy())
        m.yaw.append(self.yaw)
        m.gap.append(self.gap)
        m.step.append(step)
        m.phase.append(phase)
        m.held.append(self.held)
        m.target_position.append(self.target.copy())
        m.target_yaw.append(self.target_yaw)

    def move(self, step: str, phase: str, goal, yaw: float | None = None, speed: float | None = None) -> None:
        goal = np.asarray(goal, dtype=float)
        yaw = self.yaw if yaw is None else yaw
        distance = float(np.linalg.norm(goal - self.position)) + 0.05 * abs(yaw - self.yaw)
        n = self.frames_for(distance, speed or self.task.speed)
        start, start_yaw, obj_start = self.position.copy(), self.yaw, self.target.copy()
        obj_yaw_start = self.target_yaw
        for s in min_jerk(n):
            self.position = start + s * (goal - start)
            self.yaw = start_yaw + s * (yaw - start_yaw)
            if self.held:
                self.target = obj_start + (self.position - start)
                self.target_yaw = obj_yaw_start + (self.yaw - start_yaw)
            elif self.pushing:
                delta = self.position - start
                self.target = obj_start + np.array([delta[0], delta[1], 0.0])
            self._emit(step, phase)

    def gripper(self, step: str, phase: str, gap: float, seconds: float) -> None:
        n = max(3, int(round(seconds * self.motion.fps)))
        start_frame, before = len(self.motion), self.gap
        for s in min_jerk(n):
            self.gap = before + s * (gap - before)
            self._emit(step, phase)
        self.motion.gripper_events.append((start_frame, len(self.motion) - 1, before, gap))

    def wait(self, step: str, phase: str, seconds: float) -> None:
        for _ in range(max(1, int(round(seconds * self.motion.fps)))):
            self._emit(step, phase)

    def maybe_pause(self, point: str) -> None:
        if point in self.task.idle_pauses:
            self.wait("idle", "wait", float(self.rng.uniform(0.7, 1.4)))

    def settle(self, step: str, phase: str) -> None:
        """A short operator hesitation; most teleoperated moves end with one."""
        if self.rng.random() < 0.7:
            self.wait(step, phase, float(self.rng.uniform(0.25, 0.4)))


def script_motion(task: TaskSpec, rng: np.random.Generator, fps: float, start: np.ndarray, start_yaw: float) -> Motion:
    """The full scripted episode for `task`, starting from the grasp-frame pose `start`."""
    s = _Script(task, rng, fps, start, start_yaw)
    s.wait("idle", "wait", float(rng.uniform(0.3, 0.6)))  # recording starts a moment before the operator moves
    s.maybe_pause("start")
    top = s.target[2] * 2
    grasp_z = max(top - 0.022, 0.012)  # fingertips reach into the object's upper part
    grasp_yaw = _grasp_yaw(task.target.yaw)
    ox, oy = task.approach_offset
    pre = np.array([s.target[0] + ox, s.target[1] + oy, top + HOVER])

    if task.kind in ("pick_place", "pick_rotate_place"):
        _pick(s, task, pre, grasp_z, grasp_yaw)
        _place(s, task)
    elif task.kind in ("push", "pull"):
        _push(s, task, grasp_yaw)
    else:
        _press(s, task, top)
    s.wait("idle", "wait", 0.3)
    return s.motion


def _grasp_yaw(object_yaw: float) -> float:
    # Boxes are symmetric every 90°: pick the finger axis closest to the neutral wrist.
    return float((object_yaw + np.pi / 4) % (np.pi / 2) - np.pi / 4)


def _pick(s: _Script, task: TaskSpec, pre: np.ndarray, grasp_z: float, grasp_yaw: float) -> None:
    width = task.target.width
    s.move("approach", "move", pre, yaw=grasp_yaw)
    s.settle("approach", "move")
    grasp = np.array([s.target[0], s.target[1], grasp_z])
    if task.failed_first_grasp:
        # The operator closes slightly off the object, it slips out, the gripper reopens and realigns.
        miss = grasp + np.array([s.rng.choice([-1, 1]) * (width / 2 + 0.012), 0.0, 0.0])
        s.move("descend", "move", miss, speed=task.speed * 0.6)
        s.gripper("close", "grasp", 0.0, 0.6)
        s.wait("close", "grasp", 0.2)
        s.gripper("open", "grasp", OPEN_GAP, 0.5)
        s.move("realign", "move", miss + np.array([0, 0, 0.05]), speed=0.1)
        s.settle("realign", "move")
    s.maybe_pause("before_grasp")
    s.move("descend", "move", grasp, speed=task.speed * 0.6)
    s.settle("descend", "grasp")
    s.gripper("close", "grasp", width * 0.97, float(s.rng.uniform(0.5, 0.8)))
    s.held = True
    s.wait("close", "grasp", 0.2)
    s.move("lift", "lift", grasp + np.array([0, 0, CARRY]), speed=task.speed * 0.7)
    s.settle("lift", "lift")
    s.maybe_pause("after_lift")
    if task.kind == "pick_rotate_place":
        turn = float(s.rng.choice([-1, 1]) * s.rng.uniform(0.9, 1.4))
        s.move("rotate", "wrist_rotate", s.position, yaw=s.yaw + turn, speed=0.05)
        s.settle("rotate", "wrist_rotate")


def _place(s: _Script, task: TaskSpec) -> None:
    dest = task.destination
    assert dest is not None
    surface = {"plate": 0.012, "bowl": 0.008, "tray": 0.008}[dest.noun]
    offset = s.target - s.position  # object centre relative to the grasp frame
    above = np.array([dest.xy[0], dest.xy[1], s.position[2]]) - np.array([offset[0], offset[1], 0])
    s.move("transport", "transport", above)
    s.settle("transport", "transport")
    rest_z = surface + task.target.kind.height_ratio * task.target.width / 2  # object centre resting on the support
    release = np.array([above[0], above[1], above[2] - (s.target[2] - rest_z) + 0.003])
    s.move("lower", "lower", release, speed=task.speed * 0.6)
    s.held = False
    s.gripper("release", "place", OPEN_GAP, float(s.rng.uniform(0.4, 0.7)))
    s.target = s.target - np.array([0, 0, 0.003])  # the object settles onto the support
    s.move("retreat", "move", s.position + np.array([0, 0, 0.12]))
    s.move("retreat", "move", RETREAT + s.rng.uniform(-0.04, 0.04, 3))


def _push(s: _Script, task: TaskSpec, grasp_yaw: float) -> None:
    direction = np.array([*PUSH_VECTORS[task.direction or "left"], 0.0])
    half = task.target.width / 2
    contact_z = max(s.target[2], 0.015)
    behind = s.target - direction * (half + 0.025)
    s.move("approach", "move", np.array([behind[0], behind[1], contact_z + 0.1]), yaw=grasp_yaw + np.pi / 4)
    s.settle("approach", "move")
    s.move("descend", "move", np.array([behind[0], behind[1], contact_z]), speed=task.speed * 0.6)
    s.settle("descend", "move")
    s.move("touch", "move", s.position + direction * 0.01, speed=0.05)  # close the last centimetre
    s.pushing = True
    step = "pull" if task.kind == "pull" else "push"
    s.move(step, step, s.position + direction * PUSH_DISTANCE, speed=task.speed * 0.5)
    s.pushing = False
    s.settle(step, step)
    s.move("retreat", "move", s.position + np.array([0, 0, 0.12]) - direction * 0.03)
    s.move("retreat", "move", RETREAT + s.rng.uniform(-0.04, 0.04, 3))


def _press(s: _Script, task: TaskSpec, top: float) -> None:
    s.move("approach", "move", np.array([s.target[0], s.target[1], top + 0.1]))
    s.settle("approach", "move")
    s.move("descend", "move", np.array([s.target[0], s.target[1], top + 0.012]), speed=task.speed * 0.6)
    s.move("press", "press", np.array([s.target[0], s.target[1], top - PRESS_DEPTH]), speed=0.04)
    s.wait("press", "press", float(s.rng.uniform(0.3, 0.6)))
    s.move("press", "press", np.array([s.target[0], s.target[1], top + 0.015]), speed=0.05)
    s.move("retreat", "move", RETREAT + s.rng.uniform(-0.04, 0.04, 3))
