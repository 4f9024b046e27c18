"""The pixel pipeline end to end through the Prefect flow on the sample's Fractal and Bridge episodes,
with tiny random-weight Grounding DINO and SAM 2 loaded through their real loading paths.

Random weights find random masks, so the mask filters are opened up (the filters have their own tests);
everything the sample's ground truth fixes is checked: which episodes close and where (G), one row per
frame of every annotated episode in the card's schema, prompts inside their masks, byte-identical resume.
"""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

pytest.importorskip("torch")
pytest.importorskip("tensorflow_datasets")

from datasets_cards import load_output_card
from datasets_cards.codecs import decode_image, rle_to_mask
from pipelines.flows.annotate import annotate
from pipelines.sample.ground_truth import load_ground_truth
from tests.pipelines.hub_checks import check_loads_with_datasets, check_rlds_like_a_training_loader

OPEN_FILTERS = {"max_mask_of_image": 1.0, "max_mask_of_proposal": 1.0, "min_mask_inside_proposal": 0.0,
                "min_mask_pixels": 1, "box_threshold": 0.0, "text_threshold": 0.0}


@pytest.fixture(scope="module", params=["fractal", "bridge"])
def run(request, tmp_path_factory, tiny_grounding_dino_path, tiny_sam2_path):
    schema = request.param
    out = tmp_path_factory.mktemp(f"pixel-{schema}")
    options = {"detector_model": str(tiny_grounding_dino_path), "sam_model": str(tiny_sam2_path), "device": "cpu",
               "batch_size": 4, "montage": 3, **OPEN_FILTERS}
    args = dict(source=f"sample-{schema}", pipeline="pixel", out=str(out), episodes_per_shard=4, options=options)
    manifest = annotate(**args)
    return schema, manifest, out / "pixel" / f"sample-{schema}", args


def test_rows_in_the_card_schema_one_per_frame_of_every_episode_that_closes(run):
    schema, manifest, target, _ = run
    truth = load_ground_truth(schema)
    table = pq.read_table(target / "shards")
    assert table.schema.remove_metadata().equals(load_output_card("pixel").arrow_schema().remove_metadata())
    rows = table.to_pylist()
    quarantine = {q["episode_id"]: q["reason"] for q in pq.read_table(target / "quarantine.parquet").to_pylist()}
    for episode_id in truth.episode_ids:
        episode = truth.episode(episode_id)
        if episode.first_close_frame is None:  # push, pull, press: never closes
            assert quarantine[episode_id].startswith("no_close:")
        elif episode_id not in quarantine:
            mine = [r for r in rows if r["episode_id"] == episode_id]
            assert sorted(r["frame_index"] for r in mine) == list(range(episode.num_frames))
            assert {r["first_close_frame"] for r in mine} == {mine[0]["first_close_frame"]}
    assert manifest.complete and manifest.rows == len(rows) > 0
    assert manifest.quarantined == len(quarantine)


def test_the_first_close_row_carries_the_gripper_mask_detector_box_and_flag(run):
    _, _, target, _ = run
    for row in pq.read_table(target / "shards").to_pylist():
        at_g = row["frame_index"] == row["first_close_frame"]
        assert ("first_close" in row["flags"]) == at_g
        assert (row["gripper_mask"] is not None) == at_g == (row["detector_score"] is not None)
        if at_g:
            assert rle_to_mask(row["gripper_mask"]).shape == (row["height"], row["width"])
            assert row["mask"] is not None and row["box"] is not None


def test_prompts_lie_inside_their_masks_and_lost_frames_have_none(run):
    _, _, target, _ = run
    for row in pq.read_table(target / "shards").to_pylist():
        if "object_lost" in row["flags"]:
            assert row["mask"] is None and row["points"] == [] and row["lines"] == [] and row["box_prompt"] is None
            continue
        mask = rle_to_mask(row["mask"])
        assert mask.shape == (row["height"], row["width"]) == decode_image(row["image"]).shape[:2]
        assert len(row["points"]) == 8 and len(row["lines"]) == 3
        assert all(mask[int(y), int(x)] for x, y in row["points"])
        assert all(mask[int(y0), int(x0)] and mask[int(y1), int(x1)] for x0, y0, x1, y1 in row["lines"])
        ys, xs = np.nonzero(mask)
        assert row["box_prompt"] == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]


