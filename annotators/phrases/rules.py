"""Rule extractor: a shallow parse of imperative instructions into target phrases.

An instruction is split into clauses (commas, "then", "and" before a verb). Each
clause is read as [lead words] [prepositional phrase] VERB [particles] OBJECT
[phrases...]. The object is the first manipulated noun phrase; pronouns and
generic nouns ("it", "the grasped object") stand for the object named before.
Noun phrases keep what a detector can see (colour, material, kind) and drop
where the thing is or which of several it is ("the top drawer" -> "drawer");
"the handle of the drawer" reads "drawer handle", "the left edge of the pot"
reads "pot". The destination is the goal phrase of the object's own clause
(only a directional one after an acting verb such as "pick up"), else of a later
clause that moves the same object ("... and place it on the plate").
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from annotators.phrases import lexicon as lx
from annotators.phrases.base import PHRASE_EXTRACTORS, TargetPhrases

# Instruction prefixes of simulated benchmarks ("KITCHEN_SCENE3_turn_on_the_stove").
SCENE_PREFIX = re.compile(r"^\s*(kitchen|living room|study|dining|floor|table) scene\s*\d+\s*")
# Clause ends: punctuation, "then", and words opening a subordinate clause ("until it falls").
CLAUSE_BREAKS = frozenset({",", ";", ".", ":", "then", "until", "while", "whilst", "without", "before", "after", "once"})
MAX_OF_DEPTH = 4  # "the handle of the lid of the pot of ...": deeper "of" chains are not resolved further
# Longer phrases first, so "on top of" wins over "on".
PREPOSITION_PHRASES = tuple(sorted(
    {p for p in (*lx.GOAL_PREPOSITIONS, *lx.SOURCE_PREPOSITIONS)} | {"all the way", "in order to"},
    key=lambda p: -len(p.split()),
))


@dataclass
class NounPhrase:
    words: list[str]  # kept words, already normalised ("drawer handle")
    start: int
    end: int  # index just after the phrase in the clause's tokens
    referring: bool = False  # a pronoun or generic noun: stands for an object named before

    @property
    def text(self) -> str:
        return " ".join(self.words)

    @property
    def head(self) -> str:
        return self.words[-1] if self.words else ""


@dataclass
class Clause:
    tokens: list[str]
    verb: str | None = None
    object: NounPhrase | None = None
    after_object: int = 0  # where the phrases after the object start
    goal: NounPhrase | None = None  # the surface a tool works on ("wipe the pot with the sponge" -> pot)
    mentions: list[NounPhrase] = field(default_factory=list)  # every noun phrase, in order


def normalise_instruction(instruction: str) -> list[str]:
    """Lower-case tokens with clause punctuation kept as tokens; scene prefixes and underscores removed."""
    text = instruction.replace("_", " ").lower()
    text = SCENE_PREFIX.sub("", text)
    text = re.sub(r"(?<=[a-z])'(?=[a-z])", "", text)  # "rubik's cube" -> "rubiks cube"
    text = re.sub(r"[^a-z0-9,.;: ]+", " ", text)  # hyphens too: "three-sided" -> "three sided"
    text = re.sub(r"\b(anti|counter)[ -]clockwise\b", r"\1clockwise", text)
    text = re.sub(r"(?<![0-9])\.|\.(?![0-9])", " . ", text)  # sentence stops, not "1.5"
    text = re.sub(r"[,;:]", lambda m: f" {m.group()} ", text)
    return text.split()


def split_clauses(tokens: list[str]) -> list[list[str]]:
    """Clauses at punctuation, "then", and "and"/"or" followed by a verb ("... and place it ...")."""
    clauses: list[list[str]] = [[]]
    for i, w in enumerate(tokens):
        nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
        if w in CLAUSE_BREAKS or (w in ("and", "or") and (nxt == "then" or _verb_span(tokens, i + 1, clause_start=True))):
            clauses.append([])
            continue
        if clauses[-1] and w in lx.MANIPULATION_VERBS and nxt in ("it", "them") and tokens[i - 1] not in lx.DETERMINERS:
            clauses.append([])  # a missing "and": "pick up the eggplant from pot put it on the table"
        clauses[-1].append(w)
    return [c for c in clauses if c]


def _matches(tokens: list[str], i: int, phrase: str) -> bool:
    parts = phrase.split()
    return tokens[i : i + len(parts)] == parts


def _skip_lead(tokens: list[str], i: int) -> int:
    while i < len(tokens):
        if tokens[i] in ("go", "come") and _verb_span(tokens, i + 1, clause_start=False):
            i += 1  # "go push the block": the second verb is the action
            continue
        for phrase in lx.LEAD_PHRASES:
            if _matches(tokens, i, phrase):
                i += len(phrase.split())
                break
        else:
            if tokens[i] in lx.LEAD_WORDS or tokens[i] == "and":
                i += 1
                continue
            return i
    return i


def _verb_span(tokens: list[str], i: int, clause_start: bool) -> int:
    """Words the verb at `i` spans with its particle (0 when no verb is there).

    A listed verb counts anywhere; an unlisted word counts at a clause start when
    an object plainly follows it ("toggle the switch", "yank it").
    """
    if i >= len(tokens):
        return 0
    w = tokens[i]
    known = w in lx.MANIPULATION_VERBS or w in lx.MOTION_VERBS
    if not known:
        nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
        if not (clause_start and _plausible_verb(w) and (nxt in lx.DETERMINERS or nxt in lx.PRONOUNS)):
            return 0
    span = 1
    if i + 1 < len(tokens) and tokens[i + 1] in lx.PHRASAL_PARTICLES:
        after = tokens[i + 2] if i + 2 < len(tokens) else ""
        # "pick up the cup", "turn on the stove" -- but "put on the plate" keeps "on" as a preposition.
        particle_here = tokens[i + 1] not in ("on", "in", "off", "over") or w in lx.PARTICLE_ON_VERBS
        plain = tokens[i + 1] in ("up", "down", "out", "away", "back", "around", "aside", "apart", "open")
        if particle_here and (plain or after in lx.DETERMINERS or after in lx.PRONOUNS or not after):
            span = 2
    return span


def _plausible_verb(w: str) -> bool:
    closed = (lx.DETERMINERS | lx.PREPOSITIONS | lx.PRONOUNS | lx.CONJUNCTIONS | lx.POSITION_ADJECTIVES
              | lx.QUANTITY_WORDS | lx.RELATIVE_WORDS | lx.DIRECTION_WORDS)
    return w.isalpha() and w not in closed and not w.endswith("ly")


def _preposition_at(tokens: list[str], i: int) -> str | None:
    for phrase in PREPOSITION_PHRASES:
        if _matches(tokens, i, phrase):
            return phrase
    return tokens[i] if i < len(tokens) and tokens[i] in lx.PREPOSITIONS else None


def _is_participle_clause(tokens: list[str], i: int) -> bool:
    """'lying on the shelf', 'filled with water': a participle after the noun opens a reduced relative clause."""
    w = tokens[i]
    nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
    if w in lx.STATE_ADJECTIVES:
        return True
    return _is_verb_form(w) and (nxt in lx.PREPOSITIONS or nxt in lx.DETERMINERS or nxt in lx.ADVERBS)


def _is_verb_form(w: str) -> bool:
    """'lying', 'filled', 'placed': an -ing/-ed form of a verb (not 'pudding' or 'red')."""
    for suffix in ("ing", "ed"):
        if w.endswith(suffix) and len(w) > len(suffix) + 2:
            stem = w[: -len(suffix)]
            candidates = {stem, stem + "e", stem[:-1] if len(stem) > 2 and stem[-1] == stem[-2] else stem}
            if candidates & lx.PARTICIPLE_STEMS:
                return True
    return False


def parse_noun_phrase(tokens: list[str], start: int, depth: int = 0) -> NounPhrase:
    """The noun phrase at `start`, reduced to what a detector can find, with "of" phrases resolved."""
    i = start
    while i < len(tokens) and (tokens[i] in lx.DETERMINERS or tokens[i] in lx.QUANTITY_WORDS or tokens[i] == "of"):
        if tokens[i] in ("one", "ones") and i + 1 < len(tokens) and tokens[i + 1] != "of":
            break  # "the top one": a pronoun-like head, kept below
        i += 1
    kept: list[str] = []
    if i < len(tokens) and tokens[i] in ("it", "them", "itself", "themselves"):
        return NounPhrase([tokens[i]], start, i + 1, referring=True)
    while i < len(tokens) and not _ends_noun_phrase(tokens, i, kept):
        kept.append(tokens[i])
        i += 1
    end = i
    # "the handle of the drawer", "the left edge of the pot", "a bag of chips"
    if kept and end < len(tokens) and tokens[end] == "of" and depth < MAX_OF_DEPTH:
        inner = parse_noun_phrase(tokens, end + 1, depth + 1)
        if inner.words:
            return _resolve_of(kept, inner, start)
    return _reduce(kept, start, end)


def _ends_noun_phrase(tokens: list[str], i: int, kept: list[str]) -> bool:
    """Whether `tokens[i]` ends the noun phrase that has `kept` so far."""
    w = tokens[i]
    nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
    if w in ("and", "or"):
        # "the yellow and white mug" / "pot or pan" continue; "the soup and the sauce", "plate and spoon" stop.
        return (not kept or nxt in lx.DETERMINERS or nxt in lx.PRONOUNS or not nxt
                or bool(_verb_span(tokens, i + 1, clause_start=True)) or bool(_preposition_at(tokens, i + 1))
                or (w == "and" and kept[-1] not in lx.COLOURS))
    if w in lx.CONJUNCTIONS or w in CLAUSE_BREAKS:
        return True
    if _preposition_at(tokens, i):
        return bool(kept) or w != "top"  # "top" opens "top drawer" but "on top of" after a noun
    if not kept:
        return False
    # "... which is", "the cans are scattered", "the red moon a little bit", "slowly", "90 degrees", "lying on"
    return (w in lx.RELATIVE_WORDS or w in lx.AUXILIARIES or w in lx.DETERMINERS or w in lx.ADVERBS
            or (w.endswith("ly") and len(w) > 4) or w.isdigit() or w in lx.MEASURE_UNITS
            or _is_participle_clause(tokens, i))


def _reduce(kept: list[str], start: int, end: int) -> NounPhrase:
    trailing = lx.DIRECTION_WORDS | lx.RESULT_ADJECTIVES | lx.REGION_NOUNS | lx.POSITION_ADJECTIVES
    while len(kept) > 1 and kept[-1] in trailing and not all(w in trailing for w in kept):
        kept = kept[:-1]  # "push the red block left", "leave the table clean", "move the spatula right side"
    visual = [w for w in kept if w not in lx.POSITION_ADJECTIVES and w not in lx.STATE_ADJECTIVES
              and w not in lx.ASSET_NAMES and w not in lx.QUANTITY_WORDS and not w.isdigit()]
    if len(visual) > 1 and visual[0] == "one":
        visual = visual[1:]  # "one cup"
    if visual and all(w.isdigit() for w in kept):
        visual = []
    if visual and all(w in lx.REGION_NOUNS or w in lx.DIRECTION_WORDS for w in visual):
        visual = []  # "the left side", "the top": a region, no object
    if not visual and kept and not all(w in lx.REGION_NOUNS | lx.DIRECTION_WORDS | lx.POSITION_ADJECTIVES
                                       or w.isdigit() for w in kept):
        visual = kept[-1:]  # "the top one": keep the head
    referring = len(visual) == 1 and (visual[0] in lx.PRONOUNS or visual[0] in lx.GENERIC_NOUNS) or \
        (len(visual) == 1 and visual[0] in ("one", "ones"))
    return NounPhrase(visual, start, end, referring)


def _resolve_of(kept: list[str], inner: NounPhrase, start: int) -> NounPhrase:
    outer = _reduce(kept, start, inner.end)
    if not outer.words:  # a region: "the left edge of the pot" -> pot
        return NounPhrase(inner.words, start, inner.end, inner.referring)
    if outer.words == [outer.head] and outer.head in lx.QUANTITY_NOUNS:  # "a stack of cups" -> cups
        return NounPhrase(inner.words, start, inner.end, inner.referring)
    if outer.head in lx.CONTAINER_NOUNS:  # "a bag of chips"
        return NounPhrase([*outer.words, "of", *inner.words], start, inner.end)
    if inner.referring:
        return NounPhrase(outer.words, start, inner.end)
    # a part of a thing: "the handle of the drawer" -> "drawer handle"
    return NounPhrase([inner.head, outer.head], start, inner.end)


def find_verb(tokens: list[str]) -> tuple[int, int]:
    """(index, span) of the clause's verb, after lead words and a leading prepositional phrase; (-1, 0) if none."""
    i = _skip_lead(tokens, 0)
    if i < len(tokens) and _preposition_at(tokens, i):  # "in the slider pick up the red block"
        prep = _preposition_at(tokens, i)
        j = parse_noun_phrase(tokens, i + len(prep.split())).end
        j = _skip_lead(tokens, j)
        span = _verb_span(tokens, j, clause_start=True)
        if span:
            return j, span
    span = _verb_span(tokens, i, clause_start=True)
    if span:
        return i, span
    for j in range(i + 1, len(tokens)):  # "robot arm, pick ..." style leftovers
        if tokens[j] in lx.MANIPULATION_VERBS and tokens[j - 1] not in lx.DETERMINERS:
            return j, _verb_span(tokens, j, clause_start=False)
    return -1, 0


