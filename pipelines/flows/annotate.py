"""The generic annotate flow: source card + pipeline → shards, manifest, quarantine, card.

Phases:
0. lease    take the output folder's lease (one run per folder), renewed while the run lives
            and released at the end, failures included;
1. plan     list the source's episodes and cut them into work units (index ranges);
2. skip     drop units the manifest already records as complete and whose shard still verifies
            (size, sha256): a missing or damaged shard's unit is redone (resume);
2b. stages the pipeline's run-level stages, if any: one retried `collect` task per unit whose part is
            not staged yet, then one retried `reduce` task over all parts in dataset order;
3. annotate one retried task per unit: read → annotate → stream rows into one shard
            (written atomically) and write the files that need frames, episode by episode;
4. record   append each finished shard to the manifest as it completes;
5. finish   merge quarantine, aggregate statistics from the shard records, save the manifest;
6. steps    the pipeline's exports and deliveries, each a retried task (idempotent);
7. report   render card.md and publish a Prefect artifact with the statistics.

A unit that fails after its retries is quarantined with its reason and the run goes
on; it is not recorded as complete, so the next run retries it.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import socket
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import fsspec
import prefect.runtime.flow_run
import pyarrow as pa
import pyarrow.parquet as pq
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_progress_artifact, update_progress_artifact
from prefect.concurrency.sync import concurrency
from prefect.context import FlowRunContext
from prefect.futures import as_completed, wait
from rich.progress import MofNCompleteColumn, Progress

from datasets_cards import CardError, Episode, EpisodeError, SourceCard, list_sources, load_source_card, sample_card_at
from datasets_cards.cards import load_output_card
from datasets_cards.constants import (
    CARD_FILE,
    EPISODE_IDS_FILE,
    QUARANTINE_FILE,
    QUARANTINE_STAGING_DIR,
    SHARD_PATTERN,
    SHARDS_DIR,
    SAMPLE_PREFIX,
    STAGE_PART,
    output_dir,
)
from datasets_cards.episode import GRIPPER_CLIPPED
from datasets_cards.errors import ConfigurationError, RunAbortError
from datasets_cards.manifest import (
    Manifest,
    ManifestError,
    ShardIntegrityError,
    ShardRecord,
    config_hash,
    now,
)
from pipelines.artifact_images import inline_images
from pipelines.base import Pipeline, Stage, declared_config, merge_stats, pipelines_built, worker_pipeline
from pipelines.card import write_cards
from pipelines.flows.arguments import (
    check_card_secrets,
    check_options,
    check_run_arguments,
    redact_recorded_options,
    secret_options,
)
from pipelines.flows.hints import flag
from pipelines.flows.sources import check_source_reachable
from pipelines.formats import check_unique_episode_ids, open_reader
from pipelines.gripper_survey import survey_gripper
from pipelines.hub_card import write_hub_readme
from pipelines.io import ShardWriter, read_text, write_bytes_atomic, write_text_atomic
from pipelines.io.lease import LEASE_FILE, OutputLease
from pipelines.io.location import absolute
from pipelines.options import effective_params
from pipelines.quarantine import QUARANTINE_SCHEMA, Quarantined, quarantine_summary, quarantine_table
from pipelines.runners import make_task_runner
from pipelines.units import default_episodes_per_unit
from pipelines.version import code_version

DEFAULT_RETRIES = 2  # units and steps are idempotent: a transient failure (I/O, a dropped worker) is retried
RETRY_DELAY_S = 2.0
STAGE_STAMP = "config_hash"  # in each stage's folder: the config that staged it


class ConfigMismatchError(RuntimeError, ConfigurationError):
    """The output folder was written with another configuration."""


class SourceMismatchError(ConfigMismatchError):
    """The output folder was made from other data: another dataset, release or sample generation."""


# Exit codes of `annotate` (README "Exit codes"): 0 done (episodes quarantined for their own faults
# included), 1 an error a user can fix, 2 a bad command line, and the two below.
EXIT_INCOMPLETE = 3  # units or steps failed after their retries; a re-run retries them
EXIT_NOTHING_WRITTEN = 4  # every unit ran, yet a non-empty source gave no rows (all quarantined)


class IncompleteRunError(RuntimeError):
    """The run ended without doing its whole job; raised after everything it did is saved.

    Raising (rather than returning) marks the Prefect flow run Failed, so deployments tell the truth too.
    """

    def __init__(self, message: str, manifest: Manifest, exit_code: int):
        super().__init__(message)
        self.manifest, self.exit_code = manifest, exit_code


def _check_outcome(manifest: Manifest, episodes: int, failed_units: int, steps_ok: bool, target: str) -> None:
    """IncompleteRunError when units or steps failed, or when a non-empty source gave no rows."""
    if failed_units or not steps_ok:
        what = [f"{failed_units} of {manifest.planned_units} units failed"] if failed_units else []
        what += [] if steps_ok else ["a step failed (see manifest stats)"]
        raise IncompleteRunError(f"{' and '.join(what)}; quarantine.parquet has the reasons; re-run to retry",
                                 manifest, EXIT_INCOMPLETE)
    if episodes and manifest.rows == 0:
        raise IncompleteRunError(f"no rows from {episodes} episodes: all {manifest.quarantined} quarantined "
                                 f"(reasons in {target}/{QUARANTINE_FILE})", manifest, EXIT_NOTHING_WRITTEN)


@dataclass(frozen=True)
class WorkUnit:
    index: int
    start: int  # episode index range [start, stop) in the reader's order
    stop: int

    @property
    def key(self) -> str:
        return f"{self.start}:{self.stop}"

    @property
    def run_name(self) -> str:
        """The name of the unit's task runs in Prefect's UI: `unit-00003 [24:32]` (episodes 24 to 31)."""
        return f"unit-{self.index:05d} [{self.key}]"

    @property
    def shard_path(self) -> str:
        return f"{SHARDS_DIR}/{SHARD_PATTERN.format(index=self.index)}"


UNIT_RUN_NAME = "{unit.run_name}"  # task_run_name: formatted with the task's parameters


def plan_units(num_episodes: int, episodes_per_shard: int) -> list[WorkUnit]:
    if episodes_per_shard < 1:
        raise ValueError(f"episodes_per_shard must be ≥ 1, got {episodes_per_shard}")
    starts = range(0, num_episodes, episodes_per_shard)
    return [WorkUnit(i, s, min(s + episodes_per_shard, num_episodes)) for i, s in enumerate(starts)]


# Output folder → the RunAbortError that stopped its run: units in this process stop before their next episode.
_ABORTED: dict[str, str] = {}


def _annotate_episodes(
    pipe: Pipeline, items: Iterator, unit: WorkUnit, out: str, writer: ShardWriter,
    quarantined: list[Quarantined], episode_ids: list[str],
) -> dict[str, Any]:
    """Stream the unit's episodes through the pipeline into `writer`; returns the unit's statistics.

    What the reader could not read (a damaged record included) or the pipeline rejected is quarantined
    with its reason and the unit goes on, so the episodes before and after a fault keep their rows. An
    episode whose frames do not all decode is quarantined here (FrameDecodeError, from `annotate` or
    `episode_artifacts`): nothing after the unit decodes source frames.
    """
    source = pipe.source.name
    indices: deque[int] = deque()  # reader positions of the episodes handed over (results come back in order)

    def readable() -> Iterator[Episode]:
        for offset, item in enumerate(items):
            if out in _ABORTED:  # another unit of this run met a fault that fails every unit alike
                raise RunAbortError(f"stopped with the run: {_ABORTED[out]}")
            episode_ids.append(item.episode_id)
            if isinstance(item, Quarantined):
                quarantined.append(Quarantined(item.episode_id, item.reason, item.stage, source, unit.key))
            else:
                indices.append(unit.start + offset)
                yield item

    stats = pipe.unit_stats([])
    for episode, result in pipe.annotate_many(readable()):
        index = indices.popleft()
        if isinstance(result, EpisodeError):
            quarantined.append(Quarantined(episode.episode_id, result.reason, "annotate", source, unit.key))
            continue
        try:
            artifacts = pipe.episode_artifacts(episode, result, out, index)
        except EpisodeError as e:  # e.g. a frame that decodes for the model but not for a clip
            quarantined.append(Quarantined(episode.episode_id, e.reason, "artifacts", source, unit.key))
            continue
        writer.write_rows(result)  # one episode at a time: the writer flushes row groups as they fill
        stats = merge_stats(merge_stats(stats, pipe.unit_stats(result)), artifacts)
        clipped = int(episode.metadata.get(GRIPPER_CLIPPED, 0))  # raw gripper values beyond open/closed
        stats = merge_stats(stats, {GRIPPER_CLIPPED: clipped}) if clipped else stats
    return stats


def card_text(card: SourceCard) -> str:
    """The card as tasks get it: its JSON text. Dask and Ray walk task parameters into pydantic models, where
    `dict(model)` breaks on the card's `keys` fields, and Dask turns Prefect's `quote`/`opaque` wrappers (tuples)
    into plain tuples; a string crosses every runner as it is."""
    return card.model_dump_json()


@task(name="annotate-unit")
def annotate_unit(
    card_json: str, pipeline: str, location: str | None, options: dict[str, Any], out: str, unit: WorkUnit
) -> ShardRecord:
    """Read a unit's episodes, annotate them, write one shard and the unit's quarantine part."""
    started = time.perf_counter()
    card = SourceCard.model_validate_json(card_json)
    pipe = worker_pipeline(pipeline, card, options)
    pipe.load_stages(out)
    reader = open_reader(card, location)
    quarantined: list[Quarantined] = []
    episode_ids: list[str] = []
    # Model-heavy pipelines hold a slot of their global concurrency limit (if the server has one).
    limit = concurrency(pipe.concurrency_limit) if pipe.concurrency_limit else nullcontext()
    with limit, ShardWriter(pipe.output, f"{out}/{unit.shard_path}") as writer:
        stats = _annotate_episodes(pipe, iter(reader.read(unit.start, unit.stop)), unit, out, writer,
                                   quarantined, episode_ids)
    n_rows, n_bytes, sha = writer.result  # type: ignore[misc]
    part = f"{out}/{QUARANTINE_STAGING_DIR}/unit-{unit.index:05d}.parquet"
    sink = pa.BufferOutputStream()
    pq.write_table(quarantine_table(quarantined), sink)
    write_bytes_atomic(part, sink.getvalue().to_pybytes())
    return ShardRecord(
        unit=unit.key,
        path=unit.shard_path,
        rows=n_rows,
        bytes=n_bytes,
        sha256=sha,
        episodes=episode_ids,
        seconds=round(time.perf_counter() - started, 3),
        stats={"quarantined": len(quarantined), **stats},
        worker=f"{socket.gethostname()}:{os.getpid()}",
        pipelines_built=pipelines_built(),
    )


def _stage(pipe: Pipeline, name: str) -> Stage:
    return next(s for s in pipe.stages() if s.name == name)


@task(name="stage-collect")
def collect_unit(card_json: str, pipeline: str, location: str | None, options: dict[str, Any], out: str,
                 stage: str, unit: WorkUnit) -> int:
    """One unit's part of a run-level stage, written atomically (the reader's quarantined episodes are skipped:
    the unit that annotates them quarantines them again, with their reason)."""
    card = SourceCard.model_validate_json(card_json)
    pipe = worker_pipeline(pipeline, card, options)
    step = _stage(pipe, stage)
    episodes = (e for e in open_reader(card, location).read(unit.start, unit.stop) if not isinstance(e, Quarantined))
    rows = step.collect(episodes)
    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pylist(rows, schema=step.schema), sink)
    write_bytes_atomic(f"{out}/{STAGE_PART.format(stage=stage, index=unit.index)}", sink.getvalue().to_pybytes())
    return len(rows)


@task(name="stage-reduce")
def reduce_stage(card_json: str, pipeline: str, options: dict[str, Any], out: str, stage: str,
                 parts: list[str]) -> dict[str, Any]:
    pipe = worker_pipeline(pipeline, SourceCard.model_validate_json(card_json), options)
    return _stage(pipe, stage).reduce(out, parts)


def _run_stages(pipe: Pipeline, args: tuple, retries: int, units: list[WorkUnit], target: str, digest: str,
                logger) -> dict[str, Any]:
    """The pipeline's run-level stages: parts collected in parallel (those staged already are kept), then one
    reduce per stage over every part in dataset order. A part that fails after its retries stops the run:
    a reduce over the whole corpus cannot go on with a hole in it.

    A stage's folder is stamped with the config hash: what another config staged there (a manifest that was
    lost or rebuilt leaves its stages behind) is removed, never reused."""
    fs, root = fsspec.core.url_to_fs(target)
    results: dict[str, Any] = {}
    for stage in pipe.stages():
        folder = STAGE_PART.format(stage=stage.name, index=0).rsplit("/", 1)[0]
        stamp = f"{root}/{folder}/{STAGE_STAMP}"
        if fs.exists(f"{root}/{folder}") and (not fs.exists(stamp) or fs.cat_file(stamp).decode() != digest):
            logger.warning(f"{target}/{folder} was staged by another configuration: removed, staged again")
            fs.rm(f"{root}/{folder}", recursive=True)
        if not fs.exists(stamp):
            write_text_atomic(f"{target}/{folder}/{STAGE_STAMP}", digest)
        parts = [STAGE_PART.format(stage=stage.name, index=u.index) for u in units]
        missing = [u for u, part in zip(units, parts) if not fs.exists(f"{root}/{part}")]
        logger.info(f"stage {stage.name}: {len(units) - len(missing)} of {len(units)} parts staged, "
                    f"collecting {len(missing)}")
        collect = collect_unit.with_options(name=f"{stage.name}-collect", retries=retries,
                                            retry_delay_seconds=RETRY_DELAY_S, retry_condition_fn=worth_retrying,
                                            task_run_name=f"{stage.name}-collect {UNIT_RUN_NAME}")
        futures = [collect.submit(*args, target, stage.name, u) for u in missing]
        wait(futures)
        failed = [u.key for u, f in zip(missing, futures) if f.state.is_failed()]
        if failed:
            error = next(f for f in futures if f.state.is_failed()).state.result(raise_on_failure=False)
            raise RuntimeError(f"stage {stage.name}: units {', '.join(failed)} failed after {retries} retries "
                               f"({error!r}); re-run to retry them")
        reduce = reduce_stage.with_options(name=f"{stage.name}-reduce", retries=retries,
                                           retry_delay_seconds=RETRY_DELAY_S, retry_condition_fn=worth_retrying)
        card_json, pipeline, _location, options = args
        results[stage.name] = reduce(card_json, pipeline, options, target, stage.name, [f"{target}/{p}" for p in parts])
        logger.info(f"stage {stage.name}: {results[stage.name]}")
    return results


@task(name="pipeline-step")
def run_step(card_json: str, pipeline: str, options: dict[str, Any], out: str, name: str) -> Any:
    """One of the pipeline's steps on the saved manifest (retried by the flow; idempotent)."""
    pipe = worker_pipeline(pipeline, SourceCard.model_validate_json(card_json), options)
    step = next(s for s in pipe.steps() if s.name == name)
    return step.run(out, Manifest.load(out))


