"""Target phrases from task instructions: the object to manipulate, and where it goes.

"put the eggplant in the yellow basket" -> object "eggplant", destination "yellow basket".

Two extractors share one Protocol (`PhraseExtractor`) and a factory by name:
- `rules` (rules.py, lexicon.py): a shallow parse of imperative English; needs nothing;
- `llm` (llm.py): any OpenAI-compatible chat endpoint answering JSON, memoised.

Phrases are what an open-vocabulary detector can find: colour, material and kind
stay, position and ordinal words go ("the top drawer of the cabinet" -> "cabinet
drawer"). `to_detector_prompt` turns a phrase into Grounding DINO's text format.
"""

from annotators.phrases.base import (
    PHRASE_EXTRACTORS,
    PhraseExtractor,
    TargetPhrases,
    make_phrase_extractor,
    to_detector_prompt,
)
from annotators.phrases.llm import LlmExtractor, parse_llm_reply
from annotators.phrases.rules import (
    RuleExtractor,
    extract_phrases,
    normalise_instruction,
)

__all__ = [
    "PHRASE_EXTRACTORS", "LlmExtractor", "PhraseExtractor", "RuleExtractor", "TargetPhrases", "extract_phrases",
    "make_phrase_extractor", "normalise_instruction", "parse_llm_reply", "to_detector_prompt",
]