def parse_clause(tokens: list[str]) -> Clause:
    clause = Clause(tokens)
    i = 0
    while i < len(tokens):  # every noun phrase after a preposition or the verb, for pronoun resolution
        prep = _preposition_at(tokens, i)
        if prep:
            np_ = parse_noun_phrase(tokens, i + len(prep.split()))
            if np_.words:
                clause.mentions.append(np_)
            i = max(np_.end, i + 1)
            continue
        i += 1
    v, span = find_verb(tokens)
    if v < 0:
        subject = parse_noun_phrase(tokens, 0)  # "the ice cube tray has been filled with water"
        if subject.words and not subject.referring:
            clause.mentions.insert(0, subject)
        return clause
    clause.verb = tokens[v]
    j = v + span
    while j < len(tokens) and (tokens[j] in lx.DIRECTION_WORDS or tokens[j] in lx.ADVERBS) and \
            j + 1 < len(tokens) and tokens[j + 1] not in lx.PREPOSITIONS | {"of"}:
        j += 1  # "rotate left the red block", "move up the cup"
    if j < len(tokens) and tokens[j] in lx.RECIPIENTS:
        j += 1  # "bring me a drink"
    nxt = tokens[j + 1] if j + 1 < len(tokens) else ""
    again = _verb_span(tokens, j, clause_start=False) if tokens[j - 1] in lx.ADVERBS | lx.DIRECTION_WORDS else 0
    if again and (nxt in lx.PREPOSITIONS or nxt in lx.DETERMINERS):  # "turn around again walk to the shelf"
        clause.verb, span, j = tokens[j], again, j + again
        while j < len(tokens) and tokens[j] in lx.DIRECTION_WORDS and j + 1 < len(tokens):
            j += 1
    if clause.verb in lx.MOTION_VERBS and clause.verb not in lx.MANIPULATION_VERBS:
        return clause  # "go to the table": a place, not an object
    if j < len(tokens) and _preposition_at(tokens, j) and clause.verb in lx.MOTION_VERBS:
        return clause  # "move to the drawer"
    np_ = parse_noun_phrase(tokens, j)
    if clause.verb in lx.TOOL_VERBS and np_.end < len(tokens) and tokens[np_.end] == "with":
        tool = parse_noun_phrase(tokens, np_.end + 1)  # "wipe the pot with the sponge": the sponge is held
        if tool.words:
            clause.goal, np_ = np_, tool
    if np_.words:
        clause.object = np_
        clause.after_object = np_.end
        clause.mentions.insert(0, np_)
    return clause


