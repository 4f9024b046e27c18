"""Render card.md from the output card's Jinja2 template and the run's manifest, and write it with the
Hub's README.md (pipelines/hub_card.py) beside it."""

from __future__ import annotations

from typing import Any

import jinja2

from datasets_cards import OutputCard, SourceCard, card_template
from datasets_cards.constants import CARD_FILE
from datasets_cards.manifest import Manifest
from datasets_cards.storage import write_text_atomic
from pipelines.hub_card import write_hub_readme


def columns_table(card: OutputCard) -> str:
    lines = ["| column | type | meaning |", "|---|---|---|"]
    lines += [f"| `{c.name}` | `{c.type}` | {c.description} |" for c in card.columns]
    return "\n".join(lines)


def stats_table(stats: dict[str, Any]) -> str:
    """Flat statistics as a two-column markdown table (nested dicts are dotted)."""
    flat: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        elif not isinstance(value, (list, tuple)):
            flat[prefix] = value

    walk("", stats)
    lines = ["| statistic | value |", "|---|---|"]
    for k, v in flat.items():
        lines.append(f"| {k} | {v:.4g} |" if isinstance(v, float) else f"| {k} | {v} |")
    return "\n".join(lines)


def run_summary(manifest: Manifest, source: SourceCard) -> str:
    """The lines every card starts with: what was made from what, where, on what, and how long it took."""
    run = manifest.stats.get("run", {})
    episodes = f" from {run['episodes']} episodes" if "episodes" in run else ""
    failed = " (reasons under Failures)" if manifest.quarantined else ""
    cameras = ", ".join(f"`{name}` ({spec.view})" for name, spec in source.cameras.items()) or "none (state only)"
    fingerprint = f" (fingerprint `{manifest.source_fingerprint}`)" if manifest.source_fingerprint else ""
    lines = [
        f"- rows: {manifest.rows} in {len(manifest.current_shards)} shard(s){episodes}; "
        f"quarantined episodes: {manifest.quarantined}{failed}",
        f"- data: `{manifest.source_location}`{fingerprint}; cameras: {cameras}",
    ]
    for m in manifest.models:
        revision = f" revision `{m.revision[:12]}`" if m.revision else ""
        lines.append(f"- model: {m.family} `{m.model}` from `{m.folder}`{revision} (sha256 `{m.sha256[:16]}`), "
                     f"on {m.device} in {m.dtype} (as resolved where the flow ran)")
    if not manifest.models:
        lines.append("- models: none loaded from weights (rule-based or weightless backends: see the parameters)")
    if run:
        lines.append(f"- time: {run['unit_seconds']} s in the units (every run that made them), "
                     f"{run['wall_seconds']} s wall for the last run")
    workers = {s.worker for s in manifest.current_shards if s.worker}
    if workers:
        lines.append(f"- workers: {len(workers)} process(es) ran the {len(manifest.current_shards)} unit(s) "
                     "(each shard's `worker` and `pipelines_built` in the manifest)")
    lines.append(f"- code version: `{manifest.code_version}`, config hash `{manifest.config_hash}`, "
                 f"complete: {manifest.complete}")
    return "\n".join(lines)


def failures_section(manifest: Manifest) -> str:
    """card.md's failures section: quarantined episodes by stage and kind of reason, one example each."""
    summary = manifest.stats.get("quarantine") or {}
    if not summary.get("episodes"):
        return ""
    lines = ["## Failures", "",
             f"{summary['episodes']} episode(s) quarantined: they have no rows. `quarantine.parquet` holds one row "
             "per episode with its full reason; a re-run retries the episodes of failed units (stage `unit`).", "",
             "| stage | reason | episodes | example |", "|---|---|---:|---|"]
    for r in summary["reasons"]:
        example = r["example"].replace("|", "\\|").replace("\n", " ")
        lines.append(f"| {r['stage']} | {r['kind']} | {r['episodes']} | {example[:200]} |")
    shown = sum(r["episodes"] for r in summary["reasons"])
    if shown < summary["episodes"]:
        lines.append(f"\n{summary['episodes'] - shown} more episode(s) with other reasons: see quarantine.parquet.")
    return "\n".join(lines) + "\n"


def render_card(card: OutputCard, manifest: Manifest, source: SourceCard) -> str:
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    template = env.from_string(card_template(card))
    return template.render(
        card=card,
        source=source,
        manifest=manifest,
        stats=manifest.stats,
        columns_table=columns_table(card),
        stats_table=stats_table(manifest.stats),
        run_summary=run_summary(manifest, source),
        failures_section=failures_section(manifest),
    )


def write_cards(target: str, card: OutputCard, manifest: Manifest, source: SourceCard) -> str:
    """card.md and README.md of the output folder `target` from `manifest` (each written atomically, card.md
    first); returns card.md's text. Every writer of card.md goes through here, so the two never disagree."""
    card_md = render_card(card, manifest, source)
    write_text_atomic(f"{target.rstrip('/')}/{CARD_FILE}", card_md)
    write_hub_readme(target, card, manifest, source, card_md)
    return card_md