def test_card_montage_and_track_statistics(run):
    schema, manifest, target, _ = run
    truth = load_ground_truth(schema)
    card = (target / "card.md").read_text()
    assert "## Gripper track" in card and "## Discards" in card and "no_close" in card
    assert (target / "montage.png").stat().st_size > 0 and "![montage](montage.png)" in card
    track = manifest.stats["gripper_track"]
    closing = sum(truth.episode(e).first_close_frame is not None for e in truth.episode_ids)
    assert track["frames"] == closing and 0 < track["with_mask"] <= closing  # one first-close frame per closing episode
    assert manifest.stats["discards"]["no_close"] == 6


def test_a_second_run_resumes_without_reading_or_rewriting(run):
    _, first, target, args = run
    before = {p.name: p.read_bytes() for p in (target / "shards").iterdir()}
    second = annotate(**args)
    assert [s.sha256 for s in second.shards] == [s.sha256 for s in first.shards]
    assert {p.name: p.read_bytes() for p in (target / "shards").iterdir()} == before


def test_view_draws_masks_boxes_and_prompts_of_every_frame(run, tmp_path):
    """`view` read back with Rerun's own reader: a mask of the RLE's area, a box and the prompts on each row that
    has them, the gripper mask at G only."""
    pytest.importorskip("rerun")
    from pycocotools import mask as coco_mask

    from pipelines.view import ViewError, write_recording
    from tests.pipelines.rerun_recording import read_recording

    _, manifest, target, _ = run
    rows = pq.read_table(target / "shards").to_pylist()
    episode = rows[0]["episode_id"]
    rows = sorted((r for r in rows if r["episode_id"] == episode), key=lambda r: r["frame_index"])
    logged = read_recording(write_recording(str(target), episode, str(tmp_path / "pixel.rrd")).path)
    camera = f"/camera/{rows[0]['camera']}"

    def frames(path, archetype):
        entry = logged.get((f"{camera}{path}", archetype))
        return entry.frames if entry else []

    assert frames("", "EncodedImage") == frames("/proposal", "Boxes2D") == [r["frame_index"] for r in rows]
    assert frames("/box", "Boxes2D") == [r["frame_index"] for r in rows if r["box"] is not None]
    assert frames("/prompts/box", "Boxes2D") == [r["frame_index"] for r in rows if r["box_prompt"] is not None]
    assert frames("/prompts/points", "Points2D") == [r["frame_index"] for r in rows if r["points"]]
    assert frames("/gripper_mask", "SegmentationImage") == [rows[0]["first_close_frame"]]
    masked = [r for r in rows if r["mask"] is not None]
    assert frames("/mask", "SegmentationImage") == [r["frame_index"] for r in masked]
    buffers = logged[(f"{camera}/mask", "SegmentationImage")].columns["buffer"] if masked else []
    for row, buffer in zip(masked, buffers):  # the RLE decoded by pycocotools, pixel for pixel in area
        rle = {"size": row["mask"]["size"], "counts": row["mask"]["counts"].encode()}
        assert np.count_nonzero(np.asarray(buffer[0])) == int(coco_mask.area(rle))
    quarantined = pq.read_table(target / "quarantine.parquet").to_pylist()
    if quarantined:  # an episode without rows: the reason, not a recording
        with pytest.raises(ViewError, match="quarantined"):
            write_recording(str(target), quarantined[0]["episode_id"], str(tmp_path / "none.rrd"))
    if masked:
        points = logged[(f"{camera}/prompts/points", "Points2D")].columns["positions"][0]
        np.testing.assert_allclose(points, masked[0]["points"])
        assert len(logged[(f"{camera}/prompts/lines", "LineStrips2D")].columns["strips"][0]) == len(masked[0]["lines"])


def test_the_folder_loads_with_datasets_images_as_pil_and_masks_as_rle_structs(run, tmp_path):
    _, _, target, _ = run  # quarantine.parquet and the staged gripper track lie beside the shards
    check_loads_with_datasets(target, tmp_path / "hf")


def test_the_rlds_export_reads_like_a_training_loader(run, tmp_path):
    _, _, target, _ = run
    check_rlds_like_a_training_loader(target, tmp_path / "rlds", instruction="instruction", image="image",
                                      state="state")
