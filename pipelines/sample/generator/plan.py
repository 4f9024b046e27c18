"""Sample one episode's task: objects, layout, instruction and script variations.

Everything is drawn from a numpy Generator seeded per episode, so episode i is
the same whichever worker makes it and however many episodes are asked for.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pipelines.sample.generator.scene import COLOURS, DESTINATION_NOUNS, OBJECT_KINDS, ObjectKind

TASK_KINDS = ("pick_place", "pick_place", "pick_rotate_place", "push", "pull", "press")

# Instruction templates in the styles of the real corpora (DROID, Bridge, RT-1).
PICK_PLACE_TEMPLATES = (
    "put the {obj} in the {dest}",
    "pick up the {obj} and place it on the {dest}",
    "place the {obj} in the {dest}",
    "move the {obj} to the {dest}",
    "pick {obj} and put it in {dest}",
)
ROTATE_TEMPLATES = (
    "pick up the {obj}, rotate it and put it in the {dest}",
    "turn the {obj} and place it on the {dest}",
)
PUSH_TEMPLATES = ("push the {obj} to the {direction}", "slide the {obj} {direction}")
PULL_TEMPLATES = ("pull the {obj} toward you", "pull the {obj} closer")
PRESS_TEMPLATES = ("press the {obj}", "push down the {obj}")


@dataclass(frozen=True)
class ObjectSpec:
    kind: ObjectKind
    colour: str
    width: float
    xy: tuple[float, float]
    yaw: float

    @property
    def name(self) -> str:
        return f"{self.colour} {self.kind.noun}"


@dataclass(frozen=True)
class DestinationSpec:
    noun: str
    colour: str
    xy: tuple[float, float]

    @property
    def name(self) -> str:
        return f"{self.colour} {self.noun}"


@dataclass(frozen=True)
class TaskSpec:
    index: int
    kind: str
    instruction: str
    target: ObjectSpec
    distractors: tuple[ObjectSpec, ...]
    destination: DestinationSpec | None
    direction: str | None = None  # push/pull direction name
    failed_first_grasp: bool = False
    idle_pauses: tuple[str, ...] = ()  # script points where the operator pauses
    speed: float = 0.2  # m/s mean end-effector speed of free moves
    approach_offset: tuple[float, float] = (0.0, 0.0)  # pre-grasp xy offset: approach direction
    extras: dict = field(default_factory=dict)


def _free_xy(rng: np.random.Generator, taken: list[tuple[float, float, float]], radius: float, box) -> tuple:
    (x0, x1), (y0, y1) = box
    for _ in range(200):
        xy = (float(rng.uniform(x0, x1)), float(rng.uniform(y0, y1)))
        if all(np.hypot(xy[0] - x, xy[1] - y) > radius + r for x, y, r in taken):
            taken.append((*xy, radius))
            return xy
    raise RuntimeError("could not place an object without overlap; the workspace is too small")


def sample_task(index: int, rng: np.random.Generator) -> TaskSpec:
    """The task of episode `index` (kind cycles so every kind appears in a dozen episodes)."""
    kind = TASK_KINDS[index % len(TASK_KINDS)]
    colours = list(COLOURS)
    rng.shuffle(colours)
    graspable = [k for k in OBJECT_KINDS if k.noun != "button"]
    taken: list[tuple[float, float, float]] = []
    workspace = ((0.42, 0.62), (-0.22, 0.22))

    destination = None
    if kind in ("pick_place", "pick_rotate_place"):
        noun = DESTINATION_NOUNS[int(rng.integers(len(DESTINATION_NOUNS)))]
        destination = DestinationSpec(noun, colours.pop(), _free_xy(rng, taken, 0.11, workspace))
    target_kind = next(k for k in OBJECT_KINDS if k.noun == "button") if kind == "press" else graspable[
        int(rng.integers(len(graspable)))
    ]
    if kind == "push":
        # leave room on the side the object is pushed to
        direction = ("left", "right", "forward")[int(rng.integers(3))]
        box = {"left": ((0.45, 0.6), (-0.2, 0.0)), "right": ((0.45, 0.6), (0.0, 0.2)), "forward": ((0.4, 0.48), (-0.15, 0.15))}
        target_xy = _free_xy(rng, taken, 0.05, box[direction])
    elif kind == "pull":
        direction = "backward"
        target_xy = _free_xy(rng, taken, 0.05, ((0.58, 0.66), (-0.18, 0.18)))
    else:
        direction = None
        target_xy = _free_xy(rng, taken, 0.05, workspace)
    target = ObjectSpec(target_kind, colours.pop(), float(rng.uniform(*target_kind.size)), target_xy, float(rng.uniform(-0.6, 0.6)))
    distractors = []
    for _ in range(int(rng.integers(1, 4))):
        k = graspable[int(rng.integers(len(graspable)))]
        xy = _free_xy(rng, taken, 0.05, ((0.35, 0.7), (-0.35, 0.35)))
        distractors.append(ObjectSpec(k, colours.pop(), float(rng.uniform(*k.size)), xy, float(rng.uniform(-1, 1))))

    obj, dest = target.name, destination.name if destination else ""
    if kind == "pick_place":
        template = PICK_PLACE_TEMPLATES[int(rng.integers(len(PICK_PLACE_TEMPLATES)))]
    elif kind == "pick_rotate_place":
        template = ROTATE_TEMPLATES[int(rng.integers(len(ROTATE_TEMPLATES)))]
    elif kind == "push":
        template = PUSH_TEMPLATES[int(rng.integers(len(PUSH_TEMPLATES)))]
    elif kind == "pull":
        template = PULL_TEMPLATES[int(rng.integers(len(PULL_TEMPLATES)))]
    else:
        template = PRESS_TEMPLATES[int(rng.integers(len(PRESS_TEMPLATES)))]
    instruction = template.format(obj=obj, dest=dest, direction=direction)

    pauses = tuple(
        point for point, chance in (("start", 0.3), ("before_grasp", 0.25), ("after_lift", 0.25)) if rng.random() < chance
    )
    angle = float(rng.uniform(-np.pi, np.pi))
    offset = float(rng.uniform(0.0, 0.06))
    return TaskSpec(
        index=index,
        kind=kind,
        instruction=instruction,
        target=target,
        distractors=tuple(distractors),
        destination=destination,
        direction=direction,
        failed_first_grasp=kind in ("pick_place", "pick_rotate_place") and rng.random() < 0.3,
        idle_pauses=pauses,
        speed=float(rng.uniform(0.16, 0.28)),
        approach_offset=(offset * np.cos(angle), offset * np.sin(angle)),
    )
