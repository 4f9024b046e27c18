"""The future recipe: DIAL's System-1 warm-up (dial.txt §3.3–3.4) on stored frozen tokens.

Each stored frame t is paired with frame min(t + H, T − 1) of the same episode, camera and
view (rounded down to a stored frame when the pipeline kept every `stride`-th one), and with
the action chunk of steps t .. t + C − 1 (steps past the episode's end are masked). H
(`--model.foresight`, default 16) and C (`--model.chunk`, default 16) are chosen here, at
training time; the encoder never runs. A latent inverse-dynamics model (trainer/models.py,
FuturePolicy) predicts the chunk with flow matching from the current tokens, the future
tokens and the masked state.

Pairing: rows are one frame each and reach the recipe in the loader's (shuffled) order;
`FuturePairs` keeps the rows of the episodes in flight and hands out a sample as soon as
every row it needs has arrived, then lets go of rows no pending sample needs. Rows of an
episode stay close together in the stream (they are consecutive in their shard), so few
are held, if the loader's shuffle buffer is small (`--buffer-size 64`: pieces are still
shuffled, and samples are drawn at random from the ready pairs; a large buffer scatters an
episode and leaves steps without a gradient until its rows have come). Pairs still pending
when a checkpoint is written are not saved: a resumed run continues the data stream exactly
but loses those (at most the rows in flight).

Mixing (DIAL trains robot and EgoDex data together): --mix names more output folders
of this card, comma-separated (e.g. outputs/future/egodex); each training step also draws
one batch from each, from the same holdout side (their streams restart on resume). They
must share the token shape, the stride and the state/action layout width (the droid and
egodex cards share the suite's 20-dim layout); each dim is normalised with the statistics
of the first folder that holds it.

Eval on held-out episodes, with their true future tokens and with the future tokens of
another held-out episode (shuffled), same noise and flow times for both: the flow-matching
loss and the mean squared error of the sampled chunk. The gap says the bottleneck matters.
"""

from __future__ import annotations

import random
import warnings
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from datasets_cards import load_output_card
from datasets_cards.manifest import Manifest
from trainer.collate import CardCollate, CollateSpec, to_device
from trainer.models import FuturePolicy
from trainer.recipes import RECIPES

if TYPE_CHECKING:
    from trainer.train import TrainConfig

MIN_STD = 1e-2  # normalisers never divide by less (a dim that barely moves in the data)
MAX_HELD_ROWS = 8192  # rows FuturePairs holds at most; past it the least recently fed episode is dropped
PAIRING_BUFFER = 64  # shuffle buffers larger than this (rows) delay pairing: warned about
EVAL_BANK = 512  # eval: futures kept to give samples another episode's future (the shuffled condition)


@dataclass(frozen=True)
class FolderInfo:
    """What the recipe needs from an output folder's manifest (the pipeline's finalize wrote it)."""

    tokens: int
    dim: int
    stride: int
    normalisation: dict[str, dict[str, list[float]]]  # "state" / "action" → per-dim mean and std over the run


def folder_info(root: str) -> FolderInfo:
    manifest = Manifest.load(root)
    stats = manifest.stats
    if not stats.get("feature") or not stats.get("normalisation"):
        raise ValueError(f"{root}/manifest.json has no stats.feature or stats.normalisation: is it a finished run "
                         "of the future pipeline?")
    return FolderInfo(int(stats["feature"]["tokens"]), int(stats["feature"]["dim"]),
                      int(stats.get("params", {}).get("stride", 1)), stats["normalisation"])


