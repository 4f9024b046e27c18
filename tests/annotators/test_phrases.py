"""Target-phrase extraction: accuracy on real, hand-labelled instructions, and the classes of English it must read.

The labelled set (benchmarks/data/phrases/, about 1,460 instructions from CALVIN,
LIBERO, BridgeData V2, RT-1/RT-2, RLBench, Language-Table, RoboCasa, BC-Z, VIMA and
other Open X-Embodiment sets) is split by template hash into `dev` (the rules were
tuned on its misses) and `heldout` (never tuned on). Both must stay above the
issue's targets; the per-class cases below pin each construction the rules read.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from annotators.phrases import (
    LlmExtractor,
    TargetPhrases,
    extract_phrases,
    make_phrase_extractor,
    parse_llm_reply,
    to_detector_prompt,
)
from benchmarks.phrase_accuracy import format_table, load_labelled, score, split_of

OBJECT_TARGET = 0.95  # exact object phrases, per split
DESTINATION_TARGET = 0.90  # exact destinations (None included), per split


@pytest.fixture(scope="module")
def labelled():
    return load_labelled()


def test_labelled_set_is_large_and_both_splits_hold_many_sources(labelled):
    assert len(labelled) >= 1000
    assert len({r.instruction.lower() for r in labelled}) == len(labelled), "an instruction is labelled twice"
    for split in ("dev", "heldout"):
        sources = {r.source for r in labelled if r.split == split}
        assert len([r for r in labelled if r.split == split]) >= 400 and len(sources) >= 10, split


@pytest.mark.parametrize("split", ["dev", "heldout"])
def test_rule_extractor_meets_the_targets_on_each_split(labelled, split, capsys):
    table, misses = score(extract_phrases, [r for r in labelled if r.split == split])
    total = table[(split, "all")]
    with capsys.disabled():
        print("\n" + format_table({k: v for k, v in table.items() if k[1] == "all" or k[0] == split}))
    assert total.objects / total.n >= OBJECT_TARGET, "\n".join(misses)
    assert total.destinations / total.n >= DESTINATION_TARGET, "\n".join(misses)


def test_split_ignores_colours_so_variants_of_one_template_stay_together():
    assert split_of("push the red block to the left") == split_of("push the blue block to the left")
    assert {split_of(f"put the {x} in the basket") for x in ("cup", "spoon", "bowl", "lid", "apple", "pear")} == \
        {"dev", "heldout"}


# One case per class of English the issue names (failures seen on unseen instructions).
@pytest.mark.parametrize(
    "instruction, target, destination",
    [
        # a direction or particle before the object
        ("rotate left the red block", "red block", None),
        ("move up the blue cup", "blue cup", None),
        ("push down the lever", "lever", None),
        # relative clauses and participles after the noun
        ("grasp the pink block lying on the shelf", "pink block", None),
        ("lift the mug sitting next to the kettle and put it on the tray", "mug", "tray"),
        ("take the red block in the drawer and pick it up", "red block", None),
        ("put corn in pot which is in sink", "corn", "pot"),
        ("pick up the towel hanging from the oven door and put it in the sink", "towel", "sink"),
        # pronouns and generic objects
        ("go towards the blue block and grasp it", "blue block", None),
        ("go towards the green cup in the cabinet and pick it up", "green cup", None),
        ("store the grasped object in the drawer", "object", "drawer"),
        ("take the orange bottle, then put the bottle in the bin", "orange bottle", "bin"),
        ("move to the sink and place the object", "object", "sink"),
        # part-of relations
        ("pull the handle of the drawer", "drawer handle", None),
        ("lift the lid of the teapot", "teapot lid", None),
        ("open the top drawer of the wooden cabinet", "cabinet drawer", None),
        # purpose clauses name the thing handled, not the effect
        ("toggle the switch to turn on the light", "switch", None),
        ("press the red button to open the gate", "red button", None),
        ("use the sponge to clean the table", "sponge", None),
        # measure phrases
        ("slide the door all the way to the left", "door", None),
        ("rotate the green block 90 degrees to the right", "green block", None),
        ("move the red moon a little bit to the left", "red moon", None),
        # position, ordinal, comparative and asset words are not what a detector sees
        ("open the middle drawer", "drawer", None),
        ("pick up the second cup from the left", "cup", None),
        ("put the akita black bowl on the plate", "black bowl", "plate"),
        ("stack the left bowl on the right bowl", "bowl", "bowl"),
        # destinations after near / behind / above / below / under / between / next to
        ("move the coke can near the apple", "coke can", "apple"),
        ("place the toy behind the box", "toy", "box"),
        ("hold the spoon above the bowl", "spoon", "bowl"),
        ("put the plate below the shelf", "plate", "shelf"),
        ("slide the napkin under the mug", "napkin", "mug"),
        ("push the yellow star between the red circle and the blue cube", "yellow star", "red circle"),
        ("place the can to the left of the pot", "can", "pot"),
        # region words name their thing; alone they name none
        ("move the cloth to the left edge of the pot", "cloth", "pot"),
        ("put the black bowl in the bottom drawer of the cabinet", "black bowl", "cabinet drawer"),
        ("push the block to the top left corner", "block", None),
        ("push the plate to the front of the stove", "plate", "stove"),
        # sources are not destinations; a later clause can carry the destination
        ("take the carrot off the plate", "carrot", None),
        ("remove the lid from the pot and place it on the counter", "lid", "counter"),
        ("pick rxbar chocolate from middle drawer and place on counter", "rxbar chocolate", "counter"),
        ("turn on the stove and put the moka pot on it", "stove", None),
        # tools held to work on something
        ("wipe the table with the blue sponge", "blue sponge", "table"),
        # the robot's own parts are not the object
        ("close the gripper and press the button", "button", None),
        # coordination: colours join, objects split
        ("put the yellow and white mug in the microwave", "yellow and white mug", "microwave"),
        ("put eggplant on plate and spoon in pot", "eggplant", "plate"),
        # unknown verbs opening a clause; leading phrases and subjects
        ("yank the cord out of the socket", "cord", None),
        ("in the slider pick up the red block", "red block", None),
        ("I am sleepy, bring me a drink", "drink", None),
        ("KITCHEN_SCENE3_turn_on_the_stove_and_put_the_frying_pan_on_it", "stove", None),
        # captions without a verb
        ("eggplant in the pot", "eggplant", "pot"),
    ],
)
def test_rules_read_each_class_of_instruction(instruction, target, destination):
    assert extract_phrases(instruction) == TargetPhrases(target, destination)


@pytest.mark.parametrize(
    "instruction, expected",
    [
        ("put the eggplant in the yellow basket", "yellow basket"),
        ("pick up the black bowl on the cookie box and place it on the plate", "plate"),
        ("put the chocolate pudding to the right of the plate", "plate"),
        ("put small spoon from basket to tray", "tray"),
        ("put the wine bottle on top of the cabinet", "cabinet"),
        ("open the drawer", None),
        ("take the red block and rotate it to the left", None),
        ("push the sliding door to the left side", None),
        ("turn on the stove and put the moka pot on it", None),
    ],
)
def test_destination_is_where_the_object_goes(instruction, expected):
    assert extract_phrases(instruction).destination == expected


@pytest.mark.parametrize("instruction", ["", "   ", "!!!", "pick it up", "put it in the slider", "place in slider",
                                         "pick up 3", "wait"])
def test_instruction_naming_no_object_raises(instruction):
    with pytest.raises(ValueError, match="no target object"):
        extract_phrases(instruction)


@pytest.mark.parametrize(
    "phrase, prompt", [("Eggplant", "eggplant."), ("  Yellow   Basket. ", "yellow basket."), ("red block.", "red block.")]
)
def test_detector_prompt_is_lower_case_and_ends_with_one_period(phrase, prompt):
    assert to_detector_prompt(phrase) == prompt


def test_detector_prompt_of_empty_phrase_raises():
    with pytest.raises(ValueError, match="empty"):
        to_detector_prompt(" . ")


class FakeChat:
    """An OpenAI-client look-alike answering canned JSON and counting calls."""

    def __init__(self, content: str):
        self.content, self.calls = content, []
        self.chat = SimpleNamespace(completions=SimpleNamespace(create=self.create))

    def create(self, **kwargs):
        self.calls.append(kwargs)
        return SimpleNamespace(choices=[SimpleNamespace(message=SimpleNamespace(content=self.content))])


def test_llm_extractor_asks_for_json_once_per_instruction():
    client = FakeChat(json.dumps({"object": "Eggplant", "destination": "yellow basket"}))
    extractor = make_phrase_extractor("llm", client=client, model="m")
    assert extractor("put the eggplant in the yellow basket") == TargetPhrases("eggplant", "yellow basket")
    assert extractor("put the eggplant in the yellow basket") == TargetPhrases("eggplant", "yellow basket")
    assert len(client.calls) == 1 and client.calls[0]["response_format"] == {"type": "json_object"}


def test_llm_extractor_uses_the_callers_cache_without_calling():
    client = FakeChat("unused")
    cache = {"m\nopen the drawer": json.dumps({"object": "drawer", "destination": None})}
    assert LlmExtractor(client, "m", cache)("open the drawer") == TargetPhrases("drawer", None)
    assert client.calls == []


@pytest.mark.parametrize("reply", ["not json", "{}", '{"object": ""}', "[1, 2]"])
def test_malformed_llm_reply_raises_naming_the_reply(reply):
    with pytest.raises(ValueError, match="open the drawer"):
        parse_llm_reply(reply, "open the drawer")


def test_unknown_extractor_name_lists_the_known_ones():
    with pytest.raises(ValueError, match="llm.*rules|rules.*llm"):
        make_phrase_extractor("regex")


def test_a_long_chain_of_of_phrases_is_read_without_recursing_into_every_link():
    assert extract_phrases("pick the handle " + "of the lid " * 3000).object == "lid handle"
