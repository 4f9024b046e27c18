"""Load cards by name. Unknown names and invalid cards raise CardError listing the choices.

A source card may start with `extends: <card name>`: it is read as that card with
its own keys laid over it (mappings merge key by key, lists and values replace),
so a sample card states only what differs from the real corpus it imitates.
"""

from __future__ import annotations

import functools
from pathlib import Path

import yaml
from pydantic import ValidationError

from datasets_cards.constants import SAMPLE_PREFIX
from datasets_cards.errors import CardError
from datasets_cards.output import OutputCard
from datasets_cards.params import deep_merge
from datasets_cards.source import SourceCard

_HERE = Path(__file__).resolve().parent
SOURCES_DIR = _HERE / "sources"
OUTPUTS_DIR = _HERE / "outputs"


def list_sources() -> list[str]:
    return sorted(p.stem for p in SOURCES_DIR.glob("*.yaml"))


def sample_card_at(card: SourceCard, location: str) -> SourceCard | None:
    """The embedded sample of `card`'s corpus when `location` is where that sample lies (its folder, or the
    folder above its version folder), else None: a run over the sample must be named and described as it."""
    name = f"{SAMPLE_PREFIX}{card.name}"
    if "://" in location or name not in list_sources():
        return None
    sample = _builtin_source_card(name)
    here, there = Path(location).resolve(), Path(sample.resolve_location()).resolve()
    return sample if here in (there, there.parent) else None


def list_outputs() -> list[str]:
    return sorted(p.stem for p in OUTPUTS_DIR.glob("*.yaml"))


def _read_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise CardError(f"card {path} is not valid YAML: {e}") from e
    if not isinstance(data, dict):
        raise CardError(f"card {path} must be a YAML mapping, got {type(data).__name__}")
    return data


def _validation_message(path: Path, error: ValidationError) -> str:
    lines = [f"invalid card {path}:"]
    for err in error.errors():
        where = ".".join(str(p) for p in err["loc"]) or "<card>"
        lines.append(f"  {where}: {err['msg']} (got {err.get('input')!r})")
    return "\n".join(lines)


EXTENDS_KEY = "extends"


def _source_data(path: Path, chain: tuple[Path, ...] = ()) -> dict:
    """The card's YAML with the cards it extends laid under it."""
    if path in chain:
        raise CardError(f"card {path} extends itself through {' -> '.join(str(p) for p in chain)}")
    data = _read_yaml(path)
    parent = data.pop(EXTENDS_KEY, None)
    if parent is None:
        return data
    parent_path = SOURCES_DIR / f"{parent}.yaml"
    if not parent_path.exists():
        raise CardError(f"card {path} extends unknown source {parent!r}; known sources: {', '.join(list_sources())}")
    return deep_merge(_source_data(parent_path, (*chain, path)), data)


def source_card_from_file(path: str | Path) -> SourceCard:
    path = Path(path)
    try:
        return SourceCard(**_source_data(path))
    except ValidationError as e:
        raise CardError(_validation_message(path, e)) from e


def load_source_card(name: str) -> SourceCard:
    """The source card called `name` (a file in datasets_cards/sources/, or a path to a YAML)."""
    if name.endswith((".yaml", ".yml")) and Path(name).exists():
        return source_card_from_file(name)  # read every time: the user may have edited it since
    return _builtin_source_card(name)


@functools.cache
def _builtin_source_card(name: str) -> SourceCard:
    path = SOURCES_DIR / f"{name}.yaml"
    if not path.exists():
        raise CardError(f"unknown source {name!r}; known sources: {', '.join(list_sources())}")
    card = source_card_from_file(path)
    if card.name != name:
        raise CardError(f"card {path} declares name {card.name!r}, expected {name!r}")
    return card


@functools.cache
def load_output_card(name: str) -> OutputCard:
    """The output card called `name` (gaze, pixel, future, la, ...)."""
    path = OUTPUTS_DIR / f"{name}.yaml"
    if not path.exists():
        raise CardError(f"unknown output dataset {name!r}; known outputs: {', '.join(list_outputs())}")
    try:
        card = OutputCard(**_read_yaml(path))
    except ValidationError as e:
        raise CardError(_validation_message(path, e)) from e
    if card.name != name:
        raise CardError(f"card {path} declares name {card.name!r}, expected {name!r}")
    return card


def card_template(card: OutputCard) -> str:
    """The card.md Jinja2 template text of an output card."""
    path = OUTPUTS_DIR / card.card_template
    if not path.exists():
        raise CardError(f"output card {card.name!r} names template {card.card_template!r}, not found in {OUTPUTS_DIR}")
    return path.read_text()
