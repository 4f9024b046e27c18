"""The gaze pipeline end to end through the Prefect flow, with a tiny random-weight Grounding DINO.

Runs on the sample's Bridge-schema episodes (card sample-bridge) when the sample
has been generated, else on a tiny RLDS dataset in the published Bridge schema.
"""

from pathlib import Path

import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest

pytest.importorskip("torch")
pytest.importorskip("tensorflow_datasets")

from datasets_cards import load_output_card  # noqa: E402
from datasets_cards.constants import PROJECT_ROOT  # noqa: E402
from pipelines.flows.annotate import annotate  # noqa: E402
from tests.pipelines.hub_checks import check_loads_with_datasets, check_rlds_like_a_training_loader  # noqa: E402

SAMPLE_CARD = PROJECT_ROOT / "datasets_cards" / "sources" / "sample-bridge.yaml"


def bridge_source(tmp_path) -> tuple[str, str | None]:
    """(source card, location): the generated sample when present, else an RLDS fixture."""
    if SAMPLE_CARD.exists():
        from datasets_cards import load_source_card

        card = load_source_card("sample-bridge")
        if Path(card.resolve_location()).exists():
            return "sample-bridge", None
    from tests.pipelines.formats.rlds_fixtures import make_rlds_fixture

    return "bridge", str(make_rlds_fixture(tmp_path / "rlds", "bridge", n_episodes=3, n_steps=6))


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_grounding_dino_path):
    tmp = tmp_path_factory.mktemp("gaze-flow")
    source, location = bridge_source(tmp)
    out = tmp / "out"
    options = {"model": str(tiny_grounding_dino_path), "device": "cpu", "batch_size": 4, "montage": 4}
    manifest = annotate(source=source, pipeline="gaze", out=str(out), limit=2, episodes_per_shard=1,
                        location=location, options=options)
    return manifest, out / "gaze" / source


def test_flow_writes_one_row_per_frame_and_camera_in_the_card_schema(run):
    manifest, target = run
    assert manifest.complete and manifest.quarantined == 0 and len(manifest.shards) == 2
    table = pq.read_table(target / "shards")
    assert table.schema.remove_metadata().equals(load_output_card("gaze").arrow_schema().remove_metadata())
    assert table.num_rows == manifest.rows == manifest.stats["frames"] > 0
    assert len(set(table.column("episode_id").to_pylist())) == 2


def test_rows_have_a_crop_exactly_when_they_have_a_box_inside_the_crop_window(run):
    _, target = run
    for row in pq.read_table(target / "shards").to_pylist():
        assert (row["box"] is None) == (row["crop"] is None) == (row["crop_box"] is None) == ("no_box" in row["flags"])
        assert row["target_phrase"].endswith(".") and row["target_phrase"] == row["target_phrase"].lower()
        image = cv2.imdecode(np.frombuffer(row["image"], np.uint8), cv2.IMREAD_COLOR)
        assert image.shape[:2] == (row["height"], row["width"])
        if row["box"] is not None:
            x0, y0, x1, y1 = row["crop_box"]
            assert x0 <= row["box"][0] + 1e-3 and y0 <= row["box"][1] + 1e-3
            assert x1 >= row["box"][2] - 1e-3 and y1 >= row["box"][3] - 1e-3
            assert 0 <= x0 < x1 <= row["width"] and 0 <= y0 < y1 <= row["height"]


def test_card_reports_coverage_and_shows_the_montage(run):
    manifest, target = run
    card = (target / "card.md").read_text()
    assert "## Coverage" in card and f"of {manifest.stats['frames']} frames" in card
    if manifest.stats["with_box"]:
        assert "montage.png" in card
        montage = cv2.imread(str(target / "montage.png"))
        assert montage is not None and montage.shape[0] > 0


def test_view_draws_the_box_crop_window_and_crop_on_exactly_the_frames_with_a_box(run, tmp_path):
    """`view` read back with Rerun's own reader: one image per row, a box entry per row with a box."""
    pytest.importorskip("rerun")
    from pipelines.view import write_recording
    from tests.pipelines.rerun_recording import read_recording

    manifest, target = run
    episode = pq.read_table(target / "shards").column("episode_id")[0].as_py()
    rows = [r for r in pq.read_table(target / "shards").to_pylist() if r["episode_id"] == episode]
    logged = read_recording(write_recording(str(target), episode, str(tmp_path / "gaze.rrd")).path)
    fps = manifest.source_card().fps
    for camera in {r["camera"] for r in rows}:
        mine = sorted((r for r in rows if r["camera"] == camera), key=lambda r: r["frame_index"])
        boxed = [r for r in mine if r["box"] is not None]
        image = logged[(f"/camera/{camera}", "EncodedImage")]
        assert image.frames == [r["frame_index"] for r in mine]
        assert image.seconds == pytest.approx([r["frame_index"] / fps for r in mine])
        # a frame without a box clears the one before it (else the viewer keeps showing the latest box)
        cleared = [b["frame_index"] for a, b in zip(mine, mine[1:]) if a["box"] is not None and b["box"] is None]
        for path in (f"/camera/{camera}/gaze_box", f"/camera/{camera}/crop_window"):
            assert logged[(path, "Boxes2D")].frames == [r["frame_index"] for r in boxed]
            assert (logged[(path, "Clear")].frames if (path, "Clear") in logged else []) == cleared
        crops = logged.get((f"/crop/{camera}", "EncodedImage"))
        assert (crops.frames if crops else []) == [r["frame_index"] for r in boxed]
        if boxed:  # xyxy as Rerun's centre and half size
            x0, y0, x1, y1 = boxed[0]["box"]
            box = logged[(f"/camera/{camera}/gaze_box", "Boxes2D")]
            np.testing.assert_allclose(box.columns["centers"][0], [[(x0 + x1) / 2, (y0 + y1) / 2]], atol=1e-3)
            np.testing.assert_allclose(box.columns["half_sizes"][0], [[(x1 - x0) / 2, (y1 - y0) / 2]], atol=1e-3)
            assert boxed[0]["target_phrase"] in box.columns["labels"][0][0]


def test_the_folder_loads_with_datasets_images_and_crops_as_pil(run, tmp_path):
    _, target = run
    check_loads_with_datasets(target, tmp_path / "hf")


def test_the_rlds_export_reads_like_a_training_loader(run, tmp_path):
    _, target = run
    check_rlds_like_a_training_loader(target, tmp_path / "rlds", instruction="instruction", image="image",
                                      state="state")
