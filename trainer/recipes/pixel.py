"""The pixel recipe: PixelVLA (pixelvla.txt §4.1, §4.3, §5.1) scaled down, on the pixel card's shards.

A row is one frame of one camera (episode_id, camera, frame_index). The model (trainer/models.py,
PixelPolicy) reads the image, the target mask (RLE → 0/1, resized with the image; a null mask,
the object lost, is all zeros with `mask_valid` false and its tokens masked out), the visual
prompts (points; line segments as a start and an end point; box_prompt as two corners),
normalised by the row's width and height into [0, 1] and padded to `--model.max-points` points
and `--model.max-lines` lines with the padding type, the instruction bytes, and state + gripper.
It predicts the chunk of actions of steps t .. t + C − 1 (C = `--model.horizon`, 8 as in §5.1)
with an L1 loss on actions normalised per dim (mean and std of the training episodes).

Chunk targets: the actions of the rows of the same episode and camera at frames t .. t + C − 1.
A frame with no row (past the episode's last row, or a frame the pipeline did not keep) holds
the previous step's action and is masked out of the loss. Unlike the future card, a pixel row
carries one action and no episode length, so rows cannot be paired as they stream (the future
recipe's FuturePairs): a missing t + 1 could be the episode's end or a row still to come. So the
recipe reads the small columns (episode_id, camera, frame_index, action, state, gripper: no
images) of the whole folder once at start through the same loader, groups them by (episode_id,
camera) as FuturePairs does, and looks every row's chunk up there: any shuffle, any order.

Eval on held-out episodes (by episode_id): the L1 of the chunk in action units per action dim
(named from the source card when it names them) and overall, over the real steps, and the
normalised L1 that training minimises.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch

from datasets_cards import CardError, load_source_card
from trainer.collate import CollateSpec, to_device
from trainer.data import Holdout, ShardDataset, parse_data
from trainer.models import (
    BOX_CORNER_1,
    BOX_CORNER_2,
    LINE_END,
    LINE_START,
    PADDING,
    POINT,
    PixelPolicy,
)
from trainer.recipes import RECIPES

if TYPE_CHECKING:
    from trainer.train import TrainConfig

MIN_STD = 1e-2  # normalisers never divide by less (a dim that barely moves)
INDEX_COLUMNS = ["source", "episode_id", "camera", "frame_index", "action", "state", "gripper"]


def episode_key(source: str, episode_id: str) -> str:
    """An episode across the folders of a mixture (Fractal's and Bridge's ids could meet; source + id cannot)."""
    return f"{source}\x1f{episode_id}"


@dataclass
class _Track:
    first: int  # frame of the first row
    actions: np.ndarray  # F×A, one slot per frame first .. last (slots of missing frames hold zeros)
    present: np.ndarray  # F bool: the frame has a row


@dataclass
class ActionIndex:
    """Every row's action by (episode_id, camera) and frame_index → the chunk target of any row."""

    tracks: dict[tuple[str, str], _Track] = field(default_factory=dict)

    @classmethod
    def from_rows(cls, rows: list[tuple[str, str, int, np.ndarray]]) -> ActionIndex:
        """Rows (episode_id, camera, frame_index, action), in any order."""
        grouped: dict[tuple[str, str], dict[int, np.ndarray]] = {}
        width = None
        for episode, camera, frame, action in rows:
            action = np.asarray(action, np.float32).reshape(-1)
            if width is None:
                width = len(action)
            elif len(action) != width:
                raise ValueError(f"pixel: episode {episode!r} camera {camera!r} frame {frame} has a {len(action)}-dim "
                                 f"action, other rows {width}: one folder needs one action layout")
            grouped.setdefault((episode, camera), {})[int(frame)] = action
        index = cls()
        for key, frames in grouped.items():
            first, last = min(frames), max(frames)
            actions = np.zeros((last - first + 1, width), np.float32)
            present = np.zeros(last - first + 1, bool)
            for frame, action in frames.items():
                actions[frame - first], present[frame - first] = action, True
            index.tracks[key] = _Track(first, actions, present)
        return index

    def chunk(self, episode: str, camera: str, t: int, horizon: int) -> tuple[np.ndarray, np.ndarray]:
        """Actions of steps t .. t + horizon − 1 (horizon×A) and which are real (horizon bool): a step without a
        row holds the previous step's action and is not real."""
        track = self.tracks.get((episode, camera))
        i = t - track.first if track is not None else -1
        if track is None or not 0 <= i < len(track.present) or not track.present[i]:
            raise KeyError(f"pixel: no row for episode {episode!r} camera {camera!r} frame {t} in the action index "
                           "(the folder changed since the recipe read it?)")
        out = np.empty((horizon, track.actions.shape[1]), np.float32)
        real = np.zeros(horizon, bool)
        held = track.actions[i]
        for k in range(horizon):
            j = i + k
            if j < len(track.present) and track.present[j]:
                held, real[k] = track.actions[j], True
            out[k] = held
        return out, real

    def chunks(self, episodes: list[str], cameras: list[str], frames: list[int],
               horizon: int) -> tuple[torch.Tensor, torch.Tensor]:
        """A batch's chunk targets B×horizon×A and step masks B×horizon."""
        pairs = [self.chunk(e, c, int(t), horizon) for e, c, t in zip(episodes, cameras, frames, strict=True)]
        return torch.from_numpy(np.stack([p[0] for p in pairs])), torch.from_numpy(np.stack([p[1] for p in pairs]))