def _destination(clause: Clause, start: int, placing: bool, target: str) -> str | None:
    """The first goal phrase naming an object in `clause.tokens[start:]`; sources and bare directions are skipped."""
    tokens, i = clause.tokens, start
    while i < len(tokens):
        prep = _preposition_at(tokens, i)
        if prep is None or prep in ("all the way", "in order to"):
            i += len(prep.split()) if prep else 1
            continue
        after = i + len(prep.split())
        while after < len(tokens) and tokens[after] in lx.ADVERBS:
            after += 1  # "to just above the lamp"
        if _preposition_at(tokens, after) and prep not in lx.SOURCE_PREPOSITIONS:
            i = after  # "to above the lamp", "in between": the inner preposition decides
            continue
        if _matches(tokens, after, "each other") or _matches(tokens, after, "one another"):
            return target  # "stack the blocks on top of each other"
        np_ = parse_noun_phrase(tokens, after)
        nxt = max(np_.end, after)
        purpose = _verb_span(tokens, i + 1, clause_start=True) or (i + 1 < len(tokens) and tokens[i + 1] in lx.PURPOSE_VERBS)
        if prep == "to" and purpose and tokens[i + 1] not in lx.DETERMINERS:
            return None  # a purpose: "use the switch to turn on the light" names no goal
        if prep in lx.SOURCE_PREPOSITIONS:
            i = nxt  # "from the table"
            continue
        goal = prep in lx.GOAL_PREPOSITIONS and (placing or prep in lx.DIRECTIONAL_PREPOSITIONS)
        if goal and np_.words and not np_.referring:
            return np_.text
        i = nxt
    return None