def normaliser(infos: list[FolderInfo], name: str, valid: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-dim (mean, std): each dim from the first folder that holds it (valid), padded dims (0, 1)."""
    width = len(valid[0])
    mean, std = torch.zeros(width), torch.ones(width)
    for info, mask in zip(reversed(infos), reversed(valid), strict=True):
        stats = info.normalisation[name]
        keep = mask.bool().cpu()
        mean = torch.where(keep, torch.tensor(stats["mean"], dtype=torch.float32), mean)
        std = torch.where(keep, torch.tensor(stats["std"], dtype=torch.float32).clamp(min=MIN_STD), std)
    return mean, std


@dataclass
class Sample:
    current: torch.Tensor  # N×D
    future: torch.Tensor  # N×D
    state: torch.Tensor  # W
    state_valid: torch.Tensor  # W
    chunk: torch.Tensor  # C×A
    step_mask: torch.Tensor  # C (bool)
    action_valid: torch.Tensor  # A
    episode: str


@dataclass
class _Row:
    feature: torch.Tensor
    state: torch.Tensor
    state_valid: torch.Tensor
    actions: torch.Tensor  # k×A: steps t .. next stored frame − 1
    action_valid: torch.Tensor


@dataclass
class _Episode:
    num_frames: int
    rows: dict[int, _Row] = field(default_factory=dict)
    done: set[int] = field(default_factory=set)
    fed: int = 0  # the `add` call that last brought a row


class FuturePairs:
    """Rows of one frame each, in any order → samples pairing t with t + H and the chunk of steps t .. t + C − 1."""

    def __init__(self, horizon: int, chunk: int, stride: int, tokens: int, max_rows: int = MAX_HELD_ROWS):
        self.horizon, self.chunk, self.stride, self.tokens, self.max_rows = horizon, chunk, stride, tokens, max_rows
        self.episodes: dict[tuple[str, str, int], _Episode] = {}
        self.ready: list[Sample] = []
        self.calls = 0
        self.held = 0  # rows held now
        self.dropped = 0  # samples lost to eviction

    # ---- which frames -----------------------------------------------------------------------------------

    def floor(self, frame: int, num_frames: int) -> int:
        """The stored frame at or before `frame` (the last frame is always stored)."""
        return frame if frame == num_frames - 1 else frame - frame % self.stride

    def target(self, t: int, num_frames: int) -> int:
        """The frame whose tokens are the future of step t: min(t + H, T − 1), rounded down to a stored frame."""
        return self.floor(min(t + self.horizon, num_frames - 1), num_frames)

    def needed(self, t: int, num_frames: int) -> list[int]:
        """Stored frames whose rows sample t needs: t up to its target and the row holding step t + C − 1."""
        last = max(self.target(t, num_frames), self.floor(min(t + self.chunk - 1, num_frames - 1), num_frames))
        frames = list(range(t, last + 1, self.stride))
        if last == num_frames - 1 and frames[-1] != last:
            frames.append(last)
        return frames

    def stored(self, num_frames: int) -> list[int]:
        frames = list(range(0, num_frames, self.stride))
        return frames if frames[-1] == num_frames - 1 else [*frames, num_frames - 1]

    # ---- feeding and taking -----------------------------------------------------------------------------

    def add(self, batch: dict[str, Any]) -> int:
        """Take the rows of a collated batch; returns how many."""
        self.calls += 1
        lengths = batch["actions_mask"].sum(1).tolist()
        touched: dict[tuple[str, str, int], list[int]] = {}
        n = len(batch["episode_id"])
        for i in range(n):
            key = (batch["episode_id"][i], batch["camera"][i], int(batch["view"][i]))
            t, num_frames = int(batch["frame_index"][i]), int(batch["num_frames"][i])
            episode = self.episodes.get(key)
            if episode is None or t in episode.done or episode.num_frames != num_frames:  # new (or a new epoch's)
                if episode is not None:
                    self.held -= len(episode.rows)
                episode = self.episodes[key] = _Episode(num_frames)
            episode.fed = self.calls
            if t not in episode.rows:
                self.held += 1
            episode.rows[t] = _Row(
                batch["feature"][i].view(self.tokens, -1).to(torch.float16), batch["state"][i],
                batch["state_valid"][i], batch["actions"][i, : lengths[i]], batch["action_valid"][i],
            )
            touched.setdefault(key, []).append(t)
        for key, frames in touched.items():
            self._emit(key, frames)
        self._evict()
        return n

    def _emit(self, key: tuple[str, str, int], frames: list[int]) -> None:
        episode = self.episodes[key]
        reach = max(self.horizon, self.chunk - 1)
        low, high = min(frames) - reach, max(frames)
        for t in self.stored(episode.num_frames):
            if low <= t <= high and t not in episode.done and t in episode.rows and all(
                    r in episode.rows for r in self.needed(t, episode.num_frames)):
                self.ready.append(self._sample(key[0], episode, t))
                episode.done.add(t)
        stored = self.stored(episode.num_frames)
        if len(episode.done) == len(stored):
            self.held -= len(episode.rows)
            del self.episodes[key]
            return
        for r in [r for r in episode.rows if r <= high]:  # release rows no pending sample needs
            if all(t in episode.done for t in stored if r - reach <= t <= r):
                del episode.rows[r]
                self.held -= 1

    def _sample(self, episode_id: str, episode: _Episode, t: int) -> Sample:
        rows = episode.rows
        now = rows[t]
        steps = torch.cat([rows[r].actions for r in self.needed(t, episode.num_frames)])[: self.chunk]
        real = len(steps)
        if real < self.chunk:  # past the episode's end: hold the last action, masked out of the loss
            steps = torch.cat([steps, steps[-1:].expand(self.chunk - real, -1)])
        mask = torch.arange(self.chunk, device=steps.device) < real
        return Sample(now.feature, rows[self.target(t, episode.num_frames)].feature, now.state, now.state_valid,
                      steps, mask, now.action_valid, episode_id)

    def _evict(self) -> None:
        while self.held > self.max_rows and self.episodes:
            key = min(self.episodes, key=lambda k: self.episodes[k].fed)
            episode = self.episodes.pop(key)
            self.held -= len(episode.rows)
            self.dropped += len(self.stored(episode.num_frames)) - len(episode.done)

    def take(self, n: int, rng: random.Random | None = None) -> list[Sample]:
        """Up to `n` ready samples: at random with `rng`, else the oldest first."""
        n = min(n, len(self.ready))
        if rng is None:
            taken, self.ready = self.ready[:n], self.ready[n:]
            return taken
        taken = []
        for _ in range(n):
            i = rng.randrange(len(self.ready))
            self.ready[i], self.ready[-1] = self.ready[-1], self.ready[i]
            taken.append(self.ready.pop())
        return taken


def stack(samples: list[Sample]) -> dict[str, torch.Tensor]:
    return {name: torch.stack([getattr(s, name) for s in samples]).float() if name not in ("step_mask",)
            else torch.stack([getattr(s, name) for s in samples])
            for name in ("current", "future", "state", "state_valid", "chunk", "step_mask", "action_valid")}


@RECIPES.register("future")
class FutureRecipe:
    card = "future"
    holdout_column = "episode_id"
    columns: ClassVar[list[str]] = ["episode_id", "camera", "view", "frame_index", "num_frames", "feature", "state", "state_valid",
               "actions", "action_valid"]

    def __init__(self, cfg: TrainConfig, source: str):
        self.cfg = cfg
        self.spec = CollateSpec()
        from trainer.data import parse_data

        first, *others = [path for path, _ in parse_data(cfg.data)]  # --data a:0.7,b:0.3: a weighted mixture
        info = folder_info(first)
        self.tokens, self.dim, self.stride = info.tokens, info.dim, info.stride
        self.mix = [p.strip() for p in cfg.mix.split(",") if p.strip()]
        self.infos = [info, *(folder_info(root) for root in [*others, *self.mix])]
        for root, other in zip([*others, *self.mix], self.infos[1:], strict=True):
            if (other.tokens, other.dim, other.stride) != (self.tokens, self.dim, self.stride):
                raise ValueError(f"--mix folder {root} has tokens, dim, stride {(other.tokens, other.dim, other.stride)}"
                                 f", {cfg.data} has {(self.tokens, self.dim, self.stride)}: mixed folders need the same "
                                 "encoder, view size, pool and stride")
        if cfg.buffer_size > PAIRING_BUFFER:
            warnings.warn(f"future recipe: --buffer-size {cfg.buffer_size} scatters an episode's rows over that many "
                          f"rows, and a frame is paired only once its next H rows have come: expect steps without a "
                          f"gradient (loss 0) at the start of every epoch; --buffer-size {PAIRING_BUFFER} or less keeps "
                          "them together (the recipe draws its samples at random from the ready pairs)", stacklevel=2)
        self.pairs = self._pairs()
        self.rng = random.Random(cfg.seed)
        self._mix_batches: list | None = None

    def _pairs(self) -> FuturePairs:
        m = self.cfg.model
        return FuturePairs(m.foresight, m.chunk, self.stride, self.tokens)

    def _mixed(self):
        """One batch iterator per --mix folder (train side of the holdout), started on first use."""
        if self._mix_batches is None:
            from trainer.data import Holdout, ShardDataset, ShardLoader

            self._mix_batches = []
            for i, root in enumerate(self.mix):
                collate = CardCollate(load_output_card(self.card), self.spec)
                dataset = ShardDataset(root, self.card, columns=self.columns, decode_row=collate.decode_row,
                                       seed=self.cfg.seed + 1 + i, buffer_size=self.cfg.buffer_size,
                                       holdout=Holdout(self.holdout_column, self.cfg.holdout_fraction, "train"))
                loader = ShardLoader(dataset, collate, self.cfg.batch_size, num_workers=self.cfg.num_workers,
                                     seed=self.cfg.seed + 1 + i)
                self._mix_batches.append(iter(loader))
        return self._mix_batches

    def build(self, batch: dict[str, Any]) -> torch.nn.Module:
        """The model, its normalisers from the folders' statistics (each dim from the first folder holding it)."""
        valid = {"state": [batch["state_valid"][0]], "action": [batch["action_valid"][0]]}
        valid = {k: v * (len(self.infos) - len(self.mix)) for k, v in valid.items()}  # --data mixture folders
        for batches in self._mixed():  # the layouts must agree; their first batches say which dims each holds
            mixed = next(batches)[0]
            for name, width in (("state", batch["state"].shape[-1]), ("action", batch["actions"].shape[-1])):
                if mixed[f"{name}_valid"].shape[-1] != width:
                    raise ValueError(f"--mix: a folder's {name} has {mixed[f'{name}_valid'].shape[-1]} dims, "
                                     f"{self.cfg.data}'s {width}: give both cards the same params.future.layout.width")
                valid[name].append(mixed[f"{name}_valid"][0])
        model = FuturePolicy(self.cfg.model, self.tokens, self.dim, batch["state"].shape[-1], batch["actions"].shape[-1])
        for name in ("state", "action"):
            mean, std = normaliser(self.infos, name, valid[name])
            model.register_buffer(f"{name}_mean", mean)
            model.register_buffer(f"{name}_std", std)
        return model

    def _loss(self, model, x: dict[str, torch.Tensor], future: torch.Tensor | None = None,
              generator: torch.Generator | None = None) -> torch.Tensor:
        state = (x["state"] - model.state_mean) / model.state_std
        chunk = (x["chunk"] - model.action_mean) / model.action_std
        return model.loss(x["current"], x["future"] if future is None else future, state, x["state_valid"], chunk,
                          x["step_mask"], x["action_valid"], generator=generator)

    def loss(self, model, batch) -> torch.Tensor:
        device = batch["frame_index"].device
        added = self.pairs.add(batch)
        for batches in self._mixed():
            added += self.pairs.add(to_device(next(batches)[0], device))
        samples = self.pairs.take(added, self.rng)
        if not samples:  # nothing paired yet (the first rows of episodes): a step without gradient
            if torch.distributed.is_initialized():  # zero gradients, so DDP averages them with the other ranks'
                return sum(p.sum() for p in model.parameters()) * 0.0
            return torch.zeros((), device=device, requires_grad=True)
        return self._loss(model, {k: v.to(device) for k, v in stack(samples).items()})

    @torch.no_grad()
    def evaluate(self, model, batches, device) -> dict[str, float]:
        pairs = self._pairs()
        pairs.max_rows = 1 << 62  # eval reads every held-out row once, in order: nothing is dropped
        bank: deque[tuple[str, torch.Tensor]] = deque(maxlen=EVAL_BANK)  # futures seen, to shuffle from
        totals = {"true": 0.0, "shuffled": 0.0, "samples": 0}
        episodes: set[str] = set()
        waiting: list[Sample] = []  # samples with no other episode's future in the bank yet
        for batch in batches:
            pairs.add(to_device(batch, device))
            while pairs.ready:
                chunk = pairs.take(self.cfg.batch_size)
                bank.extend((s.episode, s.future) for s in chunk)
                episodes |= {s.episode for s in chunk}
                ready = [s for s in chunk if any(e != s.episode for e, _ in bank)]
                waiting += [s for s in chunk if all(e == s.episode for e, _ in bank)]
                if ready:
                    self._eval_chunk(model, ready, bank, totals, device)
        for start in range(0, len(waiting), self.cfg.batch_size):
            self._eval_chunk(model, waiting[start : start + self.cfg.batch_size], bank, totals, device)
        if not totals["samples"]:
            return {}  # no held-out episode: say nothing rather than report a loss of 0
        n = totals["samples"]
        true, shuffled = totals["true"] / n, totals["shuffled"] / n
        return {"samples": n, "episodes": len(episodes), "loss_true_future": true, "loss_shuffled_future": shuffled,
                "shuffled_minus_true": shuffled - true, "action_mse_true_future": totals["mse_true"] / n,
                "action_mse_shuffled_future": totals["mse_shuffled"] / n}

    def _eval_chunk(self, model, samples: list[Sample], bank, totals: dict[str, float], device) -> None:
        """Add the chunk's losses with its true futures and with futures of other episodes (same noise for both)."""
        x = {k: v.to(device) for k, v in stack(samples).items()}
        others = [f for _, f in bank]
        episodes = [e for e, _ in bank]
        shuffled = []
        for i, s in enumerate(samples):  # the bank's next future from another episode (its own only if none is)
            j = next((k % len(others) for k in range(i, i + len(others)) if episodes[k % len(others)] != s.episode),
                     (i + len(others) // 2) % len(others))
            shuffled.append(others[j])
        for name, future in (("true", x["future"]), ("shuffled", torch.stack(shuffled).to(device).float())):
            generator = torch.Generator(device=device).manual_seed(self.cfg.seed)
            totals[name] += self._loss(model, x, future, generator).item() * len(samples)
            totals[f"mse_{name}"] = totals.get(f"mse_{name}", 0.0) + self._action_error(model, x, future) * len(samples)
        totals["samples"] += len(samples)

    def _action_error(self, model, x: dict[str, torch.Tensor], future: torch.Tensor) -> float:
        """Mean squared error of the sampled chunk (normalised units) over its real steps and dims, seeded noise."""
        state = (x["state"] - model.state_mean) / model.state_std
        with torch.random.fork_rng(devices=[x["state"].device] if x["state"].is_cuda else []):
            torch.manual_seed(self.cfg.seed)
            predicted = model.sample(x["current"], future, state, x["state_valid"])
        truth = (x["chunk"] - model.action_mean) / model.action_std
        weight = x["step_mask"].float()[:, :, None] * x["action_valid"].float()[:, None, :]
        return float(((predicted - truth) ** 2 * weight).sum() / weight.sum().clamp(min=1))
