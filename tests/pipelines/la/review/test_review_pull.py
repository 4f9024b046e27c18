"""Verdicts from a Label Studio export: averages, corrections, Krippendorff's alpha, retention."""

from __future__ import annotations

import pytest

from pipelines.la.review import labeling
from pipelines.la.review.pull import (
    VERDICT_SCHEMA,
    Judgement,
    majority_correction,
    quality_alpha,
    result_to_values,
    verdicts_from_export,
)


def choice(name: str, value: str) -> dict:
    return {"from_name": name, "to_name": "ext", "type": "choices", "value": {"choices": [value]}}


def text(name: str, value: str) -> dict:
    return {"from_name": name, "to_name": "ext", "type": "textarea", "value": {"text": [value]}}


def number(name: str, value: int) -> dict:
    return {"from_name": name, "to_name": "ext", "type": "number", "value": {"number": value}}


def annotation(by: int, quality: int, confidence: int | None = 2, *extra: dict, at: str = "t1", cancelled=False):
    result = [choice("quality", str(quality)), *extra]
    if confidence is not None:
        result.append(choice("confidence", str(confidence)))
    return {"completed_by": by, "result": result, "updated_at": at, "was_cancelled": cancelled}


def task(episode: str, index: int, *annotations: dict) -> dict:
    data = {"source_episode_id": episode, "segment_index": index, "subaction": "lift",
            "instruction": "lift it", "start": 0, "end": 10}
    return {"data": data, "annotations": list(annotations)}


@pytest.mark.parametrize(
    "result, expected",
    [
        ([], {}),
        ([choice("quality", "2")], {"quality": "2"}),
        ([text("instruction", "  ")], {}),  # a cleared text box is no opinion
        ([text("instruction", "push it")], {"instruction": "push it"}),
        ([number("start", 3), choice("subaction", "grasp")], {"start": 3, "subaction": "grasp"}),
    ],
)
def test_result_to_values_reads_each_control(result, expected):
    assert result_to_values(result) == expected


def judge(annotator: str, value, at: str, control: str = "subaction") -> Judgement:
    return Judgement("e", 0, annotator, 2, 2, {control: value} if value is not None else {}, at)


@pytest.mark.parametrize(
    "votes, expected",
    [
        ([], None),
        ([("a", None, "1")], None),  # nobody submitted a value
        ([("a", "lift", "1"), ("b", "lift", "2")], None),  # everyone kept the proposal
        ([("a", "grasp", "1"), ("b", "grasp", "2"), ("c", "lift", "3")], "grasp"),  # majority
        ([("a", "lift", "1"), ("b", "grasp", "2")], "grasp"),  # tie → latest
        ([("a", "grasp", "2"), ("b", "lift", "1")], "grasp"),  # tie → latest, whatever the order
        ([("a", "lower", "1"), ("b", "grasp", "2"), ("c", "lift", "3")], None),  # tie → latest is the proposal
    ],
)
def test_majority_correction_counts_only_changes_from_the_proposal(votes, expected):
    judgements = [judge(a, v, at) for a, v, at in votes]
    assert majority_correction(judgements, "subaction", "lift") == expected


def q(annotator: str, episode: str, quality: int) -> Judgement:
    return Judgement(episode, 0, annotator, quality, None, {}, "t")


@pytest.mark.parametrize(
    "judgements, expected",
    [
        ([], None),
        ([q("a", "t1", 3)], None),  # no task with two annotations
        ([q("a", "t1", 2), q("b", "t1", 2), q("a", "t2", 2), q("b", "t2", 2)], None),  # one value: undefined
        # Hand-computed (interval): pooled 3,2,1,2,2,2; Do = 4/6, De = 24/30 → 1 - (4/6)/(24/30) = 1/6.
        ([q("a", "t1", 3), q("b", "t1", 2), q("a", "t2", 1), q("b", "t2", 2), q("a", "t3", 2), q("b", "t3", 2),
          q("a", "t4", 0)], 1 / 6),
        ([q("a", "t1", 3), q("b", "t1", 3), q("a", "t2", 0), q("b", "t2", 0)], 1.0),
    ],
)
def test_quality_alpha_matches_hand_computed_values(judgements, expected):
    alpha = quality_alpha(judgements)
    assert alpha == expected if expected is None else alpha == pytest.approx(expected)


