"""Target phrases from task instructions: the object to manipulate, and where it goes.

"put the eggplant in the yellow basket" → object "eggplant", destination "yellow basket".

Two extractors share one Protocol (`PhraseExtractor`) and a factory by name:
- `rules`: verb–object patterns over the instruction styles of BridgeData V2,
  LIBERO, CALVIN and DROID; needs nothing;
- `llm`: any OpenAI-compatible chat endpoint answering JSON, memoised in a
  mapping the caller owns (annotators do no file I/O; the pipeline may pass a
  persistent dict).

`to_detector_prompt` turns a phrase into Grounding DINO's text format
(lower-case, ending with a period).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from typing import Any, Protocol

from datasets_cards.registry import Registry

# Verbs that open a manipulation clause; multi-word forms are matched first.
PHRASAL_VERBS = (
    "pick up", "pick", "take out", "take off", "take", "turn on", "turn off", "switch on", "switch off",
    "put down", "put away", "set down", "knock over", "lift up", "open up", "close up", "push down", "pull out",
)
VERBS = frozenset(
    "put place move push pull open close grasp grab lift take pick turn rotate flip slide stack unstack remove "
    "store press use fold unfold wipe sweep pour drop set hang insert lay get bring transfer knock shut "
    "unplug plug twist cover uncover stir hold touch throw pack unpack sort clean fill empty hand dump "
    "relocate reposition upright straighten drag".split()
)
# Words that only introduce the verb ("go push the red block right", "please open ...").
LEAD_WORDS = frozenset("go please now then robot can you first just".split())
DETERMINERS = frozenset("the a an both some all any this that these those its".split())
# Words that end the object noun phrase.
NP_STOP = frozenset(
    "in into on onto to from at inside off out of next near between by towards toward with that which who "
    "so until while then it them , behind under over above below beside around across along through "
    "upon against for".split()
)
# Trailing words that describe a motion, not the object ("push the red block left").
TRAILING_ADVERBS = frozenset(
    "left right up down upright vertical vertically horizontal horizontally forward forwards backward backwards "
    "back away over around clockwise counterclockwise anticlockwise open closed shut sideways again".split()
)
# State adjectives that do not help a detector find the object ("the grasped block").
STATE_ADJECTIVES = frozenset("grasped stacked held picked lifted placed".split())
DESTINATION_PREPOSITIONS = ("on top of", "in front of", "into", "onto", "inside", "in", "on", "to")
# "to the left of the plate": the relation word is skipped and the object after "of" is the destination.
RELATION_WORDS = frozenset("left right front back top bottom side middle center centre edge".split())
PRONOUNS = frozenset("it them that this one".split())


@dataclass(frozen=True)
class TargetPhrases:
    """What the robot manipulates and, when the instruction says, where it takes it."""

    object: str  # e.g. "eggplant"
    destination: str | None = None  # e.g. "yellow basket"; None when the instruction names none


# Phrase extractors by name (rules | llm); each entry builds one from keyword options.
PHRASE_EXTRACTORS: Registry[Callable[..., PhraseExtractor]] = Registry("phrase extractor")

class PhraseExtractor(Protocol):
    def __call__(self, instruction: str) -> TargetPhrases: ...


def to_detector_prompt(phrase: str) -> str:
    """Grounding DINO's text format: lower-case, single spaces, ending with one period."""
    text = " ".join(phrase.lower().split()).rstrip(" .")
    if not text:
        raise ValueError("empty target phrase")
    return text + "."


def normalise_instruction(instruction: str) -> list[str]:
    """Lower-case words with punctuation split off; LIBERO scene prefixes and underscores removed."""
    text = instruction.replace("_", " ").lower()
    text = re.sub(r"^\s*(kitchen|living room|study) scene\s*\d+\s*", "", text)
    text = re.sub(r"[^a-z0-9,' ]+", " ", text)
    return text.replace(",", " , ").split()


def _match_verb(words: list[str], i: int) -> int:
    """Number of words the verb starting at `i` spans (0 when `words[i]` is not a verb)."""
    for phrasal in PHRASAL_VERBS:
        parts = phrasal.split()
        if words[i : i + len(parts)] == parts and (len(parts) > 1 or parts[0] in VERBS):
            return len(parts)
    return 1 if words[i] in VERBS else 0


def _noun_phrase(words: list[str], start: int) -> tuple[str, int]:
    """The noun phrase at `start` (determiners dropped) and the index just after it."""
    i = start
    while i < len(words) and words[i] in DETERMINERS:
        i += 1
    kept: list[str] = []
    while i < len(words):
        w = words[i]
        if w == "and":
            nxt = words[i + 1] if i + 1 < len(words) else ""
            # "the yellow and white mug" continues; "the soup and the sauce" / "and place it" stops.
            if nxt in DETERMINERS or nxt in PRONOUNS or _match_verb(words, i + 1) or not kept:
                break
        elif w in NP_STOP or (w in VERBS and kept):
            break
        kept.append(w)
        i += 1
    while kept and (kept[-1] in TRAILING_ADVERBS or kept[-1] == "and"):
        kept.pop()
    kept = [w for w in kept if w not in STATE_ADJECTIVES] or kept
    return " ".join(kept), i


