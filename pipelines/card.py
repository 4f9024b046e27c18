"""Render card.md from the output card's Jinja2 template and the run's manifest."""

from __future__ import annotations

from typing import Any

import jinja2

from datasets_cards import OutputCard, SourceCard, card_template
from datasets_cards.manifest import Manifest


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
    )
