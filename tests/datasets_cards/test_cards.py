from contextlib import nullcontext as does_not_raise

import pyarrow as pa
import pytest

from datasets_cards import (
    CardError,
    list_outputs,
    list_sources,
    load_output_card,
    load_source_card,
    parse_type,
    source_card_from_file,
)

REAL_SOURCES = ["bridge", "calvin", "droid", "egodex", "fractal", "libero"]


def test_every_real_corpus_has_a_card():
    assert set(REAL_SOURCES) <= set(list_sources())


@pytest.mark.parametrize("name", list_sources())
def test_every_source_card_validates_and_resolves(name):
    card = load_source_card(name)
    assert card.name == name
    assert card.fps > 0 and card.resolve_location()
    image_pipelines = set(card.pipelines) - {"la"}  # only la works from state alone
    assert card.cameras or not image_pipelines


@pytest.mark.parametrize("name", list_outputs())
def test_every_output_card_builds_its_arrow_schema(name):
    card = load_output_card(name)
    schema = card.arrow_schema()
    assert schema.names == [c.name for c in card.columns]
    assert set(card.key) <= set(schema.names)
    assert schema.metadata[b"output_card_version"] == card.version.encode()


def test_unknown_source_lists_the_known_ones():
    with pytest.raises(CardError, match="known sources: .*droid"):
        load_source_card("no-such-corpus")


def test_unknown_output_lists_the_known_ones():
    with pytest.raises(CardError, match="known outputs: .*gaze"):
        load_output_card("nope")


@pytest.mark.parametrize(
    "patch, expectation",
    [
        ({}, does_not_raise()),
        ({"fps": -1}, pytest.raises(CardError, match="fps")),
        ({"pipelines": ["gaze", "gazee"]}, pytest.raises(CardError, match="unknown pipelines.*known: future, gaze, la")),
        ({"params": {"la": {"keyframes": {"window": 4}}}}, pytest.raises(CardError, match="params.la.keyframes.window")),
        ({"params": {"lla": {}}}, pytest.raises(CardError, match="params.lla")),
        ({"cameras": {}}, does_not_raise()),  # a state-only recording; pipelines that need images refuse it
        ({"state": {"keys": ["s"], "rotation": "euler_abc"}}, pytest.raises(CardError, match="euler_abc")),
        ({"state": {"keys": ["s"], "space": "joint", "urdf": "arm.urdf"}}, pytest.raises(CardError, match="ee_frame")),
        ({"gripper": {"key": "g", "open_value": 1, "closed_value": 1}}, pytest.raises(CardError, match="gripper")),
        ({"surprise": 1}, pytest.raises(CardError, match="surprise")),
    ],
)
def test_invalid_card_errors_name_the_field(tmp_path, patch, expectation):
    import yaml

    data = load_source_card("droid").model_dump(mode="json")
    data.update(patch)
    path = tmp_path / "card.yaml"
    path.write_text(yaml.safe_dump(data))
    with expectation:
        source_card_from_file(path)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("string", pa.string()),
        ("float16[768]", pa.list_(pa.float16(), 768)),
        ("list<list<float32>>", pa.list_(pa.list_(pa.float32()))),
        ("struct<size:list<int32>,counts:string>", pa.struct([("size", pa.list_(pa.int32())), ("counts", pa.string())])),
    ],
)
def test_parse_type(text, expected):
    assert parse_type(text) == expected


def test_parse_type_rejects_unknown():
    with pytest.raises(ValueError, match="unknown column type"):
        parse_type("complex128")


@pytest.mark.parametrize(
    "name, raw, expected",
    [
        ("droid", [0.0, 1.0, 0.5], [0.0, 1.0, 0.5]),  # 0 open, 1 closed
        ("bridge", [1.0, 0.0], [0.0, 1.0]),  # state[6]: 1 = open
        ("libero", [-1.0, 1.0], [0.0, 1.0]),  # action: -1 open, +1 close
        ("calvin", [1.0, -1.0], [0.0, 1.0]),  # action: +1 open, -1 close
    ],
)
def test_gripper_conventions_normalise_to_zero_open_one_closed(name, raw, expected):
    assert load_source_card(name).gripper.normalise(raw).tolist() == expected


def test_a_card_that_extends_another_states_only_what_differs(tmp_path):
    (tmp_path / "mini.yaml").write_text("extends: droid\nname: mini\ndescription: d\nlocation: /data/mini\n"
                                        "params: {la: {keyframes: {window: 7}}}\n")
    card, droid = source_card_from_file(tmp_path / "mini.yaml"), load_source_card("droid")
    assert (card.name, card.location) == ("mini", "/data/mini")
    assert card.cameras == droid.cameras and card.gripper == droid.gripper and card.fps == droid.fps
    assert card.params.la.keyframes.window == 7  # nested mappings merge ...
    assert card.params.la.keyframes.savgol_window == droid.params.la.keyframes.savgol_window  # ... key by key
    assert card.params.la.segmenter == droid.params.la.segmenter


@pytest.mark.parametrize("sample", ["sample-droid", "sample-bridge", "sample-fractal"])
def test_sample_cards_read_as_their_real_corpus_with_their_own_location(sample):
    card, real = load_source_card(sample), load_source_card(sample.removeprefix("sample-"))
    differ = {k for k, v in card.model_dump().items() if v != real.model_dump()[k]}
    assert differ == {"name", "description", "location", "homepage", "license", "episode_steps"}  # its own length


def test_extending_an_unknown_card_names_the_known_ones(tmp_path):
    (tmp_path / "bad.yaml").write_text("extends: drood\nname: bad\n")
    with pytest.raises(CardError, match="extends unknown source 'drood'; known sources: .*droid"):
        source_card_from_file(tmp_path / "bad.yaml")


def test_params_defaults_live_in_one_place():
    """droid.yaml restates no default: its params equal the classes' defaults but for what it sets."""
    from datasets_cards.params.la import LaParams

    assert load_source_card("droid").params.la == LaParams(segmenter="kinematic")