def extract_phrases(instruction: str) -> TargetPhrases:
    """Rule-based target object (and destination) of an instruction. Raises ValueError if none is found."""
    tokens = normalise_instruction(instruction)
    if not tokens or all(w in lx.NON_OBJECT_WORDS or w in CLAUSE_BREAKS for w in tokens):
        raise ValueError(f"no target object found in instruction {instruction!r}")
    clauses = [parse_clause(c) for c in split_clauses(tokens)]
    target_index, target = -1, None
    for k, clause in enumerate(clauses):
        robot_part = clause.object is not None and clause.object.head in lx.ROBOT_PARTS and k + 1 < len(clauses)
        if clause.object is not None and clause.verb is not None and not robot_part:
            target_index, target = k, _resolve(clause.object, clauses[:k])
            break
    if target is not None and target.referring and target.head in lx.PRONOUNS:
        raise ValueError(f"no target object found in instruction {instruction!r}: {target.text!r} names nothing before it")
    if target is None and any(c.verb in lx.MANIPULATION_VERBS for c in clauses):
        raise ValueError(f"no target object found in instruction {instruction!r}: its verb has no object")
    if target is None:  # no verb: "eggplant in the pot" style captions
        np_ = parse_noun_phrase(tokens, _skip_lead(tokens, 0))
        if not np_.words or np_.referring:
            raise ValueError(f"no target object found in instruction {instruction!r}")
        caption = Clause(tokens, verb="put", object=np_, after_object=np_.end)
        return TargetPhrases(object=np_.text, destination=_destination(caption, np_.end, True, np_.text))
    destination = _goal_of(clauses, target_index, target) or _approached_goal(clauses[:target_index], target)
    return TargetPhrases(object=target.text, destination=destination)


