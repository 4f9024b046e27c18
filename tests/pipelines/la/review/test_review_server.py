"""End to end against a real Label Studio: push twice, serve a clip, two verifiers, pull, apply.

Annotations (A = the admin, B = a second verifier), proposals grasp/lift:
  ep0#0  A 3 (keeps grasp), B 2 (says lower)  → 2.5 kept, subaction tie → latest (B): lower
  ep0#1  A 1, B 2                              → 1.5 dropped
  ep1#0  A 2, B 2, both rewrite the instruction → 2.0 kept, instruction corrected
  ep1#1  A 0                                   → 0.0 dropped
  ep2    not reviewed
Krippendorff's alpha (interval) over the three double-annotated tasks, by hand:
pooled 3,2,1,2,2,2 → Do = 4/6, De = 24/30, alpha = 1 - (4/6)/(24/30) = 1/6.
"""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from datasets_cards.constants import REVIEW_DIR
from datasets_cards.manifest import Manifest
from pipelines.la.review import labeling
from pipelines.la.review.flow import review
from pipelines.la.review.pull import METRICS_FILE, VERDICTS_FILE
from pipelines.la.review.push import PROJECT_FILE, push_candidates
from pipelines.labelstudio.client import LabelStudioClient
from tests.pipelines.la.review.conftest import SOURCE, write_la_run

pytestmark = pytest.mark.server

NEW_INSTRUCTION = "grasp the block from above"


def verified_rows(out_dir) -> list[dict]:
    """The rows of the generation the manifest has in force (the review's verified shards)."""
    manifest = Manifest.load(str(out_dir))
    assert manifest.generation == 1
    return [r for s in manifest.current_shards for r in pq.read_table(out_dir / s.path).to_pylist()]


def result(quality: int, confidence: int, to_name: str = "static", **values) -> list[dict]:
    kinds = {labeling.SUBACTION: ("choices", lambda v: {"choices": [v]}),
             labeling.INSTRUCTION: ("textarea", lambda v: {"text": [v]})}
    items = [("quality", "choices", {"choices": [str(quality)]}), ("confidence", "choices", {"choices": [str(confidence)]})]
    items += [(name, kinds[name][0], kinds[name][1](v)) for name, v in values.items()]
    return [{"from_name": n, "to_name": to_name, "type": t, "value": v} for n, t, v in items]


def test_push_annotate_pull_keeps_the_segments_verifiers_accept(label_studio, tmp_path, monkeypatch):
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", label_studio.token)  # the review flow takes no token parameter
    run = write_la_run(label_studio.document_root / tmp_path.name)
    ep0, ep1, _ = run.episode_ids
    client = LabelStudioClient(label_studio.url, label_studio.token)
    docroot = str(label_studio.document_root)

    first = push_candidates(str(run.out_dir), client, document_root=docroot)
    second = push_candidates(str(run.out_dir), client, document_root=docroot)
    assert (first.created, first.existing) == (6, 0)
    assert (second.created, second.existing, second.project_id) == (0, 6, first.project_id)
    tasks = {t["data"]["key"]: t for t in client.export(first.project_id)}
    assert len(tasks) == 6 and json.loads((run.out_dir / REVIEW_DIR / PROJECT_FILE).read_text())["id"] == first.project_id

    clip_url = tasks[f"{ep0}#0"]["data"][labeling.video_key("static")]
    served = client.get(clip_url)
    on_disk = label_studio.document_root / clip_url.split("?d=", 1)[1]
    assert served.status_code == 200 and served.headers["content-type"] == "video/mp4"
    assert served.content == on_disk.read_bytes()

    verifier_b = client.create_user("verifier-b@example.com")["id"]
    for key, a, b in [
        (f"{ep0}#0", result(3, 2, subaction="grasp"), result(2, 1, subaction="lower")),
        (f"{ep0}#1", result(1, 1), result(2, 2)),
        (f"{ep1}#0", result(2, 2, instruction=NEW_INSTRUCTION), result(2, 2, instruction=NEW_INSTRUCTION)),
        (f"{ep1}#1", result(0, 2), None),
    ]:
        client.create_annotation(tasks[key]["id"], a)
        if b is not None:
            client.create_annotation(tasks[key]["id"], b, completed_by=verifier_b)

    metrics = review(source=SOURCE, out=str(run.out), url=label_studio.url)

    assert metrics["krippendorff_alpha"] == pytest.approx(1 / 6)
    assert (metrics["reviewed"], metrics["kept"], metrics["retention"]) == (4, 2, 0.5)
    assert metrics["per_annotator"] == {"admin@example.com": 4, "verifier-b@example.com": 3}
    verdicts = pq.read_table(run.out_dir / REVIEW_DIR / VERDICTS_FILE).to_pylist()
    assert [(v["source_episode_id"], v["segment_index"], v["quality"], v["num_annotators"]) for v in verdicts] == [
        (ep0, 0, 2.5, 2), (ep0, 1, 1.5, 2), (ep1, 0, 2.0, 2), (ep1, 1, 0.0, 1),
    ]
    assert json.loads((run.out_dir / REVIEW_DIR / METRICS_FILE).read_text())["kept"] == 2

    kept = verified_rows(run.out_dir)
    assert len(pq.read_table(run.out_dir / "shards")) == 6  # the candidates stay as annotated
    assert [(r["source_episode_id"], r["segment_index"], r["subaction"], r["instruction"], r["verified"])
            for r in kept] == [(ep0, 0, "lower", "grasp the object", True), (ep1, 0, "grasp", NEW_INSTRUCTION, True)]
    assert "Krippendorff" in (run.out_dir / "card.md").read_text()


