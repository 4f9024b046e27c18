"""README.md for the Hub (pipelines/hub_card.py): its header read by `datasets` itself.

Built on small folders written here (ShardWriter + manifest, no flow run); every pipeline's real output is
loaded by the flow tests (tests/pipelines/*/test_*_flow.py through tests/pipelines/hub_checks.py).
"""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pytest
import yaml
from PIL import Image

from datasets_cards import load_output_card, load_source_card
from datasets_cards.codecs import encode_image, mask_to_rle
from datasets_cards.constants import HUB_README_FILE, QUARANTINE_FILE, SHARD_PATTERN, SHARDS_DIR
from datasets_cards.manifest import Generation, Manifest, ShardRecord
from pipelines.card import write_cards
from pipelines.hub_card import data_files, hub_features, hub_license
from pipelines.io import ShardWriter
from tests.pipelines.hub_checks import check_loads_with_datasets

datasets = pytest.importorskip("datasets")

PIPELINES = ("la", "gaze", "pixel", "future")


def header(folder) -> dict:
    text = (folder / HUB_README_FILE).read_text()
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


@pytest.mark.parametrize("pipeline", PIPELINES)
def test_features_are_the_ones_datasets_derives_from_the_cards_arrow_schema(pipeline):
    card = load_output_card(pipeline)
    expected = datasets.Features.from_arrow_schema(card.arrow_schema())
    for column in card.columns:
        if column.image:
            expected[column.name] = datasets.Image()
    assert hub_features(card) == expected._to_yaml_list()
    assert datasets.Features._from_yaml_list(hub_features(card)) == expected


def test_image_columns_are_binary_in_the_card():
    from datasets_cards.output import ColumnSpec

    with pytest.raises(ValueError, match="needs type binary"):
        ColumnSpec(name="x", type="string", description="", image=True)


def test_licenses_are_the_hubs_ids():
    assert hub_license(load_source_card("droid")) == "cc-by-4.0"
    assert hub_license(load_source_card("egodex")) == "cc-by-nc-nd-4.0"
    assert hub_license(load_source_card("sample-droid")) == "apache-2.0"
    assert hub_license(load_source_card("droid").model_copy(update={"license": ""})) == "unknown"


def _pixel_row(episode: str, frame: int, *, lost: bool) -> dict:
    h, w = 12, 16
    image = np.zeros((h, w, 3), np.uint8)
    image[:, :, 0] = 20 * frame
    mask = np.zeros((h, w), bool)
    mask[2:6, 3:9] = True
    rle = None if lost else mask_to_rle(mask)
    return {
        "episode_id": episode, "source": "sample-fractal", "camera": "image", "frame_index": frame,
        "first_close_frame": 0, "instruction": "pick the can", "target_noun": "can",
        "image": encode_image(image), "width": w, "height": h, "state": [0.1, float(frame)], "gripper": 1.0,
        "action": [0.0] * 3, "proposal_box": [0.0, 0.0, 8.0, 8.0], "gripper_mask": rle if frame == 0 else None,
        "box": None if lost else [3.0, 2.0, 9.0, 6.0], "mask": rle, "points": [] if lost else [[4.0, 3.0]],
        "lines": [], "box_prompt": None if lost else [3.0, 2.0, 9.0, 6.0], "detector_score": 0.5 if frame == 0 else None,
        "mask_score": None, "flags": ["object_lost"] if lost else ["first_close"] * (frame == 0),
    }


