"""The pipeline contract and its registry.

A pipeline turns one canonical Episode into rows of its output card. It holds
its models (built once per worker process by the flow, then reused for every
unit). Its side effects are named phases that the flow runs:

- `stages` (per run, before the units: work that needs every episode at once, e.g. pixel's
  gripper track over the first-close frames of the whole corpus; each a parallel per-unit
  `collect` whose parts the flow stages, then one retried `reduce` over the parts in order);
- `load_stages` (per unit, before its episodes: read what the stages staged);
- `annotate` / `annotate_many` (per episode, pure: rows or an EpisodeError);
- `episode_artifacts` (per episode, inside the unit, while the frames are in
  memory: plots, review clips, staged videos);
- `unit_stats` (per episode; the flow sums them with `merge_stats` into the
  shard record, so nothing holds a unit's rows);
- `finalize` (per run: statistics from the shard records only, for card.md);
- `steps` (per run, after finalize: idempotent exports and deliveries, each run
  by the flow as a retried Prefect task).

Frames are decoded inside the unit or never. A pipeline decodes every frame it needs
(for its model, clips, tiles, staged videos) with `checked_frames`, which raises
FrameDecodeError naming the camera and the frame index when one does not decode or has
another size than the camera's other frames; the flow quarantines the episode with that
reason. `finalize` and `steps` only read what the units staged (shards, staged files) and
never open the source: nothing after the unit can meet an undecoded frame for the first
time, so a bad frame costs its episode and never the run.

Pipelines are chosen by output-card name through `PIPELINES`; the built-ins are
found by convention (`pipelines/<name>/pipeline.py`), so a pipeline is its params
file, its folder, its output card and its recipe.
"""

from __future__ import annotations

import functools
import json
import threading
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa

from annotators.weights import Weights, identify_weights
from datasets_cards import (
    CardError,
    Episode,
    EpisodeError,
    FrameDecodeError,
    OutputCard,
    SourceCard,
    load_output_card,
)
from datasets_cards.codecs import decode_image
from datasets_cards.manifest import Manifest, ModelRecord
from datasets_cards.registry import Registry, modules_named
from pipelines.options import RunOptions, effective_params, run_options, unhashed_keys

PIPELINES: Registry[type[Pipeline]] = Registry("pipeline", builtins=modules_named("pipelines", "pipeline"))


@dataclass(frozen=True)
class Step:
    """One idempotent piece of work after the units (an export, a delivery), run as a retried task.

    `run(out_dir, manifest)` returns what the manifest's `stats[name]` records; when every
    try failed, `on_failure(out_dir, manifest, error)` gives that record instead (None:
    the run is marked incomplete).
    """

    name: str
    run: Callable[[str, Manifest], Any]
    retries: int | None = None  # None: the flow's `retries`
    on_failure: Callable[[str, Manifest, Exception], Any] | None = None


@dataclass(frozen=True)
class Stage:
    """Run-level work before the units, for what one episode alone cannot give (a pass over the whole corpus).

    `collect(episodes)` runs once per work unit, in parallel, on the unit's readable episodes (what the
    reader quarantined never reaches it) and returns the rows of the unit's part, which the flow writes
    atomically to `OUT/_staging/<name>/unit-NNNNN.parquet` (a unit whose part exists is not collected
    again). `reduce(out_dir, parts)` then runs once, as a retried task, over the parts' paths in dataset
    order; it must be resumable (a killed pass picks up its own checkpoints) and returns what the
    manifest's `stats[name]` records.
    """

    name: str
    collect: Callable[[Iterable[Episode]], list[dict[str, Any]]]
    reduce: Callable[[str, list[str]], dict[str, Any]]
    schema: pa.Schema  # of the collected parts (an empty part keeps its columns)


