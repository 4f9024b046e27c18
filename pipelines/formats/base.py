"""Source readers: one per format, chosen by the source card's `format` through `READERS`.

A format is one folder, `pipelines/formats/<format>/`, owning that format's
reader (`reader.py`, found by name), and where it has them its writer, export
and validation. A reader streams canonical Episodes in a deterministic order
and can read any index range of it, which is what a work unit is. Bad episodes
come out as `Quarantined` records with a reason instead of raising.

Every reader's `read` gets the same input checks on top of its own (`SourceReader.check_episode`,
wired in by `__init_subclass__`, so a new format cannot forget them): state and actions
inside the card's `plausible_range` (else quarantined, "implausible state: ..."), and the
number of raw gripper values the normalisation clipped, in the episode's metadata under
GRIPPER_CLIPPED. Metadata a format needs to open a dataset that is missing or damaged is a
`DamagedSourceError` naming the file, raised when the reader is opened.
"""

from __future__ import annotations

import functools
import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Iterator

import fsspec
import numpy as np

from datasets_cards import GRIPPER_RAW, CardError, Episode, SourceCard
from datasets_cards.episode import GRIPPER_CLIPPED
from datasets_cards.registry import Registry, modules_named
from pipelines.quarantine import Quarantined

# Format name → reader class; `pipelines/formats/<name>/reader.py` registers each built-in one.
READERS: Registry[type[SourceReader]] = Registry("source format", builtins=modules_named("pipelines.formats", "reader"))
# Export format name → `export(output_dir, dest) -> path`; `pipelines/formats/<name>/export.py` registers each.
EXPORTERS: Registry = Registry("export format", builtins=modules_named("pipelines.formats", "export"))


class DamagedSourceError(CardError):
    """The dataset at the card's location lacks a metadata file or holds a damaged one (the message names it).

    A CardError, so the command line reports it in one line (exit code 1): like a card problem, it
    is the user's to fix (copy the file again), and every unit would fail the same way.
    """