def _remove_stale_temp_files(out: str) -> None:
    """Temp files of a killed or refused run are never complete; drop them (the lease: one run per folder)."""
    fs, root = fsspec.core.url_to_fs(out)
    folders = (root, f"{root}/{SHARDS_DIR}", f"{root}/{QUARANTINE_STAGING_DIR}", f"{root}/_staging",
               f"{root}/_staging/*")
    for stale in [p for folder in folders for p in fs.glob(f"{folder}/.tmp-*")]:
        fs.rm(stale)


def _remove_unit_parts(out: str, todo: list[WorkUnit]) -> None:
    """The quarantine parts of the units about to run: left by an attempt that was killed before its shard was
    recorded, or by a shard found damaged, they would be counted again beside the new attempt's records."""
    fs, root = fsspec.core.url_to_fs(out)
    for unit in todo:
        part = f"{root}/{QUARANTINE_STAGING_DIR}/unit-{unit.index:05d}.parquet"
        if fs.exists(part):
            fs.rm(part)


def merge_quarantine(out: str, extra: list[Quarantined]) -> int:
    """Merge per-unit quarantine parts (plus unit-level failures) into quarantine.parquet."""
    fs, root = fsspec.core.url_to_fs(out)
    tables = [quarantine_table(extra)]
    for part in sorted(fs.glob(f"{root}/{QUARANTINE_STAGING_DIR}/unit-*.parquet")):
        try:
            with fs.open(part, "rb") as f:
                tables.append(pq.read_table(f).cast(QUARANTINE_SCHEMA))
        except (OSError, pa.ArrowException) as e:  # the resume check redoes such units; this names a late one
            raise ShardIntegrityError(f"quarantine part {out}/{QUARANTINE_STAGING_DIR}/{part.rsplit('/', 1)[-1]} "
                                      f"cannot be read ({type(e).__name__}: {str(e).strip()}); delete it and re-run") from e
    table = pa.concat_tables(tables)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    write_bytes_atomic(f"{out}/{QUARANTINE_FILE}", sink.getvalue().to_pybytes())
    return table.num_rows


