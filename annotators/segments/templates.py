"""Vision-agnostic instructions from templates (LA4VLA Appendix 7.3 instruction rules).

An instruction names the action type, the base-frame direction and, optionally,
the object status (HOLDING / EMPTY); never the object's identity or appearance.
Directions follow the paper's base-frame convention: +x forward, -x backward,
+y left, -y right, +z up, -z down.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# (negative word, positive word) per base-frame axis x, y, z
AXIS_WORDS: tuple[tuple[str, str], ...] = (("backward", "forward"), ("right", "left"), ("down", "up"))

TEMPLATES: dict[str, str] = {
    "grasp": "align with and grasp the object",
    "place": "place the object{where} and open the gripper to release it",
    "lift": "lift the object {direction} while holding it",
    "lower": "lower the object {direction} while holding it",
    "transport": "transport the object {direction} while holding it",
    "wrist_rotate": "rotate the held object {sense} around the wrist axis",
    "reorient": "reorient the {thing} {direction_or_pose}",
    "push": "push the object {direction} with the closed gripper",
    "pull": "pull the object {direction} toward the robot with the closed gripper",
    "press": "press down on the target with the closed gripper",
    "move": "move the gripper {direction}{target} while holding nothing",
    "rotate": "rotate the empty gripper {sense} around its axis",
    "wait": "keep the gripper still{status}",
}


def displacement_to_directions(displacement: Sequence[float], share: float = 0.5, min_m: float = 0.01) -> list[str]:
    """Base-frame xyz displacement (m) → direction words, largest axis first (e.g. ["forward", "down"])."""
    d = np.asarray(displacement, dtype=np.float64)[:3]
    magnitude = np.abs(d)
    if magnitude.size == 0 or magnitude.max() < min_m:
        return []
    order = np.argsort(-magnitude, kind="stable")
    return [AXIS_WORDS[i][int(d[i] > 0)] for i in order if magnitude[i] >= max(min_m, share * magnitude.max())]


def join_directions(words: Sequence[str]) -> str:
    return " and ".join(words)


def instruction_for(
    subaction: str,
    directions: Sequence[str] = (),
    *,
    holding: bool = False,
    sense: str = "",  # "clockwise" | "counterclockwise" for rotations about the tool axis
    target: str = "",  # " toward the object" for a move that ends in a grasp
) -> str:
    """The template instruction of one primitive."""
    if subaction not in TEMPLATES:
        raise ValueError(f"no instruction template for {subaction!r}; known: {sorted(TEMPLATES)}")
    words = list(directions)
    if subaction == "lift":
        words = ["upward"] + [w for w in words if w not in ("up", "down")]
    elif subaction == "lower":
        words = ["downward"] + [w for w in words if w not in ("up", "down")]
    direction = join_directions(words) or "in place"
    text = TEMPLATES[subaction].format(
        direction=direction,
        where=f" {direction}" if words and subaction == "place" else "",
        sense=sense,
        target=target,
        thing="held object" if holding else "empty gripper",
        direction_or_pose="toward the target orientation",
        status=" while holding the object" if holding else " while holding nothing",
    )
    return " ".join(text.split())