def _write_folder(folder, rows_per_shard: list[list[dict]], *, verified: list[list[dict]] | None = None) -> Manifest:
    """OUT/pixel/sample-fractal with shards, a manifest, card.md and README.md, and what else a run leaves
    there in Parquet: quarantine, staged parts, a writer's temporary file."""
    card = load_output_card("pixel")

    def write(folder_name: str, shards: list[list[dict]]) -> list[ShardRecord]:
        records = []
        for index, rows in enumerate(shards):
            relative = f"{folder_name}/{SHARD_PATTERN.format(index=index)}"
            with ShardWriter(card, str(folder / relative)) as writer:
                writer.write_rows(rows)
            n, size, sha = writer.result
            records.append(ShardRecord(unit=f"{index}:{index + 1}", path=relative, rows=n, bytes=size, sha256=sha,
                                       episodes=[], seconds=0.0))
        return records

    manifest = Manifest(
        pipeline="pixel", output_card_version=card.version, source="sample-fractal", source_location="tests",
        config_hash="0", config={"source": load_source_card("sample-fractal").model_dump(mode="json")},
        code_version="test", created="now", updated="now", complete=True, planned_units=len(rows_per_shard),
        shards=write(SHARDS_DIR, rows_per_shard),
    )
    if verified is not None:
        manifest.verified = Generation(number=1, created="now", shards=write("verified/0001", verified))
    stray = pa.table({"episode_id": ["x"], "reason": ["no_close: never closes"]})
    import pyarrow.parquet as pq

    for path in (QUARANTINE_FILE, "_staging/gripper_track/unit-00000.parquet", "_quarantine/unit-00000.parquet",
                 f"{SHARDS_DIR}/.tmp-0123abcd-shard-00009.parquet", "lerobot/data/chunk-000/file-000.parquet"):
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(stray, folder / path)
    manifest.save(str(folder))
    write_cards(str(folder), card, manifest, manifest.source_card())
    return manifest


def test_a_folder_loads_with_no_data_files_and_only_its_shards(tmp_path):
    folder = tmp_path / "pixel" / "sample-fractal"
    shards = [[_pixel_row("e0", 0, lost=False), _pixel_row("e0", 1, lost=True)], [_pixel_row("e1", 0, lost=False)]]
    _write_folder(folder, shards)
    meta = header(folder)
    assert meta["configs"] == [{"config_name": "default", "data_files": [{"split": "train", "path": ["shards/shard-*.parquet"]}]}]
    assert meta["license"] == "apache-2.0" and meta["task_categories"] == ["robotics", "image-segmentation"]
    assert meta["pretty_name"] and meta["size_categories"] == ["n<1K"]
    assert (folder / HUB_README_FILE).read_text().endswith((folder / "card.md").read_text())

    check_loads_with_datasets(folder, tmp_path / "hf")  # 3 rows: the Parquet files around the shards stay out
    ds = datasets.load_dataset(str(folder), split="train", cache_dir=str(tmp_path / "hf"))
    first, lost = ds[0], ds[1]
    assert isinstance(first["image"], Image.Image) and first["image"].size == (16, 12)
    assert first["mask"]["size"] == [12, 16] and isinstance(first["mask"]["counts"], str)
    assert lost["mask"] is None and lost["box"] is None and lost["gripper_mask"] is None
    np.testing.assert_array_equal(np.asarray(first["image"]), np.asarray(Image.open(io.BytesIO(shards[0][0]["image"]))))


def test_a_reviewed_generation_is_what_the_readme_names(tmp_path):
    folder = tmp_path / "pixel" / "sample-fractal"
    candidates = [[_pixel_row("e0", 0, lost=False), _pixel_row("e0", 1, lost=True)]]
    manifest = _write_folder(folder, candidates, verified=[[_pixel_row("e0", 0, lost=False)]])
    assert data_files(manifest) == ["verified/0001/shard-*.parquet"]
    assert header(folder)["configs"][0]["data_files"][0]["path"] == ["verified/0001/shard-*.parquet"]
    check_loads_with_datasets(folder, tmp_path / "hf")
    assert datasets.load_dataset(str(folder), split="train", cache_dir=str(tmp_path / "hf")).num_rows == 1


def test_a_shard_named_otherwise_is_listed_by_name_and_no_shard_matches_nothing():
    manifest = Manifest(pipeline="la", output_card_version="1.0.0", source="s", source_location="x", config_hash="0",
                        config={}, code_version="t", created="now", updated="now")
    assert data_files(manifest) == ["shards/shard-*.parquet"]
    manifest.shards = [ShardRecord(unit="0:1", path="shards/shard-00000.parquet", rows=1, bytes=1, sha256="0",
                                   episodes=[], seconds=0.0),
                       ShardRecord(unit="1:2", path="shards/part-b.parquet", rows=1, bytes=1, sha256="0",
                                   episodes=[], seconds=0.0)]
    assert data_files(manifest) == ["shards/part-b.parquet", "shards/shard-*.parquet"]