def _quarantine_stats(target: str) -> dict[str, Any]:
    """The summary of the merged quarantine.parquet that card.md's failures section shows."""
    with fsspec.open(f"{target}/{QUARANTINE_FILE}", "rb") as f:
        return quarantine_summary(pq.read_table(f))


def _episode_ids(reader, n: int, target: str, digest: str) -> list[str]:
    """The run's episode ids: scanned once (every record read, only the id keys parsed), then reused by
    resumes of the same config and location (a card whose keys changed is scanned again)."""
    path = f"{target}/{EPISODE_IDS_FILE}"
    fs, root = fsspec.core.url_to_fs(path)
    stamp = {"config_hash": digest, "location": reader.location, "episodes": n}
    if fs.exists(root):
        try:
            cached = json.loads(read_text(path))
        except (json.JSONDecodeError, UnicodeDecodeError):
            cached = {}  # a cache cut short by a killed run: scan again
        if isinstance(cached, dict) and {k: cached.get(k) for k in stamp} == stamp and isinstance(cached.get("ids"), list):
            return cached["ids"]
    ids = reader.episode_ids(0, n)
    write_text_atomic(path, json.dumps({**stamp, "ids": ids}))
    return ids


@dataclass(frozen=True)
class SourceIdentity:
    """Where a run's data is and what it is (SourceReader.fingerprint): a resume must read the same data."""

    location: str
    fingerprint: str


