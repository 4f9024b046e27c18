"""README.md for the Hugging Face Hub: the output folder as a dataset `datasets` loads with no arguments.

`datasets.load_dataset(OUT/<pipeline>/<source>)` and the Hub read the YAML header of the folder's README.md:

- `configs`: one config, split `train`, whose `data_files` are the shards of the generation in force
  (`shards/shard-*.parquet`, or `verified/NNNN/shard-*.parquet` after a review): a glob per shard folder,
  as `push_to_hub` writes one, so loading from the Hub costs one listing and not one request per shard.
  Nothing else in the folder matches it: quarantine.parquet, the `_staging/` and `_quarantine/` parts,
  the LeRobot layouts and a writer's temporary `.tmp-*` names stay out;
- `dataset_info.features`: derived from the output card's columns (the same grammar as its Arrow schema),
  written as `datasets` writes them; a column the card marks `image: true` (JPEG/PNG bytes) is an
  `Image` feature, so it decodes to a PIL image; RLE masks are structs {size: list<int32>, counts: string};
- `license` (the source card's, lower-case as the Hub names licenses), `task_categories` (the output
  card's), `pretty_name`, `tags`, `size_categories`.

The body is card.md, the card with this run's statistics. Everything comes from the output card, the
source card and the manifest: no per-pipeline YAML is maintained by hand. It is written next to card.md
at the end of every run and after every review step that rewrites card.md, so it always names the
generation the manifest says is in force.
"""

from __future__ import annotations

import posixpath
from fnmatch import fnmatch
from typing import Any

import yaml

from datasets_cards import OutputCard, SourceCard
from datasets_cards.constants import HUB_README_FILE, SHARD_GLOB, SHARDS_DIR
from datasets_cards.manifest import Manifest
from datasets_cards.output import split_top_level
from datasets_cards.storage import write_text_atomic

SPLIT = "train"
CONFIG = "default"
# The Hub's size buckets (rows).
_SIZES = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
          (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B")]


def feature_type(type_text: str) -> Any:
    """The `datasets` YAML form of one type of the card grammar, without its name: a dtype string for a
    primitive, {"list": ..., "length": N} for lists, a list of named fields for a struct."""
    t = type_text.strip()
    if t.endswith("]") and "[" in t:
        inner, size = t[:-1].rsplit("[", 1)
        return {"list": feature_type(inner), "length": int(size)}
    if t.startswith("list<") and t.endswith(">"):
        return {"list": feature_type(t[5:-1])}
    if t.startswith("struct<") and t.endswith(">"):
        fields = []
        for part in split_top_level(t[7:-1]):
            name, _, sub = part.partition(":")
            fields.append(named_feature(name.strip(), feature_type(sub)))
        return fields
    return t  # string, binary, bool, intN, uint8, floatN: datasets' dtype names are the card's


def named_feature(name: str, form: Any) -> dict[str, Any]:
    if isinstance(form, str):
        return {"name": name, "dtype": form}
    if isinstance(form, list):
        return {"name": name, "struct": form}
    return {"name": name, **form}


def hub_features(card: OutputCard) -> list[dict[str, Any]]:
    """`dataset_info.features` of the output card, as `datasets` writes them (image columns as `image`)."""
    return [named_feature(c.name, "image" if c.image else feature_type(c.type)) for c in card.columns]


def data_files(manifest: Manifest) -> list[str]:
    """The patterns that match exactly the shards of the generation in force: one glob per folder of
    `shard-NNNNN.parquet` files (a shard named otherwise is listed as it is). With no shard at all the
    shards folder's glob, which matches nothing, so `load_dataset` says there are no data files."""
    patterns: list[str] = []
    for shard in manifest.current_shards:
        folder, name = posixpath.split(shard.path)
        pattern = posixpath.join(folder, SHARD_GLOB) if fnmatch(name, SHARD_GLOB) else shard.path
        if pattern not in patterns:
            patterns.append(pattern)
    return patterns or [posixpath.join(SHARDS_DIR, SHARD_GLOB)]


def hub_license(source: SourceCard) -> str:
    """The Hub's license id for the source card's SPDX-style license (`CC-BY-4.0` → `cc-by-4.0`)."""
    text = source.license.strip().lower()
    return text if text and " " not in text else ("other" if text else "unknown")


def size_category(rows: int) -> str:
    return next((label for bound, label in _SIZES if rows < bound), "n>1B")


def hub_metadata(card: OutputCard, manifest: Manifest, source: SourceCard) -> dict[str, Any]:
    license_id = hub_license(source)
    return {
        "license": license_id,
        **({"license_name": source.license} if license_id == "other" else {}),
        "pretty_name": f"{card.name} annotations of {source.name}",
        "task_categories": list(card.task_categories),
        "tags": ["robotics", card.name, source.name, "robot-annotate"],
        "size_categories": [size_category(manifest.rows)],
        "configs": [{"config_name": CONFIG, "data_files": [{"split": SPLIT, "path": data_files(manifest)}]}],
        "dataset_info": {"config_name": CONFIG, "features": hub_features(card)},
    }


def render_hub_readme(card: OutputCard, manifest: Manifest, source: SourceCard, card_md: str) -> str:
    header = yaml.safe_dump(hub_metadata(card, manifest, source), sort_keys=False, allow_unicode=True)
    intro = (f"<!-- Written by robot-annotate from the `{card.name}` output card (v{card.version}) and manifest.json; "
             "rewritten by every run. -->\n\n"
             "Load this folder (or the Hub repository it was pushed to) with "
             "`datasets.load_dataset(\"<folder or repo id>\", split=\"train\")`.\n\n")
    return f"---\n{header}---\n\n{intro}{card_md}"


def write_hub_readme(target: str, card: OutputCard, manifest: Manifest, source: SourceCard, card_md: str) -> str:
    """Write OUT/<pipeline>/<source>/README.md (atomically); returns its text."""
    text = render_hub_readme(card, manifest, source, card_md)
    write_text_atomic(f"{target.rstrip('/')}/{HUB_README_FILE}", text)
    return text
