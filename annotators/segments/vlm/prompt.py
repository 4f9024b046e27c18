"""The segmentation prompt of LA4VLA Appendix 7.3, as OpenAI chat messages (text + JPEG data URLs)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from annotators.segments.base import VOCABULARY

SYSTEM_PROMPT = (
    "You segment robot manipulation demonstrations into short atomic actions for a "
    "language-action dataset. Reason jointly over all camera views and the robot-state "
    "events you are given. Answer with JSON only."
)

# Table 8 of la4vla.txt, with the base-frame direction convention of Appendix 7.5.
PRIMITIVE_DEFINITIONS: dict[str, str] = {
    "grasp": "align with a target object and close the gripper to establish a grasp (EMPTY → HOLDING)",
    "place": "move a held object to a target pose or support region and open the gripper (HOLDING → EMPTY)",
    "lift": "move a held object primarily upward (+z)",
    "lower": "move a held object primarily downward (−z)",
    "transport": "move a held object in the horizontal plane (forward/backward/left/right)",
    "wrist_rotate": "rotate a held object around the tool axis (clockwise or counterclockwise)",
    "reorient": "adjust the orientation of a held object, or of the empty gripper, toward a target state "
                "(upright, flat, vertical, horizontal)",
    "push": "contact-based motion that moves an object away from the end effector",
    "pull": "contact-based motion that moves an object toward the end effector",
    "press": "downward contact force that activates or depresses a target",
    "move": "move the empty gripper in free space (forward/backward/left/right/up/down)",
    "rotate": "rotate the empty gripper in free space around its axis",
    "wait": "the robot stays still; no meaningful motion",
}

CATEGORY_RULES = """\
Category rules:
- Object status: HOLDING when the gripper holds an object, EMPTY otherwise. lift, lower, transport,
  wrist_rotate and place need HOLDING; move and rotate need EMPTY; grasp goes from EMPTY to HOLDING.
- Directions are in the robot base frame: forward/backward (±x), left/right (±y), up/down (±z).
- Dominant primitive: give each segment ONE label, the primary physical effect. Secondary effects may
  appear in the instruction ("transport the object left while keeping it upright"; a short alignment
  before closing the gripper belongs to grasp: "align with and grasp the object").
- Each segment covers one short contiguous interval of one task phase, shows an observable change
  (gripper status, object pose, end-effector pose or contact), and its instruction must be inferable
  from the trajectory.
- Instructions are vision-agnostic: action type, direction, optional object status. Never name the
  object's identity, colour, material, or the scene ("lift the object upward while holding it",
  not "lift the red cup off the wooden table").
- Keyframe events are soft hints: gripper_close usually ends a grasp, gripper_open usually ends a
  place, static events often sit at alignment or phase changes. Trust the frames when they disagree."""

DECOMPOSITION_EXAMPLES = """\
Decomposition examples (granularity):
- "put the cup on the plate" → move, grasp, lift, transport, lower, place
  (grasp and place are short gripper actions; transport is a long held motion).
- "open the drawer" → move, grasp, pull, place.
- "turn the bottle upright and put it down" → move, grasp, lift, reorient, lower, place (composite task).
- "press the button" → move, press, move."""

OUTPUT_SCHEMA = """\
Output: a JSON list, in time order, covering the whole time range given below without gaps:
[{"subaction": "<one of the vocabulary>", "instruction": "<vision-agnostic instruction>",
  "start": <seconds, float>, "end": <seconds, float>}]
Example: [{"subaction": "lift", "instruction": "lift the object upward while holding it",
  "start": 3.50, "end": 5.00}]