def _run_card(source: str, location: str | None) -> tuple[SourceCard, str | None]:
    """The card a run uses: `source`'s, or its embedded sample's when `location` is where that sample lies, so
    a run over the sample is named and described as the sample (OUT/<pipeline>/sample-droid, its card's
    words) and never as the corpus it imitates."""
    card = load_source_card(source)
    if not location:
        return card, location
    sample = sample_card_at(card, card.resolve_location(location)) or _sample_copy(card, location)
    return (sample, None) if sample is not None else (card, location)


def _sample_copy(card: SourceCard, location: str) -> SourceCard | None:
    """`card`'s embedded sample when the local folder at `location` holds a copy of it (the same fingerprint)."""
    name = f"{SAMPLE_PREFIX}{card.name}"
    if "://" in location or name not in list_sources() or not Path(location).exists():
        return None
    sample = load_source_card(name)
    try:
        same = open_reader(card, location).fingerprint() == open_reader(sample).fingerprint()
    except (OSError, CardError, ValueError):  # not readable as the card says: its reader says why, later, in one line
        return None
    return sample if same else None


def _adopt_limit_free_config(manifest: Manifest, config: dict[str, Any], digest: str) -> bool:
    """A manifest whose config differs from this run's only by the `limit` older versions hashed: adopt this
    config (a larger limit now extends an output, see `_fit_to_plan`), so those outputs still resume."""
    if "limit" not in manifest.config or "limit" in config:
        return False
    if config_hash({k: v for k, v in manifest.config.items() if k != "limit"}) != digest:
        return False
    manifest.config, manifest.config_hash = config, digest
    return True


def _same_data(manifest: Manifest, source: SourceIdentity, target: str, logger) -> None:
    """SourceMismatchError when the folder was made from other data; the same data moved is followed."""
    recorded = manifest.source_fingerprint
    same = recorded == source.fingerprint if recorded else manifest.source_location == source.location
    if not same:
        raise SourceMismatchError(
            f"{target} was made from {manifest.source_location} (fingerprint {recorded or 'not recorded'}), "
            f"this run reads {source.location} (fingerprint {source.fingerprint}): other data. "
            f"Use another {flag('out')}, or {flag('overwrite', True)} to start over.")
    if manifest.source_location != source.location:
        logger.info(f"the source moved: {manifest.source_location} → {source.location} (same fingerprint)")
    manifest.source_location, manifest.source_fingerprint = source.location, source.fingerprint


