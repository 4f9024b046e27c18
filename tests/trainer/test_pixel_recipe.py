"""The pixel recipe (PixelVLA §4.1, §5.1): the SAM-style prompt encoder, chunk targets at episode ends, prompts
normalised per row, lost objects, training through the CLI, overfitting a fixed batch, held-out eval."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from tests.trainer.factories import make_pixel_folder, pixel_rows
from trainer.__main__ import main
from trainer.models import (
    BOX_CORNER_1,
    BOX_CORNER_2,
    LINE_END,
    LINE_START,
    PADDING,
    POINT,
    ModelConfig,
    PixelPolicy,
    PositionEmbeddingRandom,
    PromptEncoder,
)
from trainer.recipes.pixel import ActionIndex, PixelRecipe, prompt_tensors
from trainer.train import TrainConfig, make_loader, train

SMALL = {"dim": 32, "layers": 1, "heads": 2, "image_size": 32, "patch": 8, "max_points": 4, "max_lines": 2}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("pixel")
    make_pixel_folder(root, episodes=10)
    return root


def _cfg(data, out, **kw) -> TrainConfig:
    base = {"recipe": "pixel", "data": str(data), "out": str(out), "steps": 20, "batch_size": 16, "lr": 3e-3,
            "warmup": 2, "num_workers": 0, "log_interval": 0, "ckpt_interval": 1000, "buffer_size": 8,
            "holdout_fraction": 0.25, "model": ModelConfig(**SMALL)}
    return TrainConfig(**{**base, **kw})


def _first_batch(cfg: TrainConfig):
    recipe = PixelRecipe(cfg, "bridge")
    loader = make_loader(cfg, recipe, "train", shuffle=False, workers=0, drop_last=True)
    batch, _ = next(iter(loader))
    torch.manual_seed(0)
    return recipe, recipe.build(batch), batch


# ---- prompt encoder -----------------------------------------------------------------------------------------

def test_positional_embedding_is_a_fixed_buffer_that_tells_coordinates_apart():
    torch.manual_seed(0)
    pe = PositionEmbeddingRandom(64)
    assert "gaussian" in dict(pe.named_buffers()) and not list(pe.parameters())
    grid = torch.stack(torch.meshgrid(torch.linspace(0, 1, 6), torch.linspace(0, 1, 6), indexing="xy"), -1).view(-1, 2)
    emb = pe(grid)
    assert emb.shape == (36, 128)
    distance = torch.cdist(emb, emb) + torch.eye(36) * 1e9
    assert distance.min() > 1.0  # every pair of grid points far apart in embedding space
    a = torch.tensor([[0.3, 0.6]])
    cos = torch.nn.functional.cosine_similarity
    near, far = cos(pe(a), pe(a + 0.01)), cos(pe(a), pe(a + 0.5))
    assert near > 0.95 and far < 0.5  # nearby points embed alike, distant ones do not
    assert not torch.allclose(pe(torch.tensor([[0.2, 0.7]])), pe(torch.tensor([[0.7, 0.2]])))  # x and y differ


def test_prompt_encoder_shapes_types_and_padding_is_masked():
    torch.manual_seed(0)
    enc = PromptEncoder(32).eval()
    coords = torch.rand(3, 5, 2)
    types = torch.tensor([[POINT, LINE_START, LINE_END, BOX_CORNER_1, BOX_CORNER_2]] * 3)
    types[1, 3:] = PADDING
    tokens, pad = enc(coords, types)
    assert tokens.shape == (3, 5, 32) and pad.tolist()[1] == [False, False, False, True, True]
    assert (tokens[1, 3:] == 0).all() and tokens[0].abs().sum(-1).min() > 0
    # the same point as another prompt type is another token
    assert not torch.allclose(tokens[0, 0], enc(coords[:1, :1], torch.tensor([[BOX_CORNER_1]]))[0][0, 0])
    # padding: where it sits and how much of it there is changes no real prompt's token
    more = torch.cat([coords, torch.rand(3, 4, 2)], 1)
    more_types = torch.cat([types, torch.full((3, 4), PADDING)], 1)
    more[1, 3:5] = torch.rand(2, 2)
    again, pad2 = enc(more, more_types)
    assert torch.equal(again[:, :5][~pad], tokens[~pad]) and pad2[:, 5:].all() and (again[pad2] == 0).all()


def _policy_inputs(b=3, p=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    types = torch.tensor([[POINT, POINT, LINE_START, LINE_END, BOX_CORNER_1, BOX_CORNER_2]] * b)[:, :p]
    return {"image": torch.randint(0, 255, (b, 3, 32, 32), generator=g, dtype=torch.uint8),
            "mask": (torch.rand(b, 32, 32, generator=g) > 0.7).to(torch.uint8),
            "mask_valid": torch.tensor([True, False, True][:b]), "prompt_coords": torch.rand(b, p, 2, generator=g),
            "prompt_types": types, "text": torch.randint(0, 255, (b, 10), generator=g, dtype=torch.uint8),
            "text_mask": torch.ones(b, 10, dtype=torch.bool), "state": torch.randn(b, 8, generator=g)}


def test_policy_ignores_padding_prompts_and_the_mask_of_a_lost_object():
    torch.manual_seed(0)
    model = PixelPolicy(ModelConfig(**SMALL), 8, 7).eval()
    x = _policy_inputs()
    with torch.no_grad():
        out = model(**x)
        assert out.shape == (3, 8, 7)  # the paper's 8-step chunk (ModelConfig.horizon)
        padded = dict(x, prompt_coords=torch.cat([x["prompt_coords"], torch.rand(3, 5, 2)], 1),
                      prompt_types=torch.cat([x["prompt_types"], torch.full((3, 5), PADDING)], 1))
        torch.testing.assert_close(model(**padded), out)
        other_mask = dict(x, mask=1 - x["mask"])
        changed = model(**other_mask)
        torch.testing.assert_close(changed[1], out[1])  # row 1: mask_valid false, its mask is not read
        assert not torch.allclose(changed[0], out[0])  # a valid mask is
        moved = dict(x, prompt_coords=x["prompt_coords"].flip(-1))
        assert not torch.allclose(model(**moved), out)  # and so are the real prompts


def test_prompts_are_normalised_by_each_rows_size_and_padded_to_fixed_counts():
    batch = {
        "width": torch.tensor([100, 50]), "height": torch.tensor([50, 200]),
        "points": torch.tensor([[[10.0, 5.0], [100.0, 50.0], [1.0, 1.0]], [[25.0, 100.0], [0, 0], [0, 0]]]),
        "points_mask": torch.tensor([[True, True, True], [True, False, False]]),
        "lines": torch.tensor([[[0.0, 0.0, 50.0, 25.0]], [[0.0, 0.0, 0.0, 0.0]]]),
        "lines_mask": torch.tensor([[True], [False]]),
        "box_prompt": torch.tensor([[10.0, 10.0, 20.0, 40.0], [0.0, 0.0, 0.0, 0.0]]),
        "box_prompt_valid": torch.tensor([True, False]),
    }
    coords, types = prompt_tensors(batch, max_points=2, max_lines=2)
    assert coords.shape == (2, 8, 2) and types.shape == (2, 8)
    assert types[0].tolist() == [POINT, POINT, LINE_START, LINE_END, PADDING, PADDING, BOX_CORNER_1, BOX_CORNER_2]
    assert types[1].tolist() == [POINT] + [PADDING] * 7
    torch.testing.assert_close(coords[0, :4], torch.tensor([[0.1, 0.1], [1.0, 1.0], [0.0, 0.0], [0.5, 0.5]]))
    torch.testing.assert_close(coords[0, 6:], torch.tensor([[0.1, 0.2], [0.2, 0.8]]))
    torch.testing.assert_close(coords[1, 0], torch.tensor([0.5, 0.5]))
    assert (coords[types == PADDING] == 0).all()
    # a batch in which no row has any point, line or box prompt (all objects lost)
    empty = dict(batch, points=torch.zeros(2, 0, 0), points_mask=torch.zeros(2, 0, dtype=torch.bool),
                 box_prompt=torch.zeros(2, 0))
    del empty["box_prompt_valid"]
    _, types = prompt_tensors(empty, max_points=2, max_lines=1)
    assert types[0].tolist() == [PADDING, PADDING, LINE_START, LINE_END, PADDING, PADDING]


# ---- chunk targets ------------------------------------------------------------------------------------------

def test_chunk_targets_follow_one_episode_and_camera_and_hold_the_last_action_past_the_end():
    rows = [("a", "cam0", t, [t, 0.0]) for t in range(5)]
    rows += [("a", "cam1", t, [100.0 + t, 1.0]) for t in range(3)]  # the same episode seen by another camera
    rows += [("b", "cam0", t, [200.0 + t, 2.0]) for t in (0, 1, 3)]  # frame 2 was not kept
    order = np.random.default_rng(0).permutation(len(rows))
    index = ActionIndex.from_rows([rows[i] for i in order])
    chunk, real = index.chunk("a", "cam0", 2, 8)
    assert chunk[:, 0].tolist() == [2, 3, 4, 4, 4, 4, 4, 4] and real.tolist() == [True] * 3 + [False] * 5
    chunk, real = index.chunk("a", "cam0", 4, 8)  # the last frame: one real step
    assert chunk[:, 0].tolist() == [4] * 8 and real.sum() == 1
    chunk, real = index.chunk("a", "cam1", 0, 8)
    assert chunk[:, 0].tolist() == [100, 101, 102, 102, 102, 102, 102, 102] and (chunk[:, 1] == 1).all()
    chunk, real = index.chunk("b", "cam0", 0, 4)  # a gap holds the previous action, masked
    assert chunk[:, 0].tolist() == [200, 201, 201, 203] and real.tolist() == [True, True, False, True]
    chunks, steps = index.chunks(["a", "b"], ["cam0", "cam0"], [0, 3], 8)
    assert chunks.shape == (2, 8, 2) and steps.sum(1).tolist() == [5, 1]
    with pytest.raises(KeyError, match="frame 7"):
        index.chunk("a", "cam0", 7, 8)
    with pytest.raises(ValueError, match="action layout"):
        ActionIndex.from_rows([("a", "c", 0, [1.0]), ("a", "c", 1, [1.0, 2.0])])


# ---- training -----------------------------------------------------------------------------------------------

def test_cli_trains_the_recipe_and_evaluates_held_out_episodes(folder, tmp_path, capsys):
    main(["--recipe", "pixel", "--data", str(folder), "--out", str(tmp_path), "--steps", "6", "--batch-size", "8",
          "--num-workers", "0", "--log-interval", "0", "--buffer-size", "8", "--holdout-fraction", "0.25",
          "--model.dim", "32", "--model.layers", "1", "--model.heads", "2", "--model.image-size", "32",
          "--model.max-points", "4", "--model.max-lines", "2"])
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert math.isfinite(result["final_loss"]) and (tmp_path / "ckpt.pt").exists()
    ev = result["eval"]
    assert ev["episodes"] >= 1 and ev["samples"] == 10 * ev["episodes"]  # every held-out frame once
    names = ["dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper"]  # the bridge card's action names
    assert {"l1", "l1_loss", *(f"l1/{n}" for n in names)} <= set(ev)
    assert all(math.isfinite(v) for v in ev.values())
    assert ev["l1"] == pytest.approx(sum(ev[f"l1/{n}"] for n in names) / 7)


def test_the_model_overfits_a_fixed_batch(folder, tmp_path):
    recipe, model, batch = _first_batch(_cfg(folder, tmp_path))
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(100):  # past the plateau of a per-step constant (≈ 0.3 × the first loss) to memorising
        loss = recipe.loss(model, batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[0] > 0.3 and min(losses[-5:]) < 0.2 * losses[0], losses[::10]  # needs the state and the step


def test_a_row_whose_object_is_lost_trains(folder, tmp_path):
    recipe, model, batch = _first_batch(_cfg(folder, tmp_path))
    lost = ~batch["mask_valid"]
    assert lost.any() and (batch["mask"][lost] == 0).all()  # null mask → zeros, mask_valid false
    loss = recipe.loss(model, batch)
    loss.backward()
    assert torch.isfinite(loss) and all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    model.eval()
    with torch.no_grad():
        before = recipe.predict(model, batch)
        batch["mask"][lost] = 1  # whatever the mask of a lost row holds, it is not read
        torch.testing.assert_close(recipe.predict(model, batch)[lost], before[lost])


def test_resume_reproduces_the_next_losses_exactly(folder, tmp_path):
    full = train(_cfg(folder, tmp_path / "full", steps=6, batch_size=8))["losses"]
    train(_cfg(folder, tmp_path / "part", steps=3, lr_decay_steps=6, batch_size=8))
    resumed = train(_cfg(folder, tmp_path / "part", steps=6, lr_decay_steps=6, batch_size=8))["losses"]
    assert resumed == full[3:]


def test_a_mixture_of_fractal_and_bridge_folders_keeps_their_episodes_apart(tmp_path):
    # PixelVLA trains on Fractal and Bridge together; both folders here number their episodes ep000, ep001, ...
    bridge, fractal = tmp_path / "bridge", tmp_path / "fractal"
    make_pixel_folder(bridge, episodes=4, seed=0)
    make_pixel_folder(fractal, episodes=4, seed=1, source="fractal")
    cfg = _cfg(f"{bridge}:0.5,{fractal}:0.5", tmp_path / "out", steps=3, batch_size=8)
    recipe, model, batch = _first_batch(cfg)
    assert len(recipe.index.tracks) == 8  # 4 episodes × 2 sources, none merged
    rows = {(r["source"], r["episode_id"], r["frame_index"]): r["action"]
            for r in pixel_rows(episodes=4, seed=1, source="fractal") + pixel_rows(episodes=4, seed=0)}
    chunk, real = recipe.targets(model, batch)
    for i, (source, episode, t) in enumerate(zip(batch["source"], batch["episode_id"], batch["frame_index"].tolist(),
                                                 strict=True)):
        assert real[i, 0] and torch.allclose(chunk[i, 0], torch.tensor(rows[(source, episode, t)]))
    loader = make_loader(cfg, recipe, "train", shuffle=True, workers=0, drop_last=True)
    seen = {s for (b, _), _ in zip(loader, range(4)) for s in b["source"]}
    assert seen == {"bridge", "fractal"}
    loss = recipe.loss(model, batch)
    assert torch.isfinite(loss)


# ---- reading null boxes ---------------------------------------------------------------------------------------

def test_lost_objects_null_boxes_read_back_and_an_old_pyarrow_is_refused_by_name(folder, monkeypatch):
    import pyarrow as pa

    from trainer.data import ShardDataset

    ds = ShardDataset(str(folder), columns=["box", "box_prompt", "episode_id"], verify_checksums=False)
    tables = [ds._read_piece(p, ["box", "box_prompt"]) for p in ds.pieces]
    boxes = [b for t in tables for b in t.column("box").to_pylist()]
    assert None in boxes and all(b is None or len(b) == 4 for b in boxes)

    # pyarrow < 26 fails on such row groups as if they were damaged (apache/arrow#35692): refuse it up front.
    monkeypatch.setattr(pa, "__version__", "25.0.1")
    with pytest.raises(RuntimeError, match=r"box, box_prompt .*pyarrow>=26"):
        ShardDataset(str(folder), columns=["box", "box_prompt", "episode_id"], verify_checksums=False)
    ShardDataset(str(folder), columns=["episode_id", "frame_index"], verify_checksums=False)  # no such column read