def _destination(words: list[str], start: int) -> str | None:
    i = start
    while i < len(words):
        for prep in DESTINATION_PREPOSITIONS:
            parts = prep.split()
            if words[i : i + len(parts)] != parts:
                continue
            j = i + len(parts)
            while j < len(words) and words[j] in DETERMINERS:
                j += 1
            # "to the right of the plate" → "plate"; "to the left side" names no object.
            if j < len(words) and words[j] in RELATION_WORDS:
                k = j + 1
                if k < len(words) and words[k] == "side":
                    k += 1
                if k < len(words) and words[k] == "of":
                    j = k + 1
                elif k >= len(words) or words[k] in NP_STOP or words[k] == "and":
                    return None
            phrase, _ = _noun_phrase(words, j)
            if phrase and phrase not in PRONOUNS:
                return phrase
            return None
        i += 1
    return None


def extract_phrases(instruction: str) -> TargetPhrases:
    """Rule-based target object (and destination) of an instruction. Raises ValueError if none is found.

    The object is the noun phrase after the first manipulation verb, skipping a verb
    immediately chained by "and" ("grasp and lift the red block"); the destination is
    the phrase after the first destination preposition of the clause that moves the
    object ("... and place it on the plate"), else of the first clause.
    """
    words = normalise_instruction(instruction)
    i = 0
    while i < len(words) and words[i] in LEAD_WORDS:
        i += 1
    obj, end = "", i
    while i < len(words):
        span = _match_verb(words, i)
        if span:
            j = i + span
            if j < len(words) and words[j] == "and":  # "grasp and lift the block"
                i = j + 1
                continue
            obj, end = _noun_phrase(words, j)
            if obj:
                break
            i = j
            continue
        i += 1
    if not obj:  # no verb: "eggplant in the pot" style captions
        obj, end = _noun_phrase(words, 0)
    if not obj:
        raise ValueError(f"no target object found in instruction {instruction!r}")
    # A later "... place it / put them ..." clause carries the destination.
    for k in range(end, len(words) - 1):
        if _match_verb(words, k) and words[k + _match_verb(words, k)] in PRONOUNS:
            end = k + _match_verb(words, k) + 1
            break
    return TargetPhrases(object=obj, destination=_destination(words, end))


class RuleExtractor:
    """Verb–object patterns; deterministic, no dependencies."""

    def __call__(self, instruction: str) -> TargetPhrases:
        return extract_phrases(instruction)


LLM_SYSTEM_PROMPT = (
    "You extract grounding targets from robot task instructions. Answer with a JSON object "
    '{"object": <the object the robot manipulates, a short noun phrase with its adjectives, no article>, '
    '"destination": <where it is put, a short noun phrase, or null>}.'
)


class LlmExtractor:
    """Target phrases from an OpenAI-compatible chat endpoint, JSON output, memoised per instruction.

    `client` is an `openai.OpenAI` (or anything with `chat.completions.create`);
    `cache` is any mutable mapping (a dict, a shelve) owned by the caller.
    """

    def __init__(self, client: Any, model: str, cache: MutableMapping[str, Any] | None = None, temperature: float = 0.0):
        self.client = client
        self.model = model
        self.cache = cache if cache is not None else {}
        self.temperature = temperature  # 0: the same instruction always gives the same phrase

    def __call__(self, instruction: str) -> TargetPhrases:
        key = f"{self.model}\n{instruction}"
        if key not in self.cache:
            reply = self.client.chat.completions.create(
                model=self.model,
                temperature=self.temperature,
                response_format={"type": "json_object"},
                messages=[{"role": "system", "content": LLM_SYSTEM_PROMPT}, {"role": "user", "content": instruction}],
            )
            self.cache[key] = reply.choices[0].message.content
        return parse_llm_reply(self.cache[key], instruction)


def parse_llm_reply(content: str, instruction: str) -> TargetPhrases:
    """Validate the model's JSON answer. Raises ValueError naming the instruction and the reply."""
    try:
        data = json.loads(content)
        obj = str(data["object"]).strip()
        dest = data.get("destination")
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise ValueError(f"LLM reply for {instruction!r} is not the expected JSON: {content!r}") from e
    if not obj:
        raise ValueError(f"LLM reply for {instruction!r} names no object: {content!r}")
    dest = str(dest).strip() if dest else None
    return TargetPhrases(object=obj.lower(), destination=dest.lower() if dest else None)


@PHRASE_EXTRACTORS.register("rules")
def _make_rules(**_: Any) -> RuleExtractor:
    return RuleExtractor()


@PHRASE_EXTRACTORS.register("llm")
def _make_llm(model: str = "gpt-4o-mini", base_url: str | None = None, api_key: str | None = None,
              cache: MutableMapping[str, Any] | None = None, client: Any = None) -> LlmExtractor:
    if client is None:
        import openai  # local: only the llm extractor needs it

        # api_key None: the client reads OPENAI_API_KEY (local OpenAI-compatible servers accept any key)
        client = openai.OpenAI(base_url=base_url, api_key=api_key)
    return LlmExtractor(client, model, cache)


def make_phrase_extractor(name: str, **options: Any) -> PhraseExtractor:
    """The extractor registered as `name` (rules | llm), built with `options`."""
    return PHRASE_EXTRACTORS.get(name)(**options)