def _rows_of(batch: dict[str, Any], name: str, width: int, keep: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A collated list<list<float32>> column as B×keep×width values and B×keep real flags (padded or cut)."""
    values, real = batch.get(name), batch.get(f"{name}_mask")
    if values is None or values.ndim != 3 or values.shape[-1] != width:  # a batch in which every row has none
        values = torch.zeros(n, 0, width)
        real = torch.zeros(n, 0, dtype=torch.bool)
    elif real is None:
        real = torch.ones(values.shape[:2], dtype=torch.bool, device=values.device)
    values, real = values[:, :keep].float(), real[:, :keep].bool()
    if values.shape[1] < keep:
        grow = keep - values.shape[1]
        values = torch.cat([values, values.new_zeros(n, grow, width)], 1)
        real = torch.cat([real, real.new_zeros(n, grow)], 1)
    return values, real


def prompt_tensors(batch: dict[str, Any], max_points: int, max_lines: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The visual prompts of a collated batch → coordinates B×P×2 in [0, 1] (x / width, y / height) and types
    B×P: max_points points, max_lines lines (start, end), the box prompt's two corners; padding where absent."""
    size = torch.stack([batch["width"], batch["height"]], -1).float().clamp(min=1)  # B×2 (x, y)
    n, device = len(size), size.device
    points, point_real = _rows_of(batch, "points", 2, max_points, n)
    lines, line_real = _rows_of(batch, "lines", 4, max_lines, n)
    box = batch.get("box_prompt")
    if box is None or box.ndim != 2 or box.shape[-1] != 4:  # every row's box prompt null
        box, box_real = torch.zeros(n, 4, device=device), torch.zeros(n, dtype=torch.bool, device=device)
    else:
        box_real = batch.get("box_prompt_valid", torch.ones(n, dtype=torch.bool, device=device)).bool()
    points, point_real, lines, line_real = (x.to(device) for x in (points, point_real, lines, line_real))
    coords = torch.cat([points, lines.reshape(n, 2 * max_lines, 2), box.float().reshape(n, 2, 2)], 1)
    kinds = [POINT] * max_points + [LINE_START, LINE_END] * max_lines + [BOX_CORNER_1, BOX_CORNER_2]
    real = torch.cat([point_real, line_real.repeat_interleave(2, 1), box_real[:, None].expand(-1, 2)], 1)
    types = torch.where(real, torch.tensor(kinds, device=device), torch.full_like(real, PADDING, dtype=torch.long))
    coords = torch.where(real[..., None], (coords / size[:, None]).clamp(0, 1), torch.zeros_like(coords))
    return coords, types


@RECIPES.register("pixel")
class PixelRecipe:
    card = "pixel"
    holdout_column = "episode_id"
    columns: ClassVar[list[str]] = ["source", "episode_id", "camera", "frame_index", "instruction", "image", "mask", "points",
                                    "lines", "box_prompt", "width", "height", "state", "gripper", "action"]

    def __init__(self, cfg: TrainConfig, source: str):
        self.cfg = cfg
        m = cfg.model
        self.spec = CollateSpec(image_size=(m.image_size, m.image_size), byte_columns={"instruction": m.max_text_bytes})
        self.index, self.stats = self._read_index()
        self.action_names = self._action_names(source, self.stats["action_mean"].numel())

    def _read_index(self) -> tuple[ActionIndex, dict[str, torch.Tensor]]:
        """One pass over the small columns of every folder (a mixture's too): the action index, keyed by source and
        episode, and the normalisers (training episodes only)."""
        train_side = Holdout(self.holdout_column, self.cfg.holdout_fraction, "train")
        rows, states, train = [], [], []
        for folder, _weight in parse_data(self.cfg.data):
            # Every row, whichever rank reads it: the chunk of any row is looked up here.
            dataset = ShardDataset(folder, self.card, columns=INDEX_COLUMNS, shuffle=False, verify_checksums=False,
                                   rank=0, world_size=1)
            for row in dataset:
                rows.append((episode_key(row["source"], row["episode_id"]), row["camera"], row["frame_index"],
                             row["action"]))
                states.append(np.r_[np.asarray(row["state"], np.float32), np.float32(row["gripper"])])
                train.append(train_side.keeps(row["episode_id"]))
        if not rows:
            raise ValueError(f"pixel: {self.cfg.data} has no rows")
        index = ActionIndex.from_rows(rows)  # checks that every action has the same width
        keep = np.asarray(train) if any(train) else np.ones(len(rows), bool)  # all held out: normalise with all
        try:
            state = np.stack(states)[keep]
        except ValueError as e:
            raise ValueError(f"pixel: rows of {self.cfg.data} have states of different lengths") from e
        action = np.stack([np.asarray(r[3], np.float32) for r in rows])[keep]
        stats = {"action_mean": action.mean(0), "action_std": np.maximum(action.std(0), MIN_STD),
                 "state_mean": state.mean(0), "state_std": np.maximum(state.std(0), MIN_STD)}
        return index, {k: torch.from_numpy(np.asarray(v, np.float32)) for k, v in stats.items()}

    @staticmethod
    def _action_names(source: str, width: int) -> list[str]:
        try:
            names = list(load_source_card(source).action.names)
        except CardError:  # a source this suite has no card for (synthetic data): dims by number
            names = []
        return names if len(names) == width else [f"dim{i}" for i in range(width)]

    def build(self, batch: dict[str, Any]) -> torch.nn.Module:
        state_dim = batch["state"].shape[-1] + 1
        if state_dim != self.stats["state_mean"].numel():
            raise ValueError(f"pixel: a batch has {state_dim - 1} state dims, the folder's rows "
                             f"{self.stats['state_mean'].numel() - 1}")
        model = PixelPolicy(self.cfg.model, state_dim, self.stats["action_mean"].numel())
        for name, value in self.stats.items():  # overwritten by the checkpoint's on resume
            model.register_buffer(name, value.clone())
        return model

    # ---- forward and targets ----------------------------------------------------------------------------

    def predict(self, model, batch: dict[str, Any]) -> torch.Tensor:
        """The predicted chunk, normalised units, B×horizon×A."""
        state = torch.cat([batch["state"], batch["gripper"][:, None]], -1)
        state = (state - model.state_mean) / model.state_std
        m = self.cfg.model
        coords, types = prompt_tensors(batch, m.max_points, m.max_lines)
        image = batch["image"]
        valid = batch.get("mask_valid", torch.ones(len(image), dtype=torch.bool, device=image.device))
        return model(image, batch["mask"], valid, coords, types, batch["instruction"], batch["instruction_mask"], state)

    def targets(self, model, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """Chunk targets in action units B×horizon×A and their step mask B×horizon."""
        episodes = [episode_key(s, e) for s, e in zip(batch["source"], batch["episode_id"], strict=True)]
        chunk, real = self.index.chunks(episodes, batch["camera"], batch["frame_index"].tolist(), self.cfg.model.horizon)
        device = model.action_mean.device
        return chunk.to(device), real.to(device)

    def loss(self, model, batch: dict[str, Any]) -> torch.Tensor:
        """L1 over the real steps of the chunk, actions normalised per dim."""
        chunk, real = self.targets(model, batch)
        target = (chunk - model.action_mean) / model.action_std
        weight = real[:, :, None].float().expand_as(target)
        return ((self.predict(model, batch).float() - target).abs() * weight).sum() / weight.sum().clamp(min=1)

    @torch.no_grad()
    def evaluate(self, model, batches, device) -> dict[str, float]:
        width = model.action_mean.numel()
        error = torch.zeros(width, dtype=torch.float64)  # |predicted − true| in action units, summed over real steps
        normalised, steps, samples, lost = 0.0, 0, 0, 0
        episodes: set[str] = set()
        for batch in batches:
            batch = to_device(batch, device)
            chunk, real = self.targets(model, batch)
            predicted = self.predict(model, batch).float() * model.action_std + model.action_mean
            weight = real[:, :, None].float()
            diff = (predicted - chunk).abs() * weight
            error += diff.sum((0, 1)).double().cpu()
            normalised += float((diff / model.action_std).sum())
            steps += int(real.sum())
            samples += len(chunk)
            lost += int((~batch["mask_valid"]).sum()) if "mask_valid" in batch else 0
            episodes |= set(batch["episode_id"])
        if not samples:
            return {}  # no held-out episode: say nothing rather than report a loss of 0
        per_dim = (error / max(steps, 1)).tolist()
        return {"samples": samples, "episodes": len(episodes), "steps": steps, "mask_lost_rows": lost,
                "l1_loss": normalised / max(steps * width, 1), "l1": sum(per_dim) / width,
                **{f"l1/{name}": v for name, v in zip(self.action_names, per_dim, strict=True)}}
