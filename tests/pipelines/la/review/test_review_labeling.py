"""The labeling config: the paper's scales as hints, one video per camera (a state plot without cameras),
the LA vocabulary."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from annotators.segments.base import VOCABULARY
from pipelines.la.review import labeling


def choices(root: ET.Element, name: str) -> list[ET.Element]:
    return root.find(f".//Choices[@name='{name}']").findall("Choice")


@pytest.mark.parametrize("cameras", [[], ["ext"]])
def test_labeling_config_refuses_an_empty_vocabulary(cameras):
    with pytest.raises(ValueError):
        labeling.labeling_config(cameras, ())


@pytest.mark.parametrize("cameras", [[], ["exterior"], ["exterior", "wrist"]])
def test_every_control_points_at_an_object_of_the_config(cameras):
    root = ET.fromstring(labeling.labeling_config(cameras, VOCABULARY))
    objects = {e.get("name") for e in root.iter() if e.tag in {"Video", "Image", "Text"}}
    controls = [e for e in root.iter() if e.get("toName") is not None]
    assert {c.get("name") for c in controls} == {labeling.QUALITY, labeling.CONFIDENCE, *labeling.EDITABLE_CONTROLS}
    assert all(c.get("toName") in objects for c in controls)


def test_without_cameras_the_state_plot_is_the_main_object_and_the_config_says_why():
    root = ET.fromstring(labeling.labeling_config([], VOCABULARY))
    assert root.find(".//Video") is None
    assert [(i.get("name"), i.get("value")) for i in root.findall(".//Image")] == [
        (labeling.STATE_PLOT, f"${labeling.STATE_PLOT}")
    ]
    assert {c.get("toName") for c in root.iter() if c.get("toName")} == {labeling.STATE_PLOT}
    assert labeling.NO_CAMERAS_NOTE in [h.get("value") for h in root.iter("Header")]


@pytest.mark.parametrize("cameras", [["exterior"], ["exterior", "wrist"]])
def test_labeling_config_has_one_video_per_camera_bound_to_its_clip(cameras):
    root = ET.fromstring(labeling.labeling_config(cameras, VOCABULARY))
    videos = root.findall(".//Video")
    assert [(v.get("name"), v.get("value")) for v in videos] == [(c, f"$video_{c}") for c in cameras]
    # Label Studio assumes 24 fps without frameRate; one sync group plays the cameras together
    assert {(v.get("frameRate"), v.get("sync")) for v in videos} == {("$fps", "clips")}
    assert [i.get("value") for i in root.iter("Image")] == [f"${labeling.KEYFRAME_PLOT}"]


@pytest.mark.parametrize("cameras", [[], ["exterior"]])
def test_the_ratings_sit_beside_the_media_not_below_it(cameras):
    root = ET.fromstring(labeling.labeling_config(cameras, VOCABULARY))
    [columns] = [v for v in root.iter("View") if "display: flex" in (v.get("style") or "")]
    media, ratings = columns.findall("View")
    assert media.find(".//Video" if cameras else ".//Image") is not None
    assert {c.get("name") for c in ratings.iter("Choices")} == {labeling.QUALITY, labeling.CONFIDENCE,
                                                                labeling.SUBACTION}


def test_digits_are_quality_scores_and_confidence_has_its_own_keys():
    root = ET.fromstring(labeling.labeling_config(["exterior"], VOCABULARY))
    assert [(c.get("alias"), c.get("hotkey")) for c in choices(root, labeling.QUALITY)] == [
        ("0", "0"), ("1", "1"), ("2", "2"), ("3", "3")]
    assert [c.get("hotkey") for c in choices(root, labeling.CONFIDENCE)] == list(labeling.CONFIDENCE_HOTKEYS)
    every = [c.get("hotkey") for c in root.iter("Choice") if c.get("hotkey")]
    assert len(every) == len(set(every))


def test_one_subaction_is_chosen_with_radios_and_missing_scores_are_named():
    root = ET.fromstring(labeling.labeling_config(["exterior"], VOCABULARY))
    assert root.find(f".//Choices[@name='{labeling.SUBACTION}']").get("choice") == "single-radio"
    for name in (labeling.QUALITY, labeling.CONFIDENCE):
        assert name in root.find(f".//Choices[@name='{name}']").get("requiredMessage")


@pytest.mark.parametrize("name, scale", [("quality", labeling.QUALITY_SCALE), ("confidence", labeling.CONFIDENCE_SCALE)])
def test_scores_store_the_bare_number_and_show_the_papers_meaning(name, scale):
    root = ET.fromstring(labeling.labeling_config(["exterior"], VOCABULARY))
    found = choices(root, name)
    assert [c.get("alias") for c in found] == [str(s) for s in scale]
    assert [c.get("hint") for c in found] == [hint for _, hint in scale.values()]
    assert root.find(f".//Choices[@name='{name}']").get("required") == "true"


def test_corrections_offer_the_la_vocabulary_and_free_text():
    root = ET.fromstring(labeling.labeling_config(["exterior"], VOCABULARY))
    assert [c.get("value") for c in choices(root, labeling.SUBACTION)] == list(VOCABULARY)
    assert root.find(f".//TextArea[@name='{labeling.INSTRUCTION}']") is not None
    assert {n.get("name") for n in root.findall(".//Number")} == {labeling.START, labeling.END}