class SourceReader(ABC):
    format: str  # the card format this reader handles (set by `register_reader`)

    def __init__(self, card: SourceCard, location: str | None = None):
        self.card = card
        self.location = card.resolve_location(location)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("read")
        if own is not None and not getattr(own, "_checked", False):
            @functools.wraps(own)
            def read(self, start: int, stop: int) -> Iterator[object]:
                for item in own(self, start, stop):
                    yield self.check_episode(item)

            read._checked = True  # type: ignore[attr-defined]
            cls.read = read  # type: ignore[method-assign]

    def check_episode(self, item: object) -> object:
        """The checks every format gets: plausible state and actions, the gripper's clipped count, and the
        card's scene tags stripped from the instruction."""
        if not isinstance(item, Episode):
            return item
        for what, values, spec in (("state", item.arm_state, self.card.state), ("action", item.actions, self.card.action)):
            problem = spec.out_of_range(values, f"{what}.plausible_range")
            if problem:
                return Quarantined(item.episode_id, f"implausible {what}: {problem}", stage="read", source=self.card.name)
        if self.card.instruction_tags:
            item.instruction = self.card.clean_instruction(item.instruction)
        if self.card.gripper is not None and GRIPPER_RAW in item.metadata:
            item.metadata[GRIPPER_CLIPPED] = self.card.gripper.clipped_count(item.metadata[GRIPPER_RAW])
        return item

    @abstractmethod
    def num_episodes(self) -> int:
        """Episodes in the card's split, cheaply (from metadata, not by decoding)."""

    @abstractmethod
    def episode_ids(self, start: int, stop: int) -> list[str]:
        """The ids `read` gives episodes [start, stop), found without decoding the episodes."""

    @abstractmethod
    def read(self, start: int, stop: int) -> Iterator[object]:
        """Yield Episode or Quarantined for episodes [start, stop) in a deterministic order."""

    def fingerprint(self) -> str:
        """A cheap identity of the data at `location`, which a resume compares: two copies of one dataset agree
        wherever they lie, another dataset (another release, another generation of a sample) does not.

        Here: every file's path below the location and its size (one recursive listing), the bytes of its small
        files (metadata) and both ends of up to MAX_SAMPLED_FILES data files spread over the listing, so data
        rewritten in place at the same size changes it too. A format whose metadata already describes its files
        (RLDS: shard lengths and bytes) hashes that instead."""
        fs, root = fsspec.core.url_to_fs(self.location)
        files = fs.find(root, detail=True) if fs.isdir(root) else {root: fs.info(root)}
        base = root.rstrip("/")
        sizes = {path: int(info.get("size") or 0) for path, info in sorted(files.items())}
        small = [p for p, n in sizes.items() if n <= SMALL_FILE_BYTES][:MAX_SMALL_FILES]  # metadata: whole
        large = [p for p, n in sizes.items() if n > SMALL_FILE_BYTES]
        sampled = large[:: max(1, -(-len(large) // MAX_SAMPLED_FILES))]  # data: both ends, of files spread evenly
        content = {p: fs.cat_file(p).hex() for p in small}
        content |= {p: (fs.cat_file(p, 0, EDGE_BYTES) + fs.cat_file(p, sizes[p] - EDGE_BYTES, sizes[p])).hex()
                    for p in sampled}
        return fingerprint_of([(path[len(base):].lstrip("/"), size, fingerprint_of(content.get(path)))
                               for path, size in sizes.items()])

    def raw_gripper(self, start: int, stop: int) -> list[np.ndarray]:
        """The gripper channel as stored (before normalising) of the readable episodes in [start, stop)."""
        return [item.metadata[GRIPPER_RAW] for item in self.read(start, stop)
                if isinstance(item, Episode) and GRIPPER_RAW in item.metadata]

    def __iter__(self) -> Iterator[object]:
        return self.read(0, self.num_episodes())


SMALL_FILE_BYTES = 64 * 1024  # files up to this size are metadata: hashed whole (at most MAX_SMALL_FILES)
MAX_SMALL_FILES = 256
MAX_SAMPLED_FILES = 64  # data files whose first and last EDGE_BYTES are hashed (a few range reads on a bucket)
EDGE_BYTES = 4096


def fingerprint_of(value: object) -> str:
    """A short sha256 of `value`'s JSON (the fingerprint's form: 16 hex digits)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


class DuplicateEpisodeIdError(ValueError):
    """The card's id keys do not tell two episodes of the run apart (a card error: declare more keys)."""


def check_unique_episode_ids(card: SourceCard, ids: list[str]) -> None:
    """Raise DuplicateEpisodeIdError naming the first repeated ids and where they are (reader positions)."""
    first: dict[str, int] = {}
    clashes: list[str] = []
    for index, episode_id in enumerate(ids):
        if episode_id in first:
            clashes.append(f"{episode_id!r} at {first[episode_id]} and {index}")
        else:
            first[episode_id] = index
    if clashes:
        keys = card.episode_id_keys or ["(split, index)"]
        raise DuplicateEpisodeIdError(
            f"source {card.name!r}: {len(clashes)} episode id(s) repeat, so the id keys {keys} do not identify "
            f"episodes: {'; '.join(clashes[:3])}{' ...' if len(clashes) > 3 else ''}. "
            "Add keys to the card's episode_id_keys that make each episode unique (Bridge: file_path and episode_id)."
        )


def register_reader(fmt: str):
    """Class decorator: register a SourceReader subclass for the card format `fmt`."""

    def wrap(cls: type[SourceReader]) -> type[SourceReader]:
        cls.format = fmt
        return READERS.add(fmt, cls)

    return wrap


def open_reader(card: SourceCard, location: str | None = None) -> SourceReader:
    """The reader for `card.format`, pointed at `location` (default: the card's)."""
    try:
        # Imported on demand: the RLDS reader pulls TensorFlow, the others PyAV/h5py.
        reader = READERS.get(card.format)  # an unknown format: UnknownNameError listing the formats
    except ImportError as e:
        raise ImportError(
            f"reading {card.format!r} sources needs an optional dependency ({e}); "
            f"install it with `make install` or `pip install -e '.[tfds]'` for RLDS"
        ) from e
    return reader(card, location)