def _differences(recorded: dict[str, Any], wanted: dict[str, Any], prefix: str = "") -> list[str]:
    """The dotted keys whose values differ between two configs (a mapping on both sides is walked into)."""
    keys = sorted(set(recorded) | set(wanted))
    out: list[str] = []
    for key in keys:
        a, b = recorded.get(key), wanted.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}")
    return out


def _refuse_before_loading(target: str, declared: dict[str, Any], source: SourceIdentity, overwrite: bool,
                           logger) -> None:
    """A clash with the output folder found before any model loads: another declared config (card, params,
    options, output card, unit size) or other data. The weights' content (and pixel's limit) is compared
    by `_open_manifest`, once the pipeline has found its weights."""
    if overwrite:
        return
    try:
        manifest = Manifest.load_if_exists(target)
    except ManifestError:
        return  # reported and rebuilt from its backup by _open_manifest
    if manifest is None:
        return
    differ = _differences({k: manifest.config.get(k) for k in declared}, declared)
    if differ:
        shown = ", ".join(differ[:5]) + (f" and {len(differ) - 5} more" if len(differ) > 5 else "")
        raise ConfigMismatchError(
            f"{target} was written with config {manifest.config_hash}; this run differs in {shown}. "
            f"Use another {flag('out')}, or {flag('overwrite', True)} to start over.")
    _same_data(manifest, source, target, logger)


def _open_manifest(target: str, pipe: Pipeline, card, source: SourceIdentity, config: dict,
                   overwrite: bool) -> Manifest:
    """The folder's manifest if it was written with this config from this data, a new one otherwise (or an
    error: ConfigMismatchError, SourceMismatchError).

    A damaged manifest.json (truncated, the wrong shape) is reported with its path and rebuilt from its
    backup copy (the resume check then keeps only the shards that still verify), or started afresh
    when the backup is gone too; --overwrite always starts over.
    """
    logger = get_run_logger()
    digest = config_hash(config)
    try:
        manifest = Manifest.load_if_exists(target)
    except ManifestError as e:
        manifest = None if overwrite else Manifest.load_backup(target)
        what = (f"{flag('overwrite', True)}: starting over" if overwrite else
                "no usable backup: every unit is redone" if manifest is None else
                f"rebuilt from its backup ({len(manifest.shards)} shards, each verified before it is kept)")
        logger.warning(f"{e}; {what}")
    if manifest is not None and manifest.config_hash != digest and not _adopt_limit_free_config(manifest, config,
                                                                                                    digest):
        if not overwrite:
            differ = ", ".join(_differences(manifest.config, config)[:5])
            raise ConfigMismatchError(
                f"{target} was written with config {manifest.config_hash}, this run has {digest} (differs in "
                f"{differ}). "
                f"Use another {flag('out')}, or {flag('overwrite', True)} to start over."
            )
        manifest = None
    if manifest is not None:
        try:
            _same_data(manifest, source, target, logger)
        except SourceMismatchError:
            if not overwrite:
                raise
            manifest = None
    if manifest is None and overwrite:
        _clear_output(target)
    if manifest is None:
        manifest = Manifest(
            pipeline=pipe.name, output_card_version=pipe.output.version, source=card.name,
            source_location=source.location, source_fingerprint=source.fingerprint, config_hash=digest, config=config,
            code_version=code_version(), created=now(), updated=now(),
        )
    return manifest


def _fit_to_plan(manifest: Manifest, units: list[WorkUnit], target: str, logger) -> None:
    """Make the manifest's records fit this run's plan. A larger `limit` than the one that made the output
    extends it: the short last unit of the smaller plan is dropped (shard and quarantine part) and redone at
    full size, every other unit is kept. A smaller one is refused: an output never shrinks quietly."""
    planned = {u.key for u in units}
    end = units[-1].stop if units else 0
    past = max((int(r.unit.split(":")[1]) for r in manifest.shards), default=0)
    if past > end:
        raise ConfigMismatchError(
            f"{target} holds episodes up to {past} and this run plans {end} (a smaller limit): an output never "
            f"shrinks. Run with a limit of at least that, use another {flag('out')}, or {flag('overwrite', True)} "
            "to start over.")
    fs, root = fsspec.core.url_to_fs(target)
    index = {u.start: u.index for u in units}
    for record in [r for r in manifest.shards if r.unit not in planned]:
        logger.info(f"unit {record.unit} grows to the larger limit's unit: redone")
        part = f"{root}/{QUARANTINE_STAGING_DIR}/unit-{index[int(record.unit.split(':')[0])]:05d}.parquet"
        for stale in (f"{root}/{record.path}", part):
            if fs.exists(stale):
                fs.rm(stale)
        manifest.shards = [s for s in manifest.shards if s is not record]


def _clear_output(target: str) -> None:
    """Empty the output folder for --overwrite, keeping the lease this run holds on it."""
    fs, root = fsspec.core.url_to_fs(target)
    if fs.exists(root):
        for child in fs.ls(root, detail=False):
            if child.rstrip("/").rsplit("/", 1)[-1] != LEASE_FILE:
                fs.rm(child, recursive=True)


