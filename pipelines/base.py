"""The pipeline contract and its registry.

A pipeline turns one canonical Episode into rows of its output card. It holds
its models (built once per worker process by the flow, then reused for every
unit), and may write extra artifacts (plots, review files) when a run finishes.
Pipelines are chosen by output-card name: `make_pipeline("la", card)`.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from typing import Any, ClassVar

from datasets_cards import Episode, EpisodeError, OutputCard, SourceCard, load_output_card

_PIPELINES: dict[str, type[Pipeline]] = {}
# Modules that register the built-in pipelines (imported on first lookup).
_BUILTIN_MODULES = {
    "la": "pipelines.la.pipeline",
    "gaze": "pipelines.gaze.pipeline",
    "pixel": "pipelines.pixel.pipeline",
    "future": "pipelines.future.pipeline",
}


class Pipeline(ABC):
    """Annotate episodes of one source into rows of one output card."""

    name: ClassVar[str]  # output card name

    def __init__(self, source: SourceCard, options: dict[str, Any] | None = None):
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

    def unit_stats(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        """Per-unit statistics stored in the manifest's shard record (summed or merged later)."""
        return {}

    def finalize(self, out_dir: str, manifest: Any) -> dict[str, Any]:
        """After all units: write extra artifacts, return statistics for card.md."""
        return {}


def register_pipeline(name: str) -> Callable[[type[Pipeline]], type[Pipeline]]:
    def wrap(cls: type[Pipeline]) -> type[Pipeline]:
        cls.name = name
        _PIPELINES[name] = cls
        return cls

    return wrap


def pipeline_class(name: str) -> type[Pipeline]:
    if name not in _PIPELINES and name in _BUILTIN_MODULES:
        importlib.import_module(_BUILTIN_MODULES[name])
    if name not in _PIPELINES:
        raise ValueError(f"unknown pipeline {name!r}; known pipelines: {sorted(_BUILTIN_MODULES)}")
    return _PIPELINES[name]


def available_pipelines() -> list[str]:
    """Built-in pipelines whose implementation is installed in this checkout."""
    found = []
    for name, module in _BUILTIN_MODULES.items():
        if importlib.util.find_spec(module.rsplit(".", 1)[0]) is not None:
            found.append(name)
    return found


def make_pipeline(name: str, source: SourceCard, options: dict[str, Any] | None = None) -> Pipeline:
    return pipeline_class(name)(source, options)


@functools.lru_cache(maxsize=8)
def _cached(name: str, source_json: str, options_json: str) -> Pipeline:
    source = SourceCard.model_validate_json(source_json)
    return make_pipeline(name, source, json.loads(options_json))


def worker_pipeline(name: str, source: SourceCard, options: dict[str, Any] | None = None) -> Pipeline:
    """The pipeline for this worker process, built once (models load once per process)."""
    return _cached(name, source.model_dump_json(), json.dumps(options or {}, sort_keys=True))
