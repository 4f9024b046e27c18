"""The future recipe: pairing t with t+H (episode ends, stride, any arrival order), training, the bottleneck, mixing."""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest
import torch

from tests.trainer.factories import (
    FUTURE_DIM,
    FUTURE_TOKENS,
    FUTURE_WIDTH,
    make_future_folder,
)
from trainer.models import ModelConfig
from trainer.recipes.future import FuturePairs
from trainer.train import TrainConfig, train

TOKENS, DIM, WIDTH = FUTURE_TOKENS, FUTURE_DIM, FUTURE_WIDTH
future_folder = make_future_folder


def batch_of(rows: list[dict]) -> dict:
    """Rows as CardCollate hands them over (the columns the recipe reads)."""
    longest = max(len(r["actions"]) for r in rows)
    actions = torch.zeros(len(rows), longest, WIDTH)
    mask = torch.zeros(len(rows), longest, dtype=torch.bool)
    for i, r in enumerate(rows):
        actions[i, : len(r["actions"])] = torch.tensor(np.asarray(r["actions"]))
        mask[i, : len(r["actions"])] = True
    return {
        "episode_id": [r["episode_id"] for r in rows], "camera": [r["camera"] for r in rows],
        "view": torch.tensor([r["view"] for r in rows]), "frame_index": torch.tensor([r["frame_index"] for r in rows]),
        "num_frames": torch.tensor([r["num_frames"] for r in rows]),
        "feature": torch.tensor(np.stack([r["feature"] for r in rows]), dtype=torch.float32),
        "state": torch.tensor(np.stack([r["state"] for r in rows])), "actions": actions, "actions_mask": mask,
        "state_valid": torch.tensor(np.stack([r["state_valid"] for r in rows])),
        "action_valid": torch.tensor(np.stack([r["action_valid"] for r in rows])),
    }


def frame_rows(episode: str, num_frames: int, stride: int = 1) -> list[dict]:
    """Rows whose feature is the frame index and whose actions are the step indices (checkable pairings)."""
    frames = list(range(0, num_frames, stride))
    frames += [] if frames[-1] == num_frames - 1 else [num_frames - 1]
    ends = [*frames[1:], num_frames]
    return [{
        "episode_id": episode, "camera": "cam", "view": 0, "frame_index": t, "num_frames": num_frames,
        "feature": np.full(TOKENS * DIM, t, np.float32), "state": np.full(WIDTH, t, np.float32),
        "state_valid": np.ones(WIDTH, np.uint8), "action_valid": np.ones(WIDTH, np.uint8),
        "actions": [np.full(WIDTH, s, np.float32) for s in range(t, end)],
    } for t, end in zip(frames, ends, strict=True)]


def pairs_of(rows: list[dict], horizon=16, chunk=16, stride=1, seed=0, per_batch=5) -> tuple[FuturePairs, dict]:
    rows = list(rows)
    random.Random(seed).shuffle(rows)
    pairs = FuturePairs(horizon, chunk, stride, TOKENS)
    for i in range(0, len(rows), per_batch):
        pairs.add(batch_of(rows[i : i + per_batch]))
    return pairs, {int(s.current[0, 0]): s for s in pairs.take(len(pairs.ready))}


@pytest.mark.parametrize(("num_frames", "stride", "t", "target", "real_steps"), [
    (40, 1, 0, 16, 16),
    (40, 1, 23, 39, 16),
    (40, 1, 30, 39, 10),  # near the end: t+H clipped to T−1, steps past the end masked
    (40, 1, 39, 39, 1),  # the last frame is its own future
    (20, 1, 10, 19, 10),
    (40, 3, 0, 15, 16),  # t+H = 16 is not stored: rounded down to 15
    (40, 3, 24, 39, 16),  # 40 → clipped to 39, the last frame is always stored
    (40, 3, 39, 39, 1),
    (1, 1, 0, 0, 1),  # a one-frame episode
])
def test_each_frame_pairs_with_t_plus_h_clipped_at_the_episode_end(num_frames, stride, t, target, real_steps):
    pairs, samples = pairs_of(frame_rows("ep", num_frames, stride), stride=stride)
    stored = {r["frame_index"] for r in frame_rows("ep", num_frames, stride)}
    assert set(samples) == stored  # every stored frame, once
    sample = samples[t]
    assert int(sample.future[0, 0]) == target
    assert sample.step_mask.sum() == real_steps and sample.chunk.shape == (16, WIDTH)
    expected = [min(t + k, num_frames - 1) for k in range(16)]
    assert sample.chunk[:, 0].tolist() == expected  # steps t .. t+15, the last one held past the end
    assert pairs.held == 0 and not pairs.episodes  # every row let go once nothing needs it


