"""Parsing, validation and stitching of VLM answers."""

from __future__ import annotations

import json

import pytest

from annotators.segments.base import VOCABULARY
from annotators.segments.vlm.prompt import PRIMITIVE_DEFINITIONS, hints_in_range
from annotators.segments.vlm.schema import (
    InvalidOutput,
    SegmentProposal,
    TimedLabel,
    cover_to_segments,
    proposals_to_cover,
    stitch_covers,
    text_to_proposals,
)


def seg(subaction: str, start: float, end: float) -> dict:
    return {"subaction": subaction, "instruction": f"{subaction} it", "start": start, "end": end}


def props(*items: tuple[str, float, float]) -> list[SegmentProposal]:
    return [SegmentProposal(**seg(*i)) for i in items]


def test_prompt_defines_every_primitive_of_the_vocabulary_in_order() -> None:
    assert tuple(PRIMITIVE_DEFINITIONS) == VOCABULARY


@pytest.mark.parametrize(("text", "reason"), [
    ("", "vlm_invalid_json"),
    ("[{", "vlm_invalid_json"),
    ("I cannot see the robot in these frames.", "vlm_invalid_json"),
    ("<think>[1, 2]</think>", "vlm_invalid_json"),  # JSON only inside the reasoning is no answer
    ("[]", "vlm_invalid_schema"),
    ('{"answer": 1}', "vlm_invalid_schema"),
    (json.dumps([seg("fly", 0, 1)]), "vlm_invalid_schema"),
    (json.dumps([seg("move", 2, 1)]), "vlm_invalid_schema"),
    (json.dumps([seg("move", -1, 1)]), "vlm_invalid_schema"),
    (json.dumps([{"subaction": "move", "start": 0, "end": 1}]), "vlm_invalid_schema"),
])
def test_unusable_text_is_rejected_with_a_reason(text: str, reason: str) -> None:
    with pytest.raises(InvalidOutput) as err:
        text_to_proposals(text)
    assert err.value.reason == reason


@pytest.mark.parametrize(("text", "expected"), [
    (json.dumps([seg("lift", 1, 2), seg("grasp", 0, 1)]), [("grasp", 0, 1), ("lift", 1, 2)]),
    ("```json\n" + json.dumps([seg("move", 0, 1)]) + "\n```", [("move", 0, 1)]),
    (json.dumps({"segments": [seg("Release", 0, 1)]}), [("place", 0, 1)]),
    (json.dumps([seg("rotate_free", 0, 1)]), [("rotate", 0, 1)]),
    ("Here are the segments:\n```json\n" + json.dumps([seg("move", 0, 1)]) + "\n```\nDone.", [("move", 0, 1)]),
    ("Segments: " + json.dumps([seg("move", 0, 1)]) + " (times in seconds)", [("move", 0, 1)]),
    ("<think>the gripper [probably] closes at 1s</think>\n" + json.dumps([seg("grasp", 0, 1)]), [("grasp", 0, 1)]),
])
def test_fences_wrappers_prose_aliases_and_order_are_normalised(text: str, expected: list) -> None:
    assert [(p.subaction, p.start, p.end) for p in text_to_proposals(text)] == expected


@pytest.mark.parametrize(("items", "reason"), [
    ([("move", 1.5, 4.0)], "vlm_out_of_range"),
    ([("move", 0.0, 2.5)], "vlm_out_of_range"),
    ([("move", 0.0, 2.0), ("lift", 2.0, 5.5)], "vlm_out_of_range"),
    ([("move", 0.0, 1.0), ("lift", 2.5, 4.0)], "vlm_gap"),
    ([("move", 0.0, 3.0), ("lift", 1.5, 4.0)], "vlm_gap"),
])
def test_cover_rejects_out_of_range_and_large_gaps(items: list, reason: str) -> None:
    with pytest.raises(InvalidOutput) as err:
        proposals_to_cover(props(*items), 0.0, 4.0, tolerance_s=1.0)
    assert err.value.reason == reason


def test_cover_snaps_small_gaps_and_ends_to_the_window() -> None:
    cover = proposals_to_cover(props(("move", 0.3, 1.0), ("grasp", 1.4, 2.0), ("lift", 1.8, 3.6)), 0.0, 4.0, 1.0)
    assert [(c.subaction, c.start_s, c.end_s) for c in cover] == [
        ("move", 0.0, 1.2), ("grasp", 1.2, 1.9), ("lift", 1.9, 4.0)]


def tl(subaction: str, a: float, b: float) -> TimedLabel:
    return TimedLabel(a, b, subaction, subaction)


@pytest.mark.parametrize(("covers", "expected"), [
    ([], []),
    ([[tl("move", 0, 10)]], [("move", 0, 10)]),
    # overlap 8-10, a boundary of window 1 at 9 lies inside it: cut there
    ([[tl("move", 0, 9), tl("grasp", 9, 10)], [tl("grasp", 8, 12), tl("lift", 12, 18)]],
     [("move", 0, 9), ("grasp", 9, 12), ("lift", 12, 18)]),
    # no boundary inside the overlap: cut at its middle
    ([[tl("move", 0, 10)], [tl("lift", 8, 18)]], [("move", 0, 9), ("lift", 9, 18)]),
])
def test_stitching_windows_gives_one_contiguous_cover(covers: list, expected: list) -> None:
    assert [(s.subaction, s.start_s, s.end_s) for s in stitch_covers(covers)] == expected


@pytest.mark.parametrize(("cover", "num_frames", "expected"), [
    ([], 10, []),
    ([tl("move", 0, 1)], 15, [(0, 15, "move")]),
    ([tl("move", 0, 1), tl("grasp", 1, 2)], 30, [(0, 15, "move"), (15, 30, "grasp")]),
    # the 1-frame grasp merges into move; a short first segment merges into the next
    ([tl("move", 0, 1), tl("grasp", 1, 1.07), tl("lift", 1.07, 2)], 30, [(0, 16, "move"), (16, 30, "lift")]),
    ([tl("move", 0, 0.1), tl("lift", 0.1, 2)], 30, [(0, 30, "lift")]),
])
def test_cover_to_segments_snaps_to_frames_and_merges_short_segments(cover: list, num_frames: int,
                                                                     expected: list) -> None:
    segments = cover_to_segments(cover, num_frames, 15.0, min_segment_frames=3)
    assert [(s.start, s.end, s.subaction) for s in segments] == expected
    assert all(s.segmenter == "vlm" for s in segments)


@pytest.mark.parametrize(("hints", "expected"), [
    ((), []),
    (("0.50s: static", "5.00s: gripper_close", "9.90s: gripper_open", "odd hint"),
     ["5.00s: gripper_close", "9.90s: gripper_open", "odd hint"]),
])
def test_hints_outside_the_window_are_dropped(hints: tuple, expected: list) -> None:
    assert hints_in_range(hints, 4.0, 9.0, tolerance_s=1.0) == expected
