"""Source readers: one per format, chosen by the source card's `format`.

A reader streams canonical Episodes in a deterministic order and can read any
index range of it, which is what a work unit is. Bad episodes come out as
`Quarantined` records with a reason instead of raising.
"""

from __future__ import annotations

import importlib

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator

from datasets_cards import SourceCard
from pipelines.quarantine import Quarantined

_READERS: dict[str, type[SourceReader]] = {}
_BUILTIN_MODULES = {fmt: f"pipelines.readers.{fmt}" for fmt in ("rlds", "lerobot", "hdf5")}


class SourceReader(ABC):
    format: str  # the card format this reader handles

    def __init__(self, card: SourceCard, location: str | None = None):
        self.card = card
        self.location = card.resolve_location(location)

    @abstractmethod
    def num_episodes(self) -> int:
        """Episodes in the card's split, cheaply (from metadata, not by decoding)."""

    @abstractmethod
    def read(self, start: int, stop: int) -> Iterator:
        """Yield Episode or Quarantined for episodes [start, stop) in a deterministic order."""

    def __iter__(self) -> Iterator:
        return self.read(0, self.num_episodes())


def register_reader(fmt: str) -> Callable[[type[SourceReader]], type[SourceReader]]:
    def wrap(cls: type[SourceReader]) -> type[SourceReader]:
        cls.format = fmt
        _READERS[fmt] = cls
        return cls

    return wrap


def open_reader(card: SourceCard, location: str | None = None) -> SourceReader:
    """The reader for `card.format`, pointed at `location` (default: the card's)."""
    if card.format not in _READERS and card.format in _BUILTIN_MODULES:
        # Imported on demand: the RLDS reader pulls TensorFlow, the others PyAV/h5py.
        try:
            importlib.import_module(_BUILTIN_MODULES[card.format])
        except ImportError as e:
            raise ImportError(
                f"reading {card.format!r} sources needs an optional dependency ({e}); "
                f"install it with `make install` or `pip install -e '.[tfds]'` for RLDS"
            ) from e
    if card.format not in _READERS:
        raise ValueError(f"no reader for format {card.format!r}; known formats: {sorted(_BUILTIN_MODULES)}")
    return _READERS[card.format](card, location)


__all__ = ["Quarantined", "SourceReader", "open_reader", "register_reader"]
