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
    assert card.cameras and card.fps > 0
    assert card.resolve_location()


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
        ({"format": "csv"}, pytest.raises(CardError, match="format")),
        ({"cameras": {}}, pytest.raises(CardError, match="cameras")),
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