def _verified_units(manifest: Manifest, units: list[WorkUnit], target: str, logger) -> set[str]:
    """The units the manifest records whose shard (size, sha256) and quarantine part still verify.

    A damaged or missing one is dropped from the manifest, its shard file removed, and its unit redone:
    the check costs one read of every shard, so a resume never builds on bytes that changed.
    """
    fs, root = fsspec.core.url_to_fs(target)
    damaged = manifest.damaged_shards(target)
    index = {u.key: u.index for u in units}

    def part_problem(record: ShardRecord) -> str | None:
        if record.unit not in index:
            return None
        part = f"{root}/{QUARANTINE_STAGING_DIR}/unit-{index[record.unit]:05d}.parquet"
        try:
            with fs.open(part, "rb") as f:
                pq.read_metadata(f)
        except FileNotFoundError:
            return f"has lost its quarantine part {QUARANTINE_STAGING_DIR}/{part.rsplit('/', 1)[-1]}"
        except (OSError, pa.ArrowException) as e:
            return f"has a damaged quarantine part {QUARANTINE_STAGING_DIR}/{part.rsplit('/', 1)[-1]} ({str(e).strip()})"
        return None

    with ThreadPoolExecutor(max_workers=8) as pool:
        parts = dict(zip((r.path for r in manifest.shards), pool.map(part_problem, manifest.shards)))
    redo = set()
    for record in manifest.shards:
        problem = damaged.get(f"{target.rstrip('/')}/{record.path}") or parts[record.path]
        if problem is None:
            continue
        logger.warning(f"shard {target.rstrip('/')}/{record.path} {problem}: unit {record.unit} is redone")
        redo.add(record.path)
        try:
            if fs.exists(f"{root}/{record.path}"):
                fs.rm(f"{root}/{record.path}")  # no reader may take damaged bytes for data meanwhile
        except OSError as e:
            logger.warning(f"could not remove the damaged shard {target}/{record.path}: {e}")
    manifest.shards = [s for s in manifest.shards if s.path not in redo]
    return manifest.completed_units()


def worth_retrying(task, task_run, state) -> bool:
    """The retry condition of units, stage tasks and steps: a RunAbortError (a rejected key, a bad request) or a
    ConfigurationError (no Label Studio at its URL, an output of another config) fails every try alike."""
    return not isinstance(state.data, (RunAbortError, ConfigurationError))


def _stop_units(futures: dict, target: str, error: BaseException, logger) -> None:
    """When the run stops (a RunAbortError, or any error while recording): cancel the units that have not
    started, and tell the ones running in this process to stop before their next episode (units on other
    workers meet a RunAbortError's fault themselves)."""
    _ABORTED[target] = str(error)
    cancelled = 0
    for future in futures:
        wrapped = getattr(future, "wrapped_future", None)  # a concurrent (threads) or dask future
        if callable(getattr(wrapped, "cancel", None)) and not wrapped.done():
            cancelled += wrapped.cancel() is not False  # False: it is running already
    logger.error(f"run stopped: {error!r}; {cancelled} unit(s) not started were cancelled")


def _run_units(todo: list[WorkUnit], total: int, args: tuple, retries: int, manifest: Manifest, target: str,
               label: str, ids: list[str], logger) -> list[Quarantined]:
    """Submit every unit, record each shard as it lands; returns the episodes of the units that failed, as
    quarantine records (one per episode, `ids` in reader order: the card counts episodes, not units).

    A RunAbortError from a unit (a fault that fails every unit alike) is not retried and stops the run: no
    more units are waited on, those not started are cancelled, the manifest and quarantine keep the
    units that finished, and the error goes up to the caller (the command line prints its one line).
    """
    failures: list[Quarantined] = []
    _ABORTED.pop(target, None)
    unit_task = annotate_unit.with_options(retries=retries, retry_delay_seconds=RETRY_DELAY_S,
                                           retry_condition_fn=worth_retrying, task_run_name=UNIT_RUN_NAME)
    futures = {unit_task.submit(*args, target, u): u for u in todo}
    try:
        _record_units(futures, total, manifest, target, label, ids, logger, failures)
    except BaseException as e:
        # Whatever stops the run (a RunAbortError, a full disk while saving, Ctrl-C), the units still running
        # must not write on after the lease is released: stop them and wait for every one before leaving.
        _stop_units(futures, target, e, logger)
        wait(list(futures))
        if isinstance(e, RunAbortError):
            manifest.quarantined = merge_quarantine(target, [])  # the finished units' parts
            manifest.save(target)
        raise
    return failures


def _record_units(futures: dict, total: int, manifest: Manifest, target: str, label: str, ids: list[str], logger,
                  failures: list[Quarantined]) -> None:
    """Record each unit's shard in the manifest as it lands; a failed unit's episodes become quarantine records.

    Progress goes three ways: a bar for people at a terminal, a log line per unit (rates and ETA) for
    deployments and CI, and a progress artifact the Prefect UI shows on the flow run."""
    done = already = total - len(futures)  # units of earlier runs
    started, episodes, rows = time.perf_counter(), 0, 0
    artifact = create_progress_artifact(progress=100 * done / total, description=f"units of {label}")
    with Progress(*Progress.get_default_columns(), MofNCompleteColumn(), disable=not sys.stderr.isatty()) as bar:
        progress = bar.add_task(label, total=total, completed=done)
        for future in as_completed(list(futures)):
            unit = futures[future]
            bar.advance(progress)
            done += 1
            update_progress_artifact(artifact, progress=100 * done / total)
            try:
                record = future.result()
            except RunAbortError:
                raise
            except Exception as e:  # one bad unit must not kill the run; it is retried next time
                logger.error(f"unit {unit.index + 1} of {total} [{unit.key}] failed: {e!r}")
                reason = f"unit failed: {type(e).__name__}: {e}"
                failures += [Quarantined(episode_id, reason, "unit", manifest.source, unit.key)
                             for episode_id in ids[unit.start:unit.stop]]
                continue
            manifest.add_shard(record)  # a shard repeating another's episode stops the run here
            _check_lease()  # a run whose lease was taken over must not overwrite the new holder's manifest
            manifest.save(target)
            episodes, rows = episodes + len(record.episodes), rows + record.rows
            logger.info(f"shard {record.path}: unit {unit.index + 1} of {total} [{unit.key}], {record.rows} rows "
                        f"in {record.seconds:.1f}s ({done} of {total} units done; "
                        f"{_rates(episodes, rows, time.perf_counter() - started, done - already, total - done)})")