class Pipeline(ABC):
    """Annotate episodes of one source into rows of one output card."""

    name: ClassVar[str]  # output card name (set by `register_pipeline`)
    # Prefect global concurrency limit that a unit's annotation occupies (None: no limit). Model-heavy
    # pipelines name one ("gpu"), so a cluster never runs more of them at once than it has GPUs.
    concurrency_limit: ClassVar[str | None] = None
    # False for pipelines that can work from state alone (la: review tasks then carry state plots, and LA-V is skipped).
    needs_cameras: ClassVar[bool] = True
    # The run-time keys `--option` may give besides the card params' fields (pipelines/options.py): their
    # types, defaults and help make `python -m pipelines options <name>`; unknown keys are refused before a run.
    options_model: ClassVar[type[RunOptions]] = RunOptions

    def __init__(self, source: SourceCard, options: dict[str, Any] | None = None):
        if self.needs_cameras and not source.cameras:
            raise CardError(f"the {self.name} pipeline looks at images, and source {source.name!r} declares no "
                            "cameras; add them to the card's `cameras`")
        self.source = source
        self.options = dict(options or {})  # run-time overrides (flags), recorded in the manifest
        self.run_options = run_options(self.options_model, self.options)  # the run-time keys, typed
        self.output: OutputCard = load_output_card(self.name)
        # The checkpoints this pipeline loads (not the ones injected, nor weightless backends): checked before
        # any loads, and identified in the manifest (`models`, and their content in the config hash).
        self.weights: list[Weights] = []

    @classmethod
    def preflight(cls, params: Any, options: Mapping[str, Any]) -> None:
        """What must hold before anything loads, beyond the options' own types (an endpoint the environment
        names): ValueError saying how to fix it. `params`: the card's params with `options` applied."""

    @functools.cached_property
    def models(self) -> list[ModelRecord]:
        """Where each of `weights` was found, what it holds (revision, sha256), and the device and dtype it runs in."""
        return [identify_weights(w) for w in self.weights]

    def config(self) -> dict[str, Any]:
        """Everything that changes the rows: hashed into the manifest (same hash = resumable).

        `params` are the values the run used (the card's with the options applied). `weights` is the content of
        each checkpoint (its sha256): the same option naming other weights (a newer snapshot, a re-trained
        folder) must not resume into rows of the old ones. Where it was found, the device and dtype are not in
        the hash (a resume on another machine is the same run); the manifest's `models` records them.
        """
        weights = {m.family: m.sha256 for m in self.models}
        return {**declared_config(self.name, self.source, self.options), **({"weights": weights} if weights else {})}

    def stages(self) -> list[Stage]:
        """Run-level stages before the units (see Stage), in order; most pipelines have none."""
        return []

    def load_stages(self, out_dir: str) -> None:
        """Before a unit's episodes: load what `stages` staged under `out_dir` (once per worker; thread-safe)."""

    @abstractmethod
    def annotate(self, episode: Episode) -> list[dict[str, Any]]:
        """Rows for one episode. Raise datasets_cards.EpisodeError to quarantine it."""

    def annotate_many(self, episodes: Iterable[Episode]) -> Iterator[tuple[Episode, list[dict[str, Any]] | EpisodeError]]:
        """(episode, its rows) for each episode in input order; an EpisodeError takes the rows' place.

        Pipelines that wait on a remote service override this to keep several episodes in flight.
        """
        for episode in episodes:
            try:
                yield episode, self.annotate(episode)
            except EpisodeError as e:
                yield episode, e

    def episode_artifacts(self, episode: Episode, rows: list[dict[str, Any]], out_dir: str, index: int) -> dict[str, Any]:
        """Write files that need the episode's frames (index: its position in the reader's order).

        Runs inside the unit right after the episode's rows; returns statistics merged into the
        unit's (e.g. {"plots": ["plots/episode-000.png"]}). Must be idempotent: a retried or
        resumed unit writes the same files again. Decode the frames with `checked_frames` before
        writing anything: its FrameDecodeError quarantines the episode (its rows are not written).
        """
        return {}

    def unit_stats(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        """Statistics of one episode's rows (or of none, for the unit's starting value).

        The flow merges them over the unit's episodes with `merge_stats`, so every value
        must add up: numbers sum, mappings merge, lists concatenate.
        """
        return {}

    def finalize(self, out_dir: str, manifest: Manifest) -> dict[str, Any]:
        """After all units: statistics for card.md from the shard records (no shard is read here)."""
        return {}

    def steps(self) -> list[Step]:
        """Idempotent work after finalize (exports, deliveries), in order; the flow retries each."""
        return []


def declared_config(name: str, source: SourceCard, options: Mapping[str, Any]) -> dict[str, Any]:
    """The part of pipeline `name`'s config known before it loads anything: the flow compares it with an
    existing output first, so a clash is refused before a model loads (`Pipeline.config` adds the weights)."""
    params = effective_params(name, source, options)
    unhashed = unhashed_keys(PIPELINES.get(name).options_model)  # device, threads, caches: not the rows
    return {
        "source": source.model_dump(mode="json"),
        "params": params.model_dump(mode="json") if params is not None else {},
        "options": {k: v for k, v in options.items() if k not in unhashed},
        "output_card_version": load_output_card(name).version,
    }


BAD_FRAME = "bad frame"  # how the reason of an episode quarantined for its frames starts
_BAD_FRAMES_NAMED = 5  # frame indices named per camera in one reason; the rest are counted


def checked_frames(episode: Episode, camera: str, map_fn: Callable = map) -> np.ndarray:
    """Every frame of `camera` decoded, as uint8 T×H×W×3, or FrameDecodeError naming the frames that are not.

    A frame is bad when its bytes do not decode (corrupt, truncated, empty) or when it decodes to another
    size than the camera's other frames (the most common size; frame 0's on a tie). The reason names the
    camera, the index of every bad frame (the first few) and what is wrong with the first, e.g.
    "bad frame: camera 'wrist_left' frame 29 of 30: undecodable frame (0 bytes): not a JPEG or PNG image".
    `map_fn` decodes in parallel when given a pool's map (it must keep the order).
    """
    seq = episode.frames[camera]
    if seq.encoded is None:  # a loader (video file, HDF5): one array, or a FrameDecodeError of its own
        try:
            frames = seq.load()
        except EpisodeError as e:
            raise FrameDecodeError(f"{BAD_FRAME}: camera {camera!r}: {e.reason}", episode.episode_id) from e
        if len(frames) != len(seq):  # a video shorter than its episode: every per-frame index after it would fail
            raise FrameDecodeError(f"{BAD_FRAME}: camera {camera!r} gave {len(frames)} frames for an episode of "
                                   f"{len(seq)}", episode.episode_id)
        return frames
    encoded = seq.encoded

    def decode(i: int) -> np.ndarray | FrameDecodeError:
        try:
            return decode_image(encoded[i])
        except FrameDecodeError as e:
            return e

    images = list(map_fn(decode, range(len(encoded))))
    shapes = Counter(im.shape for im in images if isinstance(im, np.ndarray))
    size = max(shapes, key=lambda s: (shapes[s], s == getattr(images[0], "shape", None))) if shapes else None
    bad = [(i, im) for i, im in enumerate(images) if not isinstance(im, np.ndarray) or im.shape != size]
    if not bad:
        return np.stack(images)
    first, what = bad[0]
    if isinstance(what, np.ndarray):
        problem = f"is {'×'.join(map(str, what.shape))}, the camera's other frames are {'×'.join(map(str, size))}"
    else:
        problem = what.reason
    more = [i for i, _ in bad[1:]]
    others = ""
    if more:
        named = ", ".join(map(str, more[:_BAD_FRAMES_NAMED])) + (f" and {len(more) - _BAD_FRAMES_NAMED} more"
                                                                  if len(more) > _BAD_FRAMES_NAMED else "")
        others = f" (also bad: frame{'s' if len(more) > 1 else ''} {named})"
    raise FrameDecodeError(f"{BAD_FRAME}: camera {camera!r} frame {first} of {len(images)}: {problem}{others}",
                           episode.episode_id)


class NamedFrames(Sequence[np.ndarray]):
    """One camera's frames for a model that reads a few of them (the VLM's contact sheets), decoded on access:
    a frame that does not decode raises FrameDecodeError naming the camera and the frame index, as
    `checked_frames` does."""

    def __init__(self, episode: Episode, camera: str):
        self.episode_id, self.camera, self.frames = episode.episode_id, camera, episode.frames[camera]

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return np.stack([self[i] for i in range(*index.indices(len(self)))])
        try:
            return self.frames[index]
        except EpisodeError as e:
            raise FrameDecodeError(f"{BAD_FRAME}: camera {self.camera!r} frame {index} of {len(self)}: {e.reason}",
                                   self.episode_id) from e


def merge_stats(total: Mapping[str, Any], part: Mapping[str, Any]) -> dict[str, Any]:
    """`total` + `part`: numbers add, mappings merge key by key, lists concatenate, other values take `part`'s."""
    merged = dict(total)
    for key, value in part.items():
        if key not in merged:
            merged[key] = value
        elif isinstance(value, Mapping) and isinstance(merged[key], Mapping):
            merged[key] = merge_stats(merged[key], value)
        elif isinstance(value, list) and isinstance(merged[key], list):
            merged[key] = [*merged[key], *value]
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and isinstance(merged[key], (int, float)):
            merged[key] = merged[key] + value
        else:
            merged[key] = value
    return merged


def register_pipeline(name: str) -> Callable[[type[Pipeline]], type[Pipeline]]:
    """Class decorator: register a Pipeline subclass for the output card `name`."""

    def wrap(cls: type[Pipeline]) -> type[Pipeline]:
        cls.name = name
        return PIPELINES.add(name, cls)

    return wrap


def available_pipelines() -> list[str]:
    """Pipelines implemented in this checkout (a folder with pipeline.py, or registered)."""
    return PIPELINES.names()


def make_pipeline(name: str, source: SourceCard, options: dict[str, Any] | None = None) -> Pipeline:
    return PIPELINES.get(name)(source, options)


_BUILD_LOCK = threading.Lock()  # threads of one worker building the same pipeline wait for the first


@functools.lru_cache(maxsize=8)
def _cached(name: str, source_json: str, options_json: str) -> Pipeline:
    source = SourceCard.model_validate_json(source_json)
    return make_pipeline(name, source, json.loads(options_json))


def worker_pipeline(name: str, source: SourceCard, options: dict[str, Any] | None = None) -> Pipeline:
    """The pipeline for this worker process, built once (models load once per process, even with threads)."""
    with _BUILD_LOCK:
        return _cached(name, source.model_dump_json(), json.dumps(options or {}, sort_keys=True))


def pipelines_built() -> int:
    """How many pipelines this process has built so far; each loaded its models once (recorded per shard, so a
    run on a cluster shows that models load once per worker process, not once per unit)."""
    return _cached.cache_info().misses
