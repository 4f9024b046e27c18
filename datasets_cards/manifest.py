"""manifest.json: what an output folder holds, written by the flows, read by the trainer.

The manifest is the single record of completed work: a shard is complete only
once it is listed here (written after the shard's atomic rename), so resuming a
killed run means skipping the units the manifest lists. `Manifest.load` and
`Manifest.save` (atomic, through fsspec) are the only way in and out.

Generations: `shards` are what the annotate run wrote (the candidates, generation
0). Human review writes its verified shards into a new folder and records them
as `verified` (generation 1, 2, ...); consumers read `current_shards`. Saving
the manifest is the commit point, so a review killed part-way leaves the
previous generation in force and the candidates untouched.

Damage: every save also writes a backup copy (`_staging/manifest.backup.json`, written first), so a
manifest.json that no longer parses (truncated, or valid JSON of the wrong shape) raises
`ManifestError` naming the file, and the annotate flow rebuilds it from the backup's shards that still
verify. `damaged_shards` checks shards against their records (size, then sha256): the flow redoes the
units whose shards fail it, the RLDS export and the trainer refuse them with `ShardIntegrityError`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import fsspec
from pydantic import BaseModel, Field, PrivateAttr, ValidationError, field_validator

from datasets_cards.codecs import sha256_file
from datasets_cards.constants import MANIFEST_FILE, MANIFEST_FORMAT_VERSION
from datasets_cards.source import SourceCard
from datasets_cards.storage import read_text, write_text_atomic

MANIFEST_BACKUP = "_staging/manifest.backup.json"  # written before manifest.json on every save
VERIFY_THREADS = 8  # shards hashed at once by `damaged_shards` (hashing and remote reads release the GIL)


class DuplicateEpisodeError(ValueError):
    """Two shards of one run hold the same episode."""


class ManifestError(ValueError):
    """manifest.json exists but cannot be read as a manifest (truncated, not JSON, the wrong shape)."""


class IncompleteOutputError(ValueError):
    """An output folder whose run has not finished (complete=false) is asked for as a finished dataset."""


class ShardIntegrityError(ValueError):
    """A shard differs from what manifest.json records (missing, size, checksum, rows) or cannot be read."""


class ShardRecord(BaseModel):
    unit: str  # work-unit key: deterministic from the episodes it covers
    path: str  # relative to the output folder, e.g. "shards/shard-00003.parquet"
    rows: int
    bytes: int
    sha256: str
    episodes: list[str]  # episode ids read for this unit (quarantined ones included)
    seconds: float  # wall time of the unit (read + annotate + write)
    stats: dict[str, Any] = Field(default_factory=dict)  # per-unit statistics the pipeline reports
    worker: str = ""  # "host:pid" of the process that ran the unit
    pipelines_built: int = 0  # pipelines that process had built (models loaded) when the unit ended

    @field_validator("path")
    @classmethod
    def _inside_the_output(cls, path: str) -> str:
        # A crafted manifest must not point a re-run's clean-up (it deletes damaged shards) outside the folder.
        parts = path.replace("\\", "/").split("/")
        if path.startswith("/") or "://" in path or ".." in parts or not path.endswith(".parquet"):
            raise ValueError(f"shard path {path!r} is not a .parquet file inside the output folder")
        return path


class Generation(BaseModel):
    """The shards of one human review, written beside the candidates (never over them)."""

    number: int  # 1 for the first review, then 2, 3, ...
    created: str  # ISO time the review committed it
    shards: list[ShardRecord]  # paths under verified/<number>/


class ModelRecord(BaseModel):
    """The checkpoint a model of the run loaded, and how it ran (annotators/weights.py `identify_weights`)."""

    family: str  # e.g. "Grounding DINO"
    model: str  # as the run named it: a hub id or a local folder
    folder: str  # the folder it was loaded from (a local path, or the snapshot in the Hugging Face cache)
    revision: str | None = None  # the snapshot's commit when `folder` is one in the Hugging Face cache
    sha256: str  # of config.json and the weight files, size-capped (see `identify_weights`)
    device: str  # the torch device it ran on ("cuda", "cpu", "cuda:1")
    dtype: str  # what it computed in there (float32 off CUDA)


def now() -> str:
    """The manifest's time stamps: UTC, seconds."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