def test_episodes_views_and_cameras_never_mix_and_rows_are_released_as_they_are_used():
    rows = frame_rows("a", 30) + frame_rows("b", 25) + [dict(r, view=1) for r in frame_rows("a", 30)]
    pairs = FuturePairs(16, 16, 1, TOKENS)
    held = []
    for i in range(0, len(rows), 7):  # in order, as a shard's row group arrives
        pairs.add(batch_of(rows[i : i + 7]))
        held.append(pairs.held)
    assert len(pairs.ready) == 85 and pairs.held == 0
    assert max(held) <= 16 + 7 + 1  # never much more than H rows of an episode in flight
    by_episode = {}
    for s in pairs.take(85):
        by_episode.setdefault(s.episode, []).append(int(s.future[0, 0]) - int(s.current[0, 0]))
    assert max(by_episode["a"]) == 16 and len(by_episode["a"]) == 60 and len(by_episode["b"]) == 25


def test_a_full_pool_drops_the_least_recently_fed_episode():
    pairs = FuturePairs(16, 16, 1, TOKENS, max_rows=10)
    pairs.add(batch_of(frame_rows("old", 30)[:8]))  # waits for frames 8 .. 23
    pairs.add(batch_of(frame_rows("new", 30)[:8]))
    assert "old" not in {k[0] for k in pairs.episodes} and pairs.dropped == 30


# ---- training ---------------------------------------------------------------------------------------------

def config(data, out, **kw) -> TrainConfig:
    base = {"recipe": "future", "data": str(data), "out": str(out), "steps": 150, "batch_size": 16, "lr": 3e-3,
            "warmup": 5, "num_workers": 0, "log_interval": 0, "ckpt_interval": 10_000, "buffer_size": 16,
            "holdout_fraction": 0.25, "model": ModelConfig(dim=32, layers=1, heads=2, flow_steps=4, foresight=8, chunk=1)}
    return TrainConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return future_folder(tmp_path_factory.mktemp("future-synthetic"))


def test_the_recipe_learns_and_the_true_future_beats_a_shuffled_one_on_held_out_episodes(folder, tmp_path):
    result = train(config(folder, tmp_path))
    losses, ev = result["losses"], result["eval"]
    trained = [x for x in losses if x]
    assert sum(trained[-20:]) / 20 < sum(trained[:20]) / 20
    assert ev["episodes"] >= 5 and ev["samples"] == 24 * ev["episodes"]
    assert ev["loss_shuffled_future"] > ev["loss_true_future"], ev
    assert ev["action_mse_shuffled_future"] > 2 * ev["action_mse_true_future"], ev  # the bottleneck matters


def test_mixing_a_second_folder_trains_on_both_and_mismatched_folders_are_refused(folder, tmp_path):
    human = future_folder(tmp_path / "human", episodes=8, seed=1, valid=[1, 1, 1, 0, 0, 0], source="human")
    result = train(dataclasses.replace(config(folder, tmp_path / "mixed", steps=12), mix=str(human)))
    assert len(result["losses"]) == 12 and all(np.isfinite(result["losses"]))

    other = future_folder(tmp_path / "other", episodes=2, dim=4, source="other")
    with pytest.raises(ValueError, match="same encoder"):
        train(dataclasses.replace(config(folder, tmp_path / "refused", steps=2), mix=str(other)))
