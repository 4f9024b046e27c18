"""The pipeline contract and its registry.

A pipeline turns one canonical Episode into rows of its output card. It holds
its models (built once per worker process by the flow, then reused for every
unit). Its side effects are named phases that the flow runs:

- `annotate` / `annotate_many` (per episode, pure: rows or an EpisodeError);
- `episode_artifacts` (per episode, inside the unit, while the frames are in
  memory: plots, review clips, staged videos);
- `unit_stats` (per episode; the flow sums them with `merge_stats` into the
  shard record, so nothing holds a unit's rows);
- `finalize` (per run: statistics from the shard records only, for card.md);
- `steps` (per run, after finalize: idempotent exports and deliveries, each run
  by the flow as a retried Prefect task).

Pipelines are chosen by output-card name through `PIPELINES`; the built-ins are
found by convention (`pipelines/<name>/pipeline.py`), so a pipeline is its params
file, its folder, its output card and its recipe.
"""

from __future__ import annotations

import functools
import json
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from datasets_cards import CardError, Episode, EpisodeError, OutputCard, SourceCard, load_output_card
from datasets_cards.manifest import Manifest
from datasets_cards.registry import Registry, modules_named

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


class Pipeline(ABC):
    """Annotate episodes of one source into rows of one output card."""

    name: ClassVar[str]  # output card name (set by `register_pipeline`)
    # Prefect global concurrency limit that a unit's annotation occupies (None: no limit). Model-heavy
    # pipelines name one ("gpu"), so a cluster never runs more of them at once than it has GPUs.
    concurrency_limit: ClassVar[str | None] = None
    # False for pipelines that can work from state alone (la: review tasks then carry state plots, and LA-V is skipped).
    needs_cameras: ClassVar[bool] = True

    def __init__(self, source: SourceCard, options: dict[str, Any] | None = None):
        if self.needs_cameras and not source.cameras:
            raise CardError(f"the {self.name} pipeline looks at images, and source {source.name!r} declares no "
                            "cameras; add them to the card's `cameras`")
        self.source = source
        self.options = dict(options or {})  # run-time overrides (flags), recorded in the manifest
        self.output: OutputCard = load_output_card(self.name)

    def config(self) -> dict[str, Any]:
        """Everything that changes the rows: hashed into the manifest (same hash = resumable)."""
        params = getattr(self.source.params, self.name, None)
        return {
            "source": self.source.model_dump(mode="json"),
            "params": params.model_dump(mode="json") if params is not None else {},
            "options": self.options,
            "output_card_version": self.output.version,
        }

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
        resumed unit writes the same files again.
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