class Manifest(BaseModel):
    format_version: int = MANIFEST_FORMAT_VERSION
    pipeline: str  # output card name
    output_card_version: str
    source: str  # source card name
    source_location: str
    # The data's identity (SourceReader.fingerprint): a resume from other data is refused. None: an older manifest.
    source_fingerprint: str | None = None
    config_hash: str  # hash of source card + pipeline params + output card version
    config: dict[str, Any]  # the parameters the hash covers, for humans
    code_version: str  # package version + git commit when available
    created: str  # ISO time of the first run
    updated: str
    complete: bool = False  # every planned unit is done and the card is written
    planned_units: int = 0
    shards: list[ShardRecord] = Field(default_factory=list)  # the annotate run's (generation 0, candidates)
    verified: Generation | None = None  # the latest review's generation, if any
    quarantined: int = 0
    stats: dict[str, Any] = Field(default_factory=dict)  # run statistics (card.md, artifact)
    # The checkpoints the latest run loaded, where from, on which device and dtype (empty: none, or a manifest
    # older than this field). Their content is in `config.weights` and the hash; the rest may differ on resume.
    models: list[ModelRecord] = Field(default_factory=list)
    _episode_shard: dict[str, str] = PrivateAttr(default_factory=dict)  # episode id → its shard (add_shard)
    _indexed: tuple[int, int] = PrivateAttr(default=(0, -1))

    @property
    def generation(self) -> int:
        return self.verified.number if self.verified else 0

    @property
    def current_shards(self) -> list[ShardRecord]:
        """The shards of the generation in force, in shard order: what consumers read."""
        return sorted(self.verified.shards if self.verified else self.shards, key=lambda s: s.path)

    @property
    def rows(self) -> int:
        return sum(s.rows for s in self.current_shards)

    def source_card(self) -> SourceCard:
        """The source card exactly as the run used it (recorded in the config), wherever it was loaded from."""
        return SourceCard.model_validate(self.config["source"])

    def completed_units(self) -> set[str]:
        return {s.unit for s in self.shards}

    def add_shard(self, record: ShardRecord) -> None:
        """Record a unit's shard; refuses one holding an episode another shard has (its rows would collide).

        The shard writer refuses a repeated row key inside a shard, and every output key starts with
        the episode id, so this keeps output keys unique over all shards of the run.
        """
        if self._indexed != (id(self.shards), len(self.shards)):  # built again only if shards changed elsewhere
            self._episode_shard = {e: s.path for s in self.shards for e in s.episodes}
        clashes = {e: self._episode_shard[e] for e in record.episodes
                   if self._episode_shard.get(e, record.path) != record.path}
        if clashes:
            other = next(iter(clashes.values()))
            raise DuplicateEpisodeError(
                f"{record.path} and {other} both hold episode(s) {sorted(clashes)[:3]}: "
                "their rows would share output keys; the run stops instead of writing them"
            )
        old = next((s for s in self.shards if s.path == record.path), None)
        for e in old.episodes if old else []:
            self._episode_shard.pop(e, None)
        self._episode_shard.update(dict.fromkeys(record.episodes, record.path))
        self.shards = sorted([*(s for s in self.shards if s.path != record.path), record], key=lambda s: s.path)
        self._indexed = (id(self.shards), len(self.shards))

    @staticmethod
    def path(out_dir: str) -> str:
        return f"{out_dir.rstrip('/')}/{MANIFEST_FILE}"

    @classmethod
    def load_if_exists(cls, out_dir: str, **storage_options) -> Manifest | None:
        """The manifest of the output folder `out_dir` (any fsspec URL), or None when it has none.

        ManifestError (naming the file) when it is there but damaged.
        """
        return cls._parse(cls.path(out_dir), storage_options)

    @classmethod
    def load_backup(cls, out_dir: str, **storage_options) -> Manifest | None:
        """The backup copy the last save wrote, or None when there is none or it is damaged too."""
        try:
            return cls._parse(f"{out_dir.rstrip('/')}/{MANIFEST_BACKUP}", storage_options)
        except ManifestError:
            return None

    @classmethod
    def _parse(cls, path: str, storage_options: dict) -> Manifest | None:
        try:
            text = read_text(path, **storage_options)
            return None if text is None else cls.model_validate_json(text)
        except UnicodeDecodeError as e:
            raise ManifestError(f"{path} is damaged (not UTF-8 text at byte {e.start})") from e
        except ValidationError as e:
            problems = e.errors()
            first = problems[0]
            where = ".".join(str(part) for part in first["loc"])
            more = f" and {len(problems) - 1} more problem(s)" if len(problems) > 1 else ""
            raise ManifestError(f"{path} is damaged ({where + ': ' if where else ''}{first['msg']}{more})") from e

    @classmethod
    def load(cls, out_dir: str, **storage_options) -> Manifest:
        """The manifest of `out_dir`; FileNotFoundError when the folder holds no finished or started run,
        ManifestError naming the file when it is damaged."""
        try:
            manifest = cls.load_if_exists(out_dir, **storage_options)
        except ManifestError as e:
            raise ManifestError(f"{e}; re-run the annotate flow on {out_dir.rstrip('/')} to rebuild it "
                                "from the shards that still verify") from e
        if manifest is None:
            raise FileNotFoundError(f"no {MANIFEST_FILE} in {out_dir}: not an output folder written by the flows "
                                    "(run `make annotate` first)")
        return manifest

    def save(self, out_dir: str) -> None:
        """Write atomically to `out_dir`/manifest.json (and its backup first), stamping `updated`."""
        self.updated = now()
        text = self.model_dump_json(indent=2)
        write_text_atomic(f"{out_dir.rstrip('/')}/{MANIFEST_BACKUP}", text)
        write_text_atomic(self.path(out_dir), text)

    def damaged_shards(self, out_dir: str, records: list[ShardRecord] | None = None, *, checksum: bool = True,
                       **storage_options) -> dict[str, str]:
        """Shard path → what is wrong, for the `records` (default: the candidates) that fail verification.

        Size always (a listing), the sha256 too with `checksum` (one read of every shard, several at once).
        """
        records = self.shards if records is None else records
        fs, base = fsspec.core.url_to_fs(out_dir.rstrip("/"), **storage_options)
        where = out_dir.rstrip("/")
        with ThreadPoolExecutor(max_workers=VERIFY_THREADS) as pool:
            problems = pool.map(lambda r: shard_problem(fs, f"{base}/{r.path}", r, checksum=checksum), records)
            return {f"{where}/{r.path}": p for r, p in zip(records, problems) if p is not None}

    def verify_shards(self, out_dir: str, records: list[ShardRecord] | None = None, *, checksum: bool = True,
                      **storage_options) -> None:
        """Raise ShardIntegrityError naming the first damaged shard (and how many are) of `records`."""
        damaged = self.damaged_shards(out_dir, records, checksum=checksum, **storage_options)
        if damaged:
            path, problem = next(iter(damaged.items()))
            more = f" ({len(damaged) - 1} more shard(s) damaged)" if len(damaged) > 1 else ""
            raise ShardIntegrityError(f"shard {path} {problem}{more}; re-run the annotate flow on "
                                      f"{out_dir.rstrip('/')} to rebuild it")


def shard_problem(fs: fsspec.AbstractFileSystem, path: str, record: ShardRecord, *, checksum: bool = True) -> str | None:
    """What is wrong with the shard at `path` on `fs` against its record, or None when it verifies."""
    try:
        if not fs.exists(path):
            return f"is listed in {MANIFEST_FILE} but missing"
        size = fs.size(path)
        if size != record.bytes:
            return f"has {size} bytes, {MANIFEST_FILE} says {record.bytes}"
        if checksum and (digest := sha256_file(path, fs)) != record.sha256:
            return f"has sha256 {digest[:16]}…, {MANIFEST_FILE} says {record.sha256[:16]}… (its bytes changed)"
    except OSError as e:
        return f"cannot be read ({type(e).__name__}: {str(e).strip()})"
    return None


def config_hash(config: dict[str, Any]) -> str:
    """Stable short hash of a JSON-serialisable config."""
    blob = json.dumps(config, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