def _resolve(obj: NounPhrase, before: list[Clause]) -> NounPhrase:
    """The object a pronoun, generic noun or bare repeated head stands for, from the clauses before it.

    "it" takes the first phrase of the latest clause naming one ("go towards the red
    block in the drawer and pick it up" -> red block); "the object" only an object
    manipulated before (after "move to the drawer" it stays "object"); "the block"
    the latest object with that head and more words.
    """
    earlier = [c.object for c in before if c.object is not None and not c.object.referring]
    if obj.referring and obj.head in lx.PRONOUNS:
        for clause in reversed(before):
            if clause.mentions:
                return NounPhrase(clause.mentions[0].words, obj.start, obj.end)
        return obj
    if obj.referring:
        return NounPhrase(earlier[-1].words, obj.start, obj.end) if earlier else obj
    named = earlier + [m for c in before for m in c.mentions if not m.referring]
    same_head = [o for o in named if o.head == obj.head and len(o.words) > len(obj.words)]
    return NounPhrase(same_head[-1].words, obj.start, obj.end) if same_head else obj


def _approached_goal(before: list[Clause], target: NounPhrase) -> str | None:
    """'move to the drawer and place the object': the place a motion clause went to, when it is not the object."""
    for clause in reversed(before):
        if clause.verb in lx.MOTION_VERBS and clause.object is None and clause.mentions:
            place = clause.mentions[0]
            return None if place.words == target.words else place.text
    return None


def _goal_of(clauses: list[Clause], index: int, target: NounPhrase) -> str | None:
    """Where the target goes: its own clause, else the next clause that moves it (a pronoun, or no object)."""
    own = clauses[index]
    if own.goal is not None:
        return own.goal.text
    placing = own.verb in lx.PLACING_VERBS and own.verb not in ("pull",)
    dest = _destination(own, own.after_object, placing, target.text)
    if dest:
        return dest
    for clause in clauses[index + 1 :]:
        if clause.verb is None:
            continue
        obj = clause.object
        same = obj is None or obj.referring or obj.head == target.head
        if not same:
            return None  # the next clause handles another object
        start = obj.end if obj is not None else 0
        dest = _destination(clause, start, clause.verb in lx.PLACING_VERBS, target.text)
        if dest:
            return dest
    return None


class RuleExtractor:
    """The rule extractor as a `PhraseExtractor`; deterministic, no dependencies."""

    def __call__(self, instruction: str) -> TargetPhrases:
        return extract_phrases(instruction)


@PHRASE_EXTRACTORS.register("rules")
def _make_rules(**_: object) -> RuleExtractor:
    return RuleExtractor()
