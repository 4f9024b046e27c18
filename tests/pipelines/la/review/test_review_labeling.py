"""The labeling config: the paper's scales as hints, one video per camera, the LA vocabulary."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from annotators.segments.base import VOCABULARY
from pipelines.la.review import labeling


def choices(root: ET.Element, name: str) -> list[ET.Element]:
    return root.find(f".//Choices[@name='{name}']").findall("Choice")


@pytest.mark.parametrize("cameras, vocabulary", [([], VOCABULARY), (["ext"], ())])
def test_labeling_config_refuses_empty_inputs(cameras, vocabulary):
    with pytest.raises(ValueError):
        labeling.labeling_config(cameras, vocabulary)


@pytest.mark.parametrize("cameras", [["exterior"], ["exterior", "wrist"]])
def test_labeling_config_has_one_video_per_camera_bound_to_its_clip(cameras):
    root = ET.fromstring(labeling.labeling_config(cameras, VOCABULARY))
    videos = root.findall(".//Video")
    assert [(v.get("name"), v.get("value")) for v in videos] == [(c, f"$video_{c}") for c in cameras]


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
