"""Review of a source without cameras: its state-plot tasks go through pull and apply like clip tasks.

No server: the export is what Label Studio returns for the task JSON once verifiers have scored it,
each annotation keeping the prefilled proposal (the task's prediction) unless a test changes it.
"""

from __future__ import annotations

import copy
import json
import shutil

import pyarrow.parquet as pq

from datasets_cards.constants import REVIEW_DIR
from datasets_cards.manifest import Manifest
from pipelines.la.review import labeling
from pipelines.la.review.apply import apply_verdicts, publish
from pipelines.la.review.pull import verdicts_from_export
from pipelines.la.review.push import TASKS_FILE


def scored(task: dict, quality: int, confidence: int, **changes) -> dict:
    """An annotation on `task`: the prefilled proposal with `changes` applied, plus the two scores."""
    result = copy.deepcopy(task["predictions"][0]["result"])
    for item in result:
        if item["from_name"] == labeling.SUBACTION and labeling.SUBACTION in changes:
            item["value"] = {"choices": [changes[labeling.SUBACTION]]}
    to_name = result[0]["to_name"]
    result += [{"from_name": name, "to_name": to_name, "type": "choices", "value": {"choices": [str(score)]}}
               for name, score in ((labeling.QUALITY, quality), (labeling.CONFIDENCE, confidence))]
    return {"completed_by": 1, "result": result, "updated_at": "2025-01-01T00:00:00Z", "was_cancelled": False}


def test_pull_and_apply_keep_the_accepted_segments_of_state_plot_tasks(state_only_run, tmp_path):
    target = tmp_path / "la" / state_only_run.target.name
    shutil.copytree(state_only_run.target, target)  # the run is shared: review a copy
    tasks = json.loads((target / REVIEW_DIR / TASKS_FILE).read_text())
    first = tasks[0]
    new_label = next(v for v in ("grasp", "lift", "place") if v != first["data"]["subaction"])
    export = []
    for i, task in enumerate(tasks):  # even tasks accepted (the first relabelled), odd ones rejected
        annotation = scored(task, 3, 2, subaction=new_label) if i == 0 else scored(task, 3 if i % 2 == 0 else 1, 1)
        export.append({"id": i + 1, "data": task["data"], "annotations": [annotation]})

    verdicts, metrics = verdicts_from_export(export, quality_keep=2.0)
    accepted = {t["data"]["key"] for i, t in enumerate(tasks) if i % 2 == 0}
    assert (metrics["reviewed"], metrics["kept"]) == (len(tasks), len(accepted))
    assert metrics["corrected"] == {labeling.SUBACTION: 1, labeling.INSTRUCTION: 0, labeling.START: 0, labeling.END: 0}

    applied = apply_verdicts(str(target), verdicts)
    manifest = Manifest.load(str(target))
    kept = {f"{r['source_episode_id']}#{r['segment_index']}": r
            for s in manifest.current_shards for r in pq.read_table(target / s.path).to_pylist()}
    assert applied["kept"] == len(kept) and set(kept) == accepted
    assert all(r["verified"] and r["quality"] == 3.0 for r in kept.values())
    assert kept[first["data"]["key"]]["subaction"] == new_label
    assert publish(str(target))["episodes"] == len(accepted)
    card = (target / "card.md").read_text()
    assert "Human verification" in card and "state plot of each" in card
