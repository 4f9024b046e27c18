"""The review flow: Label Studio verdicts → the verified la dataset (`make review DATASET=droid`).

Phases:
1. push     (optional) import candidates the run's project does not hold yet;
2. fetch    export every task of the project with its annotations;
3. score    per-task mean quality / confidence, corrections, Krippendorff's alpha,
            retention; saved under OUT/la/<source>/review/ with the raw export;
4. apply    write the kept segments as a new manifest generation beside the candidates
            (pipelines.la.review.apply; the candidates are never rewritten);
5. publish  LeRobot layouts and card.md from the new generation (retried);
6. report   merge the agreement numbers into the manifest and re-render card.md.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from datasets_cards import load_output_card, load_source_card
from datasets_cards.constants import REVIEW_DIR, output_dir
from datasets_cards.manifest import Manifest
from pipelines.card import stats_table, write_cards
from pipelines.io import read_text
from pipelines.io.lease import OutputLease
from pipelines.la.review.apply import apply_verdicts, publish
from pipelines.la.review.pull import save_review, verdicts_from_export
from pipelines.la.review.push import (
    PROJECT_FILE,
    load_run,
    project_title,
    push_candidates,
)
from pipelines.labelstudio.client import (
    TOKEN_ENVS,
    URL_ENV,
    LabelStudioClient,
    settings_from_env,
)

PIPELINE = "la"
# Review metrics that card.md shows next to apply_verdicts' own verification numbers.
CARD_METRICS = ("krippendorff_alpha", "multi_annotated", "annotations", "per_annotator")
CARD_DIGITS = 3


def source_name(source: str) -> str:
    """The source name of a run's output folder: a card file's `name`, else `source` itself."""
    if source.endswith((".yaml", ".yml")) and Path(source).is_file():
        return load_source_card(source).name
    return source


def _client(url: str | None, token: str | None) -> LabelStudioClient:
    url, token = settings_from_env(url, token)
    if not url or not token:
        raise ValueError(
            f"no Label Studio server: start one with `make labelstudio`, then set {URL_ENV} and "
            f"{TOKEN_ENVS[0]} (or pass url= and token=)"
        )
    return LabelStudioClient(url, token)


def _project_title(out_dir: str, manifest: Manifest) -> str:
    saved = read_text(f"{out_dir}/{REVIEW_DIR}/{PROJECT_FILE}")
    return json.loads(saved)["title"] if saved else project_title(manifest)


@task(name="review-push", retries=2, retry_delay_seconds=5)
def push_task(out_dir: str, url: str | None, token: str | None) -> dict[str, Any]:
    with _client(url, token) as client:
        result = push_candidates(out_dir, client)
    return vars(result)


@task(name="review-fetch", retries=2, retry_delay_seconds=5)
def fetch_export(url: str | None, token: str | None, title: str) -> list[dict[str, Any]]:
    """The project's JSON export, annotators named by e-mail rather than by id."""
    with _client(url, token) as client:
        project = client.find_project(title)
        if project is None:
            raise LookupError(
                f"Label Studio at {client.url} has no project {title!r}: push the candidates first "
                "(`make annotate` with LABEL_STUDIO_URL set, or review(push=True))"
            )
        export = client.export(project["id"])
        emails = {u["id"]: u.get("email") or f"user-{u['id']}" for u in client.users()}
    for item in export:
        for annotation in item.get("annotations", []):
            by = annotation.get("completed_by")
            if isinstance(by, int):
                annotation["completed_by"] = {"id": by, "email": emails.get(by, f"user-{by}")}
    return export


@task(name="review-apply")
def apply_task(out_dir: str, verdicts) -> dict[str, Any]:
    return apply_verdicts(out_dir, verdicts)


@task(name="review-publish", retries=2, retry_delay_seconds=5)
def publish_task(out_dir: str) -> dict[str, Any]:
    return publish(out_dir)


def report(out_dir: str, metrics: dict[str, Any]) -> str:
    """Add the agreement numbers to the manifest's verification stats and re-render card.md."""
    manifest = Manifest.load(out_dir)
    shown = {k: round(v, CARD_DIGITS) if isinstance(v, float) else v for k, v in metrics.items() if k in CARD_METRICS}
    verification = {**manifest.stats.get("verification", {}), **shown}
    manifest.stats = {**manifest.stats, "verification": verification}
    manifest.save(out_dir)
    return write_cards(out_dir, load_output_card(PIPELINE), manifest, manifest.source_card())


@flow(name="review", log_prints=True)
def review(
    source: str = "sample-droid", out: str = "outputs", url: str | None = None, push: bool = False,
) -> dict[str, Any]:
    """Pull Label Studio verdicts for OUT/la/<source>/ and rewrite it with the verified set.

    `source` is the name the run's output folder carries (a card name, the `name` of a card file) or a card
    file. Everything comes from the output folder: its manifest holds the card as the run used it (a card
    file, a --location), and the review never reads the source dataset. The API token comes from the
    environment only (LABEL_STUDIO_API_KEY): a flow parameter would be recorded by Prefect. The review holds
    the output's lease while it rewrites the folder, so it never races an annotate run on it.
    """
    out_dir = output_dir(out, PIPELINE, source_name(source))
    with OutputLease(out_dir, run_id=f"review-{source_name(source)}"):
        return _review(out_dir, url, push)


def _review(out_dir: str, url: str | None, push: bool) -> dict[str, Any]:
    logger = get_run_logger()
    token = None  # settings_from_env reads LABEL_STUDIO_API_KEY / LABEL_STUDIO_USER_TOKEN
    manifest = load_run(out_dir)
    card = manifest.source_card()
    if push:
        pushed = push_task(out_dir, url, token)
        logger.info(f"pushed {pushed['created']} new tasks ({pushed['existing']} already there) to {pushed['title']}")
    export = fetch_export(url, token, _project_title(out_dir, manifest))
    verdicts, metrics = verdicts_from_export(export, card.params.la.quality_keep)
    save_review(out_dir, export, verdicts, metrics)
    logger.info(
        f"{metrics['reviewed']} of {metrics['candidates']} tasks reviewed, {metrics['kept']} kept; "
        f"alpha {metrics['krippendorff_alpha']}"
    )
    metrics["applied"] = apply_task(out_dir, verdicts)
    publish_task(out_dir)
    report(out_dir, metrics)
    create_markdown_artifact(
        key=f"review-{card.name}".replace("_", "-").lower(), markdown=stats_table(metrics),
        description="human verification (Label Studio)",
    )
    return metrics


if __name__ == "__main__":
    review()
