"""The future pipeline end to end through the Prefect flow with a tiny random-weight Qwen2.5-VL.

sample-droid (3 episodes, 2 per unit, so batches cross episodes inside a unit) and a small
EgoDex-layout folder built here; the recipe trains a few steps on the result; a run killed
with SIGKILL after its first shard resumes to the rows of the uninterrupted run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

pytest.importorskip("tensorflow_datasets")

from annotators.kinematics.pose import pose_to_rot6d
from annotators.vision import VisionEncoderConfig, make_vision_encoder
from annotators.vision.views import image_to_view, view_box
from datasets_cards import list_sources, load_output_card, load_source_card
from pipelines.flows.annotate import annotate
from pipelines.formats import open_reader
from pipelines.io.video import VideoEncoder
from tests.pipelines.hub_checks import check_loads_with_datasets, check_rlds_like_a_training_loader

pytestmark = pytest.mark.skipif("sample-droid" not in list_sources(), reason="needs the embedded sample")
EPISODES, PER_UNIT = 3, 2


def options(model: Path) -> dict:
    return {"model": str(model), "device": "cpu", "batch_size": 48, "decode_workers": 2}


@pytest.fixture(scope="module")
def droid(tmp_path_factory, tiny_qwen_path):
    out = tmp_path_factory.mktemp("future-flow") / "out"
    manifest = annotate(source="sample-droid", pipeline="future", out=str(out), limit=EPISODES,
                        episodes_per_shard=PER_UNIT, options=options(tiny_qwen_path), retries=0)
    return manifest, out / "future" / "sample-droid"


def table(target: Path):
    return pq.read_table(target / "shards")


def test_flow_writes_one_row_per_frame_in_the_card_schema(droid):
    manifest, target = droid
    assert manifest.complete and manifest.quarantined == 0 and len(manifest.shards) == 2
    rows = table(target)
    assert rows.schema.remove_metadata().equals(load_output_card("future").arrow_schema().remove_metadata())
    episodes = list(open_reader(load_source_card("sample-droid")).read(0, EPISODES))
    assert rows.num_rows == manifest.rows == sum(e.num_frames for e in episodes)
    assert manifest.stats["feature"] == {"tokens": 64, "dim": 24, "grid": [8, 8], "dtype": "float16", "bytes": 3072}
    assert {len(f) for f in rows.column("feature").to_pylist()} == {64 * 24}
    assert set(rows.column("camera").to_pylist()) == {"exterior_1_left"}


def test_every_row_holds_the_tokens_of_its_own_frame(droid, tiny_qwen_path):
    """Rows against the encoder run on their frames one by one: batching across episodes keeps them apart."""
    _, target = droid
    encoder = make_vision_encoder("qwen2_5_vl", VisionEncoderConfig(model=str(tiny_qwen_path), device="cpu"))
    rows = {(r["episode_id"], r["frame_index"]): r for r in table(target).to_pylist()}
    view = load_source_card("sample-droid").params.future.view
    for episode in open_reader(load_source_card("sample-droid")).read(0, EPISODES):
        frames = episode.frames["exterior_1_left"]
        for t in (0, 47, 48, episode.num_frames - 1):  # the first unit's batches of 48 cut inside episode 0
            image = frames[t]
            box = view_box(*image.shape[:2], tuple(view.rows), tuple(view.cols), view.crop)
            expected = encoder.encode(image_to_view(image, box, tuple(view.size))[None]).tokens[0].reshape(-1)
            np.testing.assert_allclose(np.asarray(rows[(episode.episode_id, t)]["feature"], np.float32),
                                       expected.astype(np.float32), atol=2e-3, rtol=2e-3)


def test_state_and_actions_follow_the_droid_cards_layout(droid):
    _, target = droid
    episode = next(iter(open_reader(load_source_card("sample-droid")).read(0, 1)))
    rows = sorted((r for r in table(target).to_pylist() if r["episode_id"] == episode.episode_id),
                  key=lambda r: r["frame_index"])
    state = np.array([r["state"] for r in rows])
    assert rows[0]["state_valid"] == [1] * 9 + [0] * 9 + [1, 0] == rows[0]["action_valid"]
    np.testing.assert_allclose(state[:, :9], pose_to_rot6d(episode.arm_state), atol=1e-5)
    np.testing.assert_allclose(state[:, 18], episode.gripper)
    actions = np.array([a for r in rows for a in r["actions"]])
    np.testing.assert_array_equal(actions[:-1], state[1:])
    assert {r["num_frames"] for r in rows} == {episode.num_frames}


def test_card_reports_bytes_per_frame_and_the_projected_size(droid):
    manifest, target = droid
    storage = manifest.stats["storage"]
    assert storage["bytes_per_source_frame"] == pytest.approx(storage["shard_bytes"] / manifest.stats["source_frames"])
    assert storage["projected_corpus_bytes"] == int(storage["bytes_per_source_frame"] * 27_000_000)
    assert storage["source_episodes"] == 12
    card = (target / "card.md").read_text()
    assert "## Storage" in card and "bytes per source frame" in card
    assert "projected for the whole corpus (27,000,000 frames" in card and "What DIAL does" in card


def test_shards_load_with_hf_datasets(droid, tmp_path):
    datasets = pytest.importorskip("datasets")
    manifest, target = droid
    files = sorted(str(p) for p in (target / "shards").glob("shard-*.parquet"))
    ds = datasets.load_dataset("parquet", data_files=files, split="train", cache_dir=str(tmp_path / "hf"))
    assert ds.num_rows == manifest.rows
    assert np.asarray(ds.with_format("numpy")[0:2]["feature"]).shape == (2, 64 * 24)


def test_the_recipe_trains_a_few_steps_on_the_shards(droid, tmp_path):
    from trainer.models import ModelConfig
    from trainer.train import TrainConfig, train

    _, target = droid
    cfg = TrainConfig(recipe="future", data=str(target), out=str(tmp_path / "ckpt"), steps=6, batch_size=16,
                      num_workers=0, log_interval=0, ckpt_interval=1000, buffer_size=32, warmup=1,
                      holdout_fraction=0.4, model=ModelConfig(dim=32, layers=1, heads=2, flow_steps=2))
    result = train(cfg)
    assert len(result["losses"]) == 6 and all(np.isfinite(result["losses"])) and any(result["losses"])


def test_a_second_run_reads_nothing_and_keeps_the_shards(droid, tiny_qwen_path):
    manifest, target = droid
    again = annotate(source="sample-droid", pipeline="future", out=str(target.parents[1]), limit=EPISODES,
                     episodes_per_shard=PER_UNIT, options=options(tiny_qwen_path), retries=0)
    assert [s.sha256 for s in again.shards] == [s.sha256 for s in manifest.shards]


# ---- EgoDex ---------------------------------------------------------------------------------------------

def write_egodex(folder: Path, name: str, t: int, description: str) -> None:
    """An EgoDex-layout episode: 4×4 ARKit poses of both wrists and the camera, a video, a description."""
    import h5py

    folder.mkdir(parents=True, exist_ok=True)
    with h5py.File(folder / f"{name}.hdf5", "w") as f:
        f.attrs["llm_description"] = description
        for joint, side in (("rightHand", 1.0), ("leftHand", -1.0)):
            poses = np.tile(np.eye(4), (t, 1, 1))
            poses[:, :3, 3] = np.stack([np.full(t, 0.2 * side), np.linspace(1.0, 1.2, t), -0.4 * np.ones(t)], 1)
            f[f"transforms/{joint}"] = poses
        f["transforms/camera"] = np.tile(np.eye(4), (t, 1, 1))
    frames = np.stack([np.full((72, 128, 3), 30 + 9 * i, np.uint8) for i in range(t)])
    with VideoEncoder(str(folder / f"{name}.mp4"), fps=30, height=72, width=128) as encoder:
        encoder.write(frames)


def test_egodex_rows_carry_dials_mapping_in_the_shared_layout(tmp_path, tiny_qwen_path):
    root = tmp_path / "egodex"
    write_egodex(root / "basic_pick_place", "0", 12, "pick up the cup and put it in the box")
    write_egodex(root / "basic_pick_place", "1", 9, "pick up the banana")
    manifest = annotate(source="egodex", pipeline="future", out=str(tmp_path / "out"), location=str(root),
                        options=options(tiny_qwen_path), retries=0)
    assert manifest.complete and manifest.rows == 21 and manifest.quarantined == 0
    rows = sorted(table(tmp_path / "out" / "future" / "egodex").to_pylist(),
                  key=lambda r: (r["episode_id"], r["frame_index"]))
    first = [r for r in rows if r["episode_id"] == "egodex-basic_pick_place-0"]
    assert first[0]["instruction"] == "pick up the cup and put it in the box" and first[0]["camera"] == "ego"
    assert first[0]["state_valid"] == [1] * 18 + [0, 0] == first[0]["action_valid"]
    state = np.array([r["state"] for r in first])
    # ARKit → robot axes: right wrist (0.2, y, -0.4) → (0.4, -0.2, y); its identity rotation → the axes' columns
    np.testing.assert_allclose(state[:, :3], np.stack([np.full(12, 0.4), np.full(12, -0.2),
                                                       np.linspace(1.0, 1.2, 12)], 1), atol=1e-5)
    np.testing.assert_allclose(state[0, 3:9], [0, -1, 0, 0, 0, 1], atol=1e-6)
    np.testing.assert_allclose(state[:, 9], np.full(12, 0.4), atol=1e-5)
    np.testing.assert_allclose(state[:, 10], np.full(12, 0.2), atol=1e-5)  # the left wrist sits left (+y)
    assert (state[:, 18:] == 0).all()
    actions = np.array([a for r in first for a in r["actions"]])
    np.testing.assert_array_equal(actions[:-1], state[1:])  # action(t) = state(t+1)
    card = (tmp_path / "out" / "future" / "egodex" / "card.md").read_text()
    assert "rows 0.3–1.0" in card


# ---- kill and resume ------------------------------------------------------------------------------------

def command(out: Path, model: Path) -> list[str]:
    opts = [x for k, v in options(model).items() for x in ("--option", f"{k}={json.dumps(v)}")]
    return [sys.executable, "-m", "pipelines", "annotate", "sample-droid", "--pipeline", "future", "--out", str(out),
            "--limit", str(EPISODES), "--episodes-per-shard", str(PER_UNIT), "--workers", "1", *opts]


@pytest.mark.slow
@pytest.mark.server
def test_a_run_killed_after_its_first_shard_resumes_to_the_uninterrupted_rows(droid, tiny_qwen_path, prefect_api,
                                                                              tmp_path):
    _, reference = droid
    env = {**os.environ, **prefect_api}
    out = tmp_path / "killed"
    shards = out / "future" / "sample-droid" / "shards"
    proc = subprocess.Popen(command(out, tiny_qwen_path), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    while proc.poll() is None and not list(shards.glob("shard-*.parquet")) and time.monotonic() < deadline:
        time.sleep(0.02)
    killed = proc.poll() is None
    if killed:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(30)
    assert killed, "the run finished before it could be killed; the test proves nothing"
    assert len(list(shards.glob("shard-*.parquet"))) == 1
    subprocess.run(command(out, tiny_qwen_path), env=env, check=True, capture_output=True, timeout=600)

    def keyed(target: Path) -> dict:
        return {(r["episode_id"], r["frame_index"], r["view"]): r for r in table(target).to_pylist()}

    got, expected = keyed(out / "future" / "sample-droid"), keyed(reference)
    assert sorted(got) == sorted(expected)  # every row once: no loss, no duplicate
    for key in list(expected)[::50]:
        np.testing.assert_allclose(got[key]["feature"], expected[key]["feature"], atol=2e-3, rtol=2e-3)
    assert sorted(p.name for p in shards.iterdir()) == ["shard-00000.parquet", "shard-00001.parquet"]


def test_view_plots_the_feature_norm_of_every_stored_frame(droid, tmp_path):
    """`view` read back with Rerun's own reader: the mean token norm of each row, the token grid, the t+H distance."""
    pytest.importorskip("rerun")
    from pipelines.view import write_recording
    from tests.pipelines.rerun_recording import read_recording

    manifest, target = droid
    episode = table(target).column("episode_id")[0].as_py()
    rows = sorted((r for r in table(target).to_pylist() if r["episode_id"] == episode),
                  key=lambda r: (r["camera"], r["view"], r["frame_index"]))
    logged = read_recording(write_recording(str(target), episode, str(tmp_path / "future.rrd")).path)
    tokens = manifest.stats["feature"]["tokens"]
    for camera, view in {(r["camera"], r["view"]) for r in rows}:
        mine = [r for r in rows if (r["camera"], r["view"]) == (camera, view)]
        norm = logged[(f"/plot/feature_norm/{camera}/view_{view}", "Scalars")]
        assert norm.frames == [r["frame_index"] for r in mine]
        expected = [np.linalg.norm(np.asarray(r["feature"], np.float32).reshape(tokens, -1), axis=1).mean()
                    for r in mine]
        assert [v[0] for v in norm.columns["scalars"]] == pytest.approx(expected, rel=1e-4)
        if view == 0:
            assert logged[(f"/{camera}/token_norms", "Tensor")].frames == norm.frames
            assert logged[(f"/plot/foresight/{camera}", "Scalars")].frames == norm.frames


def test_the_folder_loads_with_datasets_from_its_readme(droid, tmp_path):
    _, target = droid
    check_loads_with_datasets(target, tmp_path / "hf")


def test_the_rlds_export_reads_like_a_training_loader(droid, tmp_path):
    _, target = droid
    check_rlds_like_a_training_loader(target, tmp_path / "rlds", instruction="instruction", state="state")
