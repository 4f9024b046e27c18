"""What every phrase extractor returns, the Protocol they share, and their registry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from datasets_cards.registry import Registry


@dataclass(frozen=True)
class TargetPhrases:
    """What the robot manipulates and, when the instruction says, where it takes it."""

    object: str  # e.g. "eggplant"
    destination: str | None = None  # e.g. "yellow basket"; None when the instruction names none


class PhraseExtractor(Protocol):
    def __call__(self, instruction: str) -> TargetPhrases: ...


# Phrase extractors by name (rules | llm); each entry builds one from keyword options.
PHRASE_EXTRACTORS: Registry[Callable[..., PhraseExtractor]] = Registry(
    "phrase extractor", builtins={"rules": "annotators.phrases.rules", "llm": "annotators.phrases.llm"}
)


def to_detector_prompt(phrase: str) -> str:
    """Grounding DINO's text format: lower-case, single spaces, ending with one period."""
    text = " ".join(phrase.lower().split()).rstrip(" .")
    if not text:
        raise ValueError("empty target phrase")
    return text + "."


def make_phrase_extractor(name: str, **options: Any) -> PhraseExtractor:
    """The extractor registered as `name` (rules | llm), built with `options`."""
    return PHRASE_EXTRACTORS.get(name)(**options)