def _rates(episodes: int, rows: int, seconds: float, landed: int, left: int) -> str:
    """This run's episodes/s and rows/s so far, and the time the units left would take at its pace per unit."""
    eta = timedelta(seconds=round(seconds / max(landed, 1) * left))
    return f"{episodes / seconds:.2f} episodes/s, {rows / seconds:.1f} rows/s, ETA {eta}"


def _run_steps(pipe: Pipeline, args: tuple, retries: int, manifest: Manifest, target: str, logger) -> bool:
    """Run the pipeline's steps in order, each a retried task; True when every one gave a result."""
    ok = True
    for step in pipe.steps():
        tries = retries if step.retries is None else step.retries
        step_task = run_step.with_options(name=f"{pipe.name}-{step.name}", retries=tries,
                                          retry_delay_seconds=RETRY_DELAY_S, retry_condition_fn=worth_retrying)
        try:
            result = step_task(*args, target, step.name)
        except Exception as e:
            logger.error(f"step {step.name} failed after {tries} retries: {e!r}")
            if step.on_failure is None:
                ok = False
                result = f"failed: {type(e).__name__}: {e}"
            else:
                result = step.on_failure(target, manifest, e)
        manifest.stats = {**manifest.stats, step.name: result}
        manifest.save(target)
    return ok


_LEASE: ContextVar[OutputLease | None] = ContextVar("annotate_output_lease", default=None)


def _holding_output_lease(fn: Callable[..., Manifest]) -> Callable[..., Manifest]:
    """The flow body runs holding the output folder's lease (pipelines/io/lease.py): taken before anything
    is read or written there, renewed while the run lives, released when it ends, failures included.
    A second run on the folder stops with LeaseHeldError naming the holder and when its lease expires."""
    signature = inspect.signature(fn)

    @functools.wraps(fn)
    def holding(*args: Any, **kwargs: Any) -> Manifest:
        given = signature.bind(*args, **kwargs)
        given.apply_defaults()
        p = given.arguments
        if secret_options(p["options"]):  # before anything can fail: Prefect recorded the parameters already
            redact_recorded_options(p["options"])
        check_run_arguments(p["limit"], p["episodes_per_shard"], p["retries"], p["options"])
        card, _ = _run_card(p["source"], p["location"])
        check_card_secrets(card)  # a card file's params (e.g. params.la.extra.vlm) go into the manifest
        check_options(p["pipeline"], card, p["options"])  # unknown keys, bad values: before any model loads
        check_source_reachable(p["source"], card, p["location"], p["pipeline"])  # before a reader loads TensorFlow
        target = output_dir(p["out"], p["pipeline"], card.name)
        run = FlowRunContext.get()
        with OutputLease(target, run_id=str(run.flow_run.id) if run and run.flow_run else None) as lease, \
                _checked_lease(lease):
            return fn(*args, **kwargs)

    return holding


@contextmanager
def _checked_lease(lease: OutputLease) -> Iterator[None]:
    """`lease` is the one `_check_lease` checks while the flow body runs.

    Module-level, so that `holding` does not name `_LEASE`: Dask and Ray pickle the flow function by value
    (it travels with the flow run context to every task), and a ContextVar cannot be pickled."""
    token = _LEASE.set(lease)
    try:
        yield
    finally:
        _LEASE.reset(token)


def _check_lease() -> None:
    """LeaseLostError if this run's lease was taken over (it stalled for longer than the lease's TTL)."""
    lease = _LEASE.get()
    if lease is not None:
        lease.check()


def run_name() -> str:
    """Flow runs are named `<pipeline>-<source>` (a card file by its stem), e.g. `la-sample-droid`."""
    parameters = prefect.runtime.flow_run.parameters
    return f"{parameters.get('pipeline', 'la')}-{Path(str(parameters.get('source', 'sample-droid'))).stem}"