def test_annotate_on_the_sample_pushes_its_candidates_and_review_keeps_what_two_verifiers_accept(
    label_studio, tmp_path, monkeypatch
):
    """`make annotate DATASET=sample-droid` with LABEL_STUDIO_URL set, two verifiers, `make review`."""
    import krippendorff
    import numpy as np

    from pipelines.flows.annotate import annotate
    from pipelines.sample.ground_truth import DEFAULT_DATA_DIR, GROUND_TRUTH_DIR

    if not (DEFAULT_DATA_DIR / "droid" / GROUND_TRUTH_DIR / "episodes.parquet").exists():
        pytest.skip("no generated sample: run `make sample-data`")
    pytest.importorskip("tensorflow_datasets", reason="reading RLDS needs the `tfds` extra")
    monkeypatch.setenv("LABEL_STUDIO_URL", label_studio.url)
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", label_studio.token)
    monkeypatch.setenv("LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT", str(label_studio.document_root))
    out = label_studio.document_root / f"sample-{tmp_path.name}"
    manifest = annotate(source="sample-droid", pipeline="la", out=str(out), limit=2, options={"plots": 0})
    assert manifest.stats["review"].startswith(f"{manifest.rows} new review tasks")

    client = LabelStudioClient(label_studio.url, label_studio.token)
    project = json.loads((out / "la" / "sample-droid" / REVIEW_DIR / PROJECT_FILE).read_text())
    tasks = sorted(client.export(project["id"]), key=lambda t: (t["data"]["source_episode_id"], t["data"]["segment_index"]))
    assert len(tasks) == manifest.rows
    for task in tasks:  # an exterior and a wrist clip of the segment, and the proposal prefilled
        assert {labeling.video_key("exterior_1_left"), labeling.video_key("wrist_left")} <= set(task["data"])
        predictions = client.get("/api/predictions", task=task["id"]).json()
        proposed = {r["from_name"]: r["value"] for r in predictions[0]["result"]}
        assert proposed[labeling.SUBACTION] == {"choices": [task["data"]["subaction"]]}
    served = client.get(tasks[0]["data"][labeling.video_key("wrist_left")])
    assert served.status_code == 200 and served.headers["content-type"] == "video/mp4"

    verifier_b = client.create_user(f"b-{tmp_path.name}@example.com")["id"]
    a_scores = [(3, 1, 2)[i % 3] for i in range(len(tasks))]
    b_scores = [(2, 2, 1, 3)[i % 4] for i in range(len(tasks))]
    for task, a, b in zip(tasks, a_scores, b_scores):
        client.create_annotation(task["id"], result(a, 2))
        client.create_annotation(task["id"], result(b, 1), completed_by=verifier_b)

    metrics = review(source="sample-droid", out=str(out), url=label_studio.url)

    accepted = [t["data"]["key"] for t, a, b in zip(tasks, a_scores, b_scores) if (a + b) / 2 >= 2]
    expected_alpha = krippendorff.alpha(reliability_data=np.array([a_scores, b_scores], dtype=float),
                                        level_of_measurement="interval")
    assert (metrics["reviewed"], metrics["kept"]) == (len(tasks), len(accepted))
    assert metrics["krippendorff_alpha"] == pytest.approx(expected_alpha, abs=1e-3)
    kept = verified_rows(out / "la" / "sample-droid")
    assert sorted(f"{r['source_episode_id']}#{r['segment_index']}" for r in kept) == sorted(accepted)
    assert all(r["verified"] for r in kept)


def test_a_source_without_cameras_is_pushed_with_state_plots_and_reviewed(label_studio, tmp_path, monkeypatch):
    """`make annotate` on a state-only card with LABEL_STUDIO_URL set: the server takes the <Image> config and
    serves the plots; scores given on them go through `make review` like clip tasks."""
    from pipelines.flows.annotate import annotate
    from tests.pipelines.la.conftest import STATE_ONLY_SOURCE, synthetic_format, write_state_only_card

    monkeypatch.setenv("LABEL_STUDIO_URL", label_studio.url)
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", label_studio.token)
    monkeypatch.setenv("LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT", str(label_studio.document_root))
    out = label_studio.document_root / f"state-only-{tmp_path.name}"
    card = write_state_only_card(tmp_path)
    with synthetic_format():
        manifest = annotate(source=card, pipeline="la", out=str(out), options={"plots": 0})
    assert manifest.stats["review"].startswith(f"{manifest.rows} new review tasks")

    client = LabelStudioClient(label_studio.url, label_studio.token)
    target = out / "la" / STATE_ONLY_SOURCE
    project = json.loads((target / REVIEW_DIR / PROJECT_FILE).read_text())
    tasks = sorted(client.export(project["id"]), key=lambda t: t["data"]["key"])
    assert len(tasks) == manifest.rows and not [k for t in tasks for k in t["data"] if k.startswith("video_")]
    served = client.get(tasks[0]["data"][labeling.STATE_PLOT])
    assert served.status_code == 200 and served.headers["content-type"] == "image/png"
    for i, task in enumerate(tasks):  # even tasks accepted, odd ones rejected
        client.create_annotation(task["id"], result(3 if i % 2 == 0 else 1, 2, to_name=labeling.STATE_PLOT))

    with synthetic_format():
        metrics = review(source=card, out=str(out), url=label_studio.url)

    assert (metrics["reviewed"], metrics["kept"]) == (len(tasks), len(tasks[::2]))
    kept = verified_rows(target)
    assert sorted(f"{r['source_episode_id']}#{r['segment_index']}" for r in kept) == [t["data"]["key"] for t in tasks[::2]]