def test_empty_export_gives_an_empty_verdict_table():
    verdicts, metrics = verdicts_from_export([], quality_keep=2.0)
    assert verdicts.schema == VERDICT_SCHEMA and verdicts.num_rows == 0
    assert metrics["reviewed"] == 0 and metrics["retention"] is None and metrics["krippendorff_alpha"] is None


def test_verdicts_average_annotators_and_skip_cancelled_and_unannotated_tasks():
    export = [
        task("e1", 0, annotation(1, 3, 2, at="1"), annotation(2, 2, 1, choice("subaction", "grasp"), at="2")),
        task("e1", 1, annotation(1, 1, 1), annotation(2, 2, None)),
        task("e2", 0, annotation(1, 2, 2, text("instruction", "lift the cup")), annotation(2, 0, 0, cancelled=True)),
        task("e2", 1),
    ]
    verdicts, metrics = verdicts_from_export(export, quality_keep=2.0)
    rows = {(r["source_episode_id"], r["segment_index"]): r for r in verdicts.to_pylist()}
    assert set(rows) == {("e1", 0), ("e1", 1), ("e2", 0)}
    assert rows[("e1", 0)] == {
        "source_episode_id": "e1", "segment_index": 0, "quality": 2.5, "confidence": 1.5, "num_annotators": 2,
        "corrected_subaction": "grasp", "corrected_instruction": None, "corrected_start": None, "corrected_end": None,
    }
    assert rows[("e1", 1)]["quality"] == 1.5 and rows[("e1", 1)]["confidence"] == 1.0
    assert rows[("e2", 0)]["num_annotators"] == 1 and rows[("e2", 0)]["corrected_instruction"] == "lift the cup"
    expected = {"candidates": 4, "reviewed": 3, "kept": 2, "retention": 2 / 3, "multi_annotated": 2,
                "annotations": 5, "per_annotator": {"user-1": 3, "user-2": 2}}
    assert {k: metrics[k] for k in expected} == expected
    assert metrics["corrected"] == {labeling.SUBACTION: 1, labeling.INSTRUCTION: 1, labeling.START: 0, labeling.END: 0}


def test_boundaries_set_on_the_player_come_back_in_source_frames():
    """A clip starting at source frame 15: the player's frames 1.. are source frames 15..; a task without
    clip_start (a state plot, or a project pushed before clips had context) holds source frames already."""
    with_clip = task("e0", 0, annotation(1, 2, 2, number("start", 4), number("end", 8)))
    with_clip["data"].update(start=20, end=30, clip_start=15)  # the proposal on the player: frames 6-15
    untouched = task("e1", 0, annotation(1, 2, 2, number("start", 5), number("end", 10)))
    unchanged_on_player = task("e2", 0, annotation(1, 2, 2, number("start", 6), number("end", 15)))
    unchanged_on_player["data"].update(start=20, end=30, clip_start=15)
    verdicts, _ = verdicts_from_export([with_clip, untouched, unchanged_on_player], quality_keep=2.0)
    rows = {r["source_episode_id"]: r for r in verdicts.to_pylist()}
    assert (rows["e0"]["corrected_start"], rows["e0"]["corrected_end"]) == (18, 23)
    assert (rows["e1"]["corrected_start"], rows["e1"]["corrected_end"]) == (5, None)  # proposal [0, 10)
    assert (rows["e2"]["corrected_start"], rows["e2"]["corrected_end"]) == (None, None)