@flow(name="annotate", log_prints=True, flow_run_name=run_name)
@_holding_output_lease
def annotate(
    source: str = "sample-droid",
    pipeline: str = "la",
    out: str = "outputs",
    limit: int | None = None,
    episodes_per_shard: int | None = None,
    location: str | None = None,
    options: dict[str, Any] | None = None,
    overwrite: bool = False,
    retries: int = DEFAULT_RETRIES,
) -> Manifest:
    """Annotate `source` with `pipeline` into OUT/<pipeline>/<source>/ (resumable).

    `episodes_per_shard` (episodes per work unit and shard): None sizes units to about a minute of model time
    on one GPU from the cards (pipelines/units.py).
    """
    logger = get_run_logger()  # arguments and secrets were checked by _holding_output_lease, before the lease
    started = time.perf_counter()
    options = dict(options or {})
    out = absolute(out)  # units may run on workers elsewhere: a relative folder would be theirs, not this one
    card, given = _run_card(source, location)
    target = output_dir(out, pipeline, card.name)
    if location and given is None:
        logger.warning(f"{location} is the embedded sample: this run is {card.name!r}, written to {target}")
    location = given
    reader = open_reader(card, location)
    total = reader.num_episodes()
    n = total if limit is None else min(total, limit)
    # The card the units get, its gripper calibrated if asked: surveyed on the corpus's first episodes whatever
    # the limit, so a larger limit extends an output under the same calibration.
    card, gripper = survey_gripper(card, reader, total)
    if gripper.get("calibrated"):
        reader = open_reader(card, location)
    if "warning" in gripper:
        logger.warning(gripper["warning"])
    identity = SourceIdentity(reader.location, reader.fingerprint())
    if episodes_per_shard is None:  # about a minute of model time on one GPU (pipelines/units.py)
        episodes_per_shard = default_episodes_per_unit(load_output_card(pipeline), card,
                                                       effective_params(pipeline, card, options))
    declared = {**declared_config(pipeline, card, options), "episodes_per_shard": episodes_per_shard}
    _refuse_before_loading(target, declared, identity, overwrite, logger)
    pipe = worker_pipeline(pipeline, card, options)
    units = plan_units(n, episodes_per_shard)
    # `limit` only adds units (a larger one extends the output), unless run-level stages see every episode.
    config = {**pipe.config(), "episodes_per_shard": episodes_per_shard, **({"limit": limit} if pipe.stages() else {})}
    manifest = _open_manifest(target, pipe, card, identity, config, overwrite)
    manifest.models = pipe.models  # where the weights were found, device, dtype (their content is in the hash)
    # Ids must be unique over the whole run before any unit runs (real Bridge repeats file_path).
    ids = _episode_ids(reader, n, target, manifest.config_hash)
    check_unique_episode_ids(card, ids)
    _fit_to_plan(manifest, units, target, logger)
    done = _verified_units(manifest, units, target, logger)  # skipped only if its bytes still match
    todo = [u for u in units if u.key not in done]
    if manifest.verified is not None and not todo:
        logger.info(f"{target} is reviewed (generation {manifest.generation}) and complete: nothing to do")
        card_md = read_text(f"{target}/{CARD_FILE}")
        if card_md is not None:  # README.md from the card the review wrote (an output older than README.md has none)
            write_hub_readme(target, pipe.output, manifest, card, card_md)
        logger.info(f"output: {absolute(target)}; card: {absolute(target)}/{CARD_FILE}")
        return manifest
    _remove_stale_temp_files(target)
    _remove_unit_parts(target, todo)
    manifest.planned_units = len(units)
    manifest.complete = False
    logger.info(f"{card.name} → {pipeline}: {n} episodes, {len(units)} units, {len(todo)} to do, in {target}")
    manifest.save(target)

    # Tasks get the card itself (as JSON), not its name or file: a worker elsewhere may have neither (and a card
    # file named like a built-in card must not turn into the built-in one).
    args = (card_text(card), pipeline, location, options)
    stage_stats = _run_stages(pipe, args, retries, units, target, manifest.config_hash, logger)
    failures = _run_units(todo, len(units), args, retries, manifest, target, f"{pipeline} ← {card.name}", ids,
                          logger)
    failed_units = len({q.unit for q in failures})
    manifest.quarantined = merge_quarantine(target, failures)
    clipped = sum(int(shard.stats.get(GRIPPER_CLIPPED, 0)) for shard in manifest.shards)
    gripper = {**gripper, "clipped_values": clipped} if gripper or clipped else gripper
    manifest.stats = {**pipe.finalize(target, manifest), **stage_stats, **({"gripper": gripper} if gripper else {}),
                      "quarantine": _quarantine_stats(target)}
    manifest.save(target)
    steps_ok = _run_steps(pipe, (card_text(card), pipeline, options), retries, manifest, target, logger)
    manifest.complete = not failures and steps_ok and len(manifest.shards) == len(units)
    manifest.stats = {**manifest.stats, "run": {
        "episodes": n, "wall_seconds": round(time.perf_counter() - started, 1),  # this run's, resumes count anew
        "unit_seconds": round(sum(s.seconds for s in manifest.shards), 1)}}  # every unit's, whichever run did it
    card_md = write_cards(target, pipe.output, manifest, card)  # first: a manifest that says complete has its cards
    _check_lease()  # a run whose lease was taken over never marks the output complete
    manifest.save(target)  # the commit point; a full or read-only disk here leaves the last saved state
    create_markdown_artifact(  # the UI cannot load the card's relative image paths: small copies go inline
        key=f"{pipeline}-{card.name}".replace("_", "-").lower(), markdown=inline_images(card_md, target),
        description="annotate statistics",
    )
    logger.info(f"output: {absolute(target)}; card: {absolute(target)}/{CARD_FILE}")  # where a worker wrote it
    _check_outcome(manifest, n, failed_units, steps_ok, target)
    return manifest


def run_annotate(task_runner: str = "threads", address: str | None = None, max_workers: int | None = None, **kwargs):
    """Run the flow with a chosen task runner (threads, dask, ray)."""
    runner = make_task_runner(task_runner, address=address, max_workers=max_workers)
    return annotate.with_options(task_runner=runner)(**kwargs)


if __name__ == "__main__":
    annotate()