Times are seconds from the start of the episode, as printed on the frames. Output nothing but the JSON."""

DESCRIBE_PROMPT = (
    "First, OBSERVE only. Describe in time order what the robot physically does in these frames "
    "(approaches, contacts, gripper closing/opening, object motion), each event with approximate "
    "times in seconds as printed on the frames, e.g. \"0.0-1.4s: the gripper moves forward and down\". "
    "Do not invent steps the frames do not show. Answer as JSON: {\"description\": \"...\"}"
)

PROPOSAL_RULE = (
    "- A kinematic proposal, when given, comes from robot state alone (speeds and gripper): keep its "
    "boundaries where the frames agree, move, split or merge them where they do not, and give every "
    "segment its label and instruction.")

_HINT_TIME = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*s")


@dataclass(frozen=True)
class SheetImage:
    """One contact sheet of one camera: its JPEG data URL and the times of its tiles."""

    camera: str
    view: str
    data_url: str
    times_s: tuple[float, ...]
    width: int
    height: int


def hints_in_range(hints: Sequence[str], t0: float, t1: float, tolerance_s: float) -> list[str]:
    """Keyframe hints ("1.20s: static") whose time lies in [t0 - tol, t1 + tol]; unparsable ones stay."""
    kept = []
    for hint in hints:
        m = _HINT_TIME.match(hint)
        if m is None or t0 - tolerance_s <= float(m.group(1)) <= t1 + tolerance_s:
            kept.append(hint)
    return kept


def _image_parts(sheets: Sequence[SheetImage]) -> list[dict]:
    parts: list[dict] = []
    for s in sheets:
        times = ", ".join(f"{t:.2f}s" for t in s.times_s)
        parts.append({"type": "text", "text": f"View '{s.view}' (camera {s.camera}), frames left to right, "
                                              f"top to bottom at {times}:"})
        parts.append({"type": "image_url", "image_url": {"url": s.data_url}})
    return parts


def fixed_instructions(*, proposal_rule: bool = False) -> str:
    """The part of the segmentation prompt that is the same for every request (prefix-first layout)."""
    definitions = "\n".join(f"- {name}: {text}" for name, text in PRIMITIVE_DEFINITIONS.items())
    rules = CATEGORY_RULES + ("\n" + PROPOSAL_RULE if proposal_rule else "")
    return (f"{SYSTEM_PROMPT}\n\nAction vocabulary: {', '.join(VOCABULARY)}.\nObject-status tags: HOLDING, EMPTY.\n\n"
            f"Primitive definitions:\n{definitions}\n\n{rules}\n\n{DECOMPOSITION_EXAMPLES}\n\n{OUTPUT_SCHEMA}")


def proposal_lines(proposal: Sequence[tuple[float, float, str]]) -> str:
    """(start s, end s, label) segments → "0.00-1.20 move" lines."""
    return "\n".join(f"{a:.2f}-{b:.2f} {label}" for a, b, label in proposal)


def segmentation_messages(
    *,
    task: str,
    sheets: Sequence[SheetImage],
    hints: Sequence[str],
    t0: float,
    t1: float,
    duration_s: float,
    description: str | None = None,
    prefix_first: bool = False,
    proposal: Sequence[tuple[float, float, str]] | None = None,
) -> list[dict]:
    """Chat messages asking for the atomic segments of [t0, t1] s of an episode.

    `prefix_first`: the fixed instructions (fixed_instructions()) make the whole system message and
    the user message holds only what changes (task, frames, cues, time range), with the frame times
    listed once for all cameras. `proposal`: the kinematic segments in range, given as a cue.
    """
    if prefix_first:
        return _prefix_first_messages(task=task, sheets=sheets, hints=hints, t0=t0, t1=t1, duration_s=duration_s,
                                      description=description, proposal=proposal)
    vocabulary = ", ".join(VOCABULARY)
    definitions = "\n".join(f"- {name}: {text}" for name, text in PRIMITIVE_DEFINITIONS.items())
    cues = "\n".join(f"- {h}" for h in hints) if hints else "- (none detected)"
    if proposal is not None:
        cues += f"\n\nKinematic proposal (robot state only; confirm or correct, then name):\n{proposal_lines(proposal)}"
    parts: list[dict] = [{"type": "text", "text": (
        f"Task description: {task}\n"
        f"The episode lasts {duration_s:.2f}s. You see the part from {t0:.2f}s to {t1:.2f}s "
        f"from every camera, as timestamped contact sheets.")}]
    parts += _image_parts(sheets)
    text = (
        f"Keyframe cues (robot-state events, soft hints):\n{cues}\n\n"
        f"Action vocabulary: {vocabulary}.\nObject-status tags: HOLDING, EMPTY.\n\n"
        f"Primitive definitions:\n{definitions}\n\n{CATEGORY_RULES}\n\n{DECOMPOSITION_EXAMPLES}\n\n"
    )
    if description:
        text += f"Your earlier observation of these frames:\n{description}\n\n"
    text += f"{OUTPUT_SCHEMA}\nTime range to cover: start {t0:.2f}, end {t1:.2f}."
    parts.append({"type": "text", "text": text})
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": parts}]


def _prefix_first_messages(*, task: str, sheets: Sequence[SheetImage], hints: Sequence[str], t0: float, t1: float,
                           duration_s: float, description: str | None,
                           proposal: Sequence[tuple[float, float, str]] | None) -> list[dict]:
    times = sorted({t for s in sheets for t in s.times_s})
    parts: list[dict] = [{"type": "text", "text": (
        f"Task description: {task}\n"
        f"The episode lasts {duration_s:.2f}s. You see {t0:.2f}s to {t1:.2f}s from every camera as contact sheets, "
        f"frames left to right, top to bottom, at (s, also printed on each frame; the same for every camera): "
        + ", ".join(f"{t:.2f}" for t in times))}]
    counts: dict[str, int] = {}
    for s in sheets:
        counts[s.camera] = counts.get(s.camera, 0) + 1
    seen: dict[str, int] = {}
    for s in sheets:
        seen[s.camera] = seen.get(s.camera, 0) + 1
        label = f"View '{s.view}' (camera {s.camera})"
        if counts[s.camera] > 1:
            label += f", sheet {seen[s.camera]}/{counts[s.camera]}, {s.times_s[0]:.2f}-{s.times_s[-1]:.2f}s"
        parts.append({"type": "text", "text": label + ":"})
        parts.append({"type": "image_url", "image_url": {"url": s.data_url}})
    text = "Keyframe cues (robot-state events, soft hints):\n" + (
        "\n".join(f"- {h}" for h in hints) if hints else "- (none detected)")
    if proposal is not None:
        text += f"\n\nKinematic proposal:\n{proposal_lines(proposal)}"
    if description:
        text += f"\n\nYour earlier observation of these frames:\n{description}"
    text += f"\n\nTime range to cover: start {t0:.2f}, end {t1:.2f}."
    parts.append({"type": "text", "text": text})
    return [{"role": "system", "content": fixed_instructions(proposal_rule=proposal is not None)},
            {"role": "user", "content": parts}]


def description_messages(*, task: str, sheets: Sequence[SheetImage], t0: float, t1: float) -> list[dict]:
    """Chat messages of the optional describe-first grounding pass."""
    parts: list[dict] = [{"type": "text", "text": (
        f"The robot was asked to: {task}\nYou see {t0:.2f}s to {t1:.2f}s of the demonstration "
        f"from every camera, as timestamped contact sheets.")}]
    parts += _image_parts(sheets)
    parts.append({"type": "text", "text": DESCRIBE_PROMPT})
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": parts}]


def retry_messages(messages: list[dict], bad_answer: str, problem: str, t0: float, t1: float) -> list[dict]:
    """The conversation extended with the invalid answer and what was wrong with it."""
    return messages + [
        {"role": "assistant", "content": bad_answer},
        {"role": "user", "content": (
            f"That answer was invalid: {problem}. Reply again with only the JSON list, using the "
            f"vocabulary, in time order, covering {t0:.2f} to {t1:.2f} seconds without gaps.")},
    ]
