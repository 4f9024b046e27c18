"""The generic annotate flow: source card + pipeline → shards, manifest, quarantine, card.

Phases:
1. plan     list the source's episodes and cut them into work units (index ranges);
2. skip     drop units the manifest already records as complete (resume);
3. annotate one task per unit: read → annotate → write one shard atomically;
4. record   append each finished shard to the manifest as it completes;
5. finish   merge quarantine, let the pipeline write its artifacts, render card.md,
            publish a Prefect artifact with the statistics.

A unit that fails is quarantined with its reason and the run goes on; it is not
recorded as complete, so the next run retries it.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.futures import as_completed
from rich.progress import MofNCompleteColumn, Progress

from datasets_cards import Episode, EpisodeError, load_source_card
from datasets_cards.constants import (
    MANIFEST_FILE,
    QUARANTINE_FILE,
    QUARANTINE_STAGING_DIR,
    SHARD_PATTERN,
    SHARDS_DIR,
    output_dir,
)
from datasets_cards.manifest import Manifest, ShardRecord, config_hash
from pipelines.base import worker_pipeline
from pipelines.card import render_card
from pipelines.io import ShardWriter, read_text, write_bytes_atomic, write_text_atomic
from pipelines.quarantine import QUARANTINE_SCHEMA, Quarantined, quarantine_table
from pipelines.readers import open_reader
from pipelines.runners import make_task_runner
from pipelines.version import code_version

DEFAULT_EPISODES_PER_SHARD = 8


class ConfigMismatchError(RuntimeError):
    """The output folder was written with another configuration."""


@dataclass(frozen=True)
class WorkUnit:
    index: int
    start: int  # episode index range [start, stop) in the reader's order
    stop: int

    @property
    def key(self) -> str:
        return f"{self.start}:{self.stop}"

    @property
    def shard_path(self) -> str:
        return f"{SHARDS_DIR}/{SHARD_PATTERN.format(index=self.index)}"


def plan_units(num_episodes: int, episodes_per_shard: int) -> list[WorkUnit]:
    if episodes_per_shard < 1:
        raise ValueError(f"episodes_per_shard must be ≥ 1, got {episodes_per_shard}")
    starts = range(0, num_episodes, episodes_per_shard)
    return [WorkUnit(i, s, min(s + episodes_per_shard, num_episodes)) for i, s in enumerate(starts)]


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def load_manifest(out: str) -> Manifest | None:
    text = read_text(f"{out}/{MANIFEST_FILE}")
    return Manifest.from_json(text) if text else None


def save_manifest(out: str, manifest: Manifest) -> None:
    manifest.updated = _now()
    write_text_atomic(f"{out}/{MANIFEST_FILE}", manifest.to_json())


@task(name="annotate-unit", retries=0)
def annotate_unit(
    source: str, pipeline: str, location: str | None, options: dict[str, Any], out: str, unit: WorkUnit
) -> ShardRecord:
    """Read a unit's episodes, annotate them, write one shard and the unit's quarantine part."""
    started = time.perf_counter()
    card = load_source_card(source)
    pipe = worker_pipeline(pipeline, card, options)
    reader = open_reader(card, location)
    rows: list[dict[str, Any]] = []
    quarantined: list[Quarantined] = []
    episode_ids: list[str] = []

    def readable() -> Iterator[Episode]:
        for item in reader.read(unit.start, unit.stop):
            episode_ids.append(item.episode_id)
            if isinstance(item, Quarantined):
                quarantined.append(Quarantined(item.episode_id, item.reason, item.stage, source, unit.key))
            else:
                yield item

    for episode, result in pipe.annotate_many(readable()):
        if isinstance(result, EpisodeError):
            quarantined.append(Quarantined(episode.episode_id, result.reason, "annotate", source, unit.key))
        else:
            rows.extend(result)
    with ShardWriter(pipe.output, f"{out}/{unit.shard_path}") as writer:
        writer.write_rows(rows)
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
        stats={"quarantined": len(quarantined), **pipe.unit_stats(rows)},
    )


def _remove_stale_temp_files(out: str) -> None:
    """Temp files of a killed run are never complete; drop them (one run per output folder)."""
    fs, root = fsspec.core.url_to_fs(out)
    for stale in fs.glob(f"{root}/{SHARDS_DIR}/.tmp-*") + fs.glob(f"{root}/{QUARANTINE_STAGING_DIR}/.tmp-*"):
        fs.rm(stale)


def merge_quarantine(out: str, extra: list[Quarantined]) -> int:
    """Merge per-unit quarantine parts (plus unit-level failures) into quarantine.parquet."""
    fs, root = fsspec.core.url_to_fs(out)
    tables = [quarantine_table(extra)]
    for part in sorted(fs.glob(f"{root}/{QUARANTINE_STAGING_DIR}/unit-*.parquet")):
        with fs.open(part, "rb") as f:
            tables.append(pq.read_table(f).cast(QUARANTINE_SCHEMA))
    table = pa.concat_tables(tables)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    write_bytes_atomic(f"{out}/{QUARANTINE_FILE}", sink.getvalue().to_pybytes())
    return table.num_rows


@flow(name="annotate", log_prints=True)
def annotate(
    source: str = "sample-droid",
    pipeline: str = "la",
    out: str = "outputs",
    limit: int | None = None,
    episodes_per_shard: int = DEFAULT_EPISODES_PER_SHARD,
    location: str | None = None,
    options: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> Manifest:
    """Annotate `source` with `pipeline` into OUT/<pipeline>/<source>/ (resumable)."""
    logger = get_run_logger()
    options = dict(options or {})
    card = load_source_card(source)
    pipe = worker_pipeline(pipeline, card, options)
    target = output_dir(out, pipeline, card.name)

    reader = open_reader(card, location)
    total = reader.num_episodes()
    n = total if limit is None else min(total, limit)
    units = plan_units(n, episodes_per_shard)

    config = {**pipe.config(), "limit": limit, "episodes_per_shard": episodes_per_shard}
    digest = config_hash(config)
    manifest = load_manifest(target)
    if manifest is not None and manifest.config_hash != digest:
        if not overwrite:
            raise ConfigMismatchError(
                f"{target} was written with config {manifest.config_hash}, this run has {digest}. "
                "Use another --out, or --overwrite to start over."
            )
        fs, root = fsspec.core.url_to_fs(target)
        fs.rm(root, recursive=True)
        manifest = None
    if manifest is None:
        manifest = Manifest(
            pipeline=pipeline,
            output_card_version=pipe.output.version,
            source=card.name,
            source_location=reader.location,
            config_hash=digest,
            config=config,
            code_version=code_version(),
            created=_now(),
            updated=_now(),
        )
    _remove_stale_temp_files(target)
    manifest.planned_units = len(units)
    manifest.complete = False
    done = manifest.completed_units()
    todo = [u for u in units if u.key not in done]
    logger.info(f"{card.name} → {pipeline}: {n} episodes, {len(units)} units, {len(todo)} to do, in {target}")
    save_manifest(target, manifest)

    failures: list[Quarantined] = []
    futures = {annotate_unit.submit(card.name, pipeline, location, options, target, u): u for u in todo}
    # A progress bar for people at a terminal; deployments and CI get the log lines only.
    with Progress(*Progress.get_default_columns(), MofNCompleteColumn(), disable=not sys.stderr.isatty()) as bar:
        progress = bar.add_task(f"{pipeline} ← {card.name}", total=len(units), completed=len(units) - len(todo))
        for future in as_completed(list(futures)):
            unit = futures[future]
            bar.advance(progress)
            try:
                record = future.result()
            except Exception as e:  # one bad unit must not kill the run; it is retried next time
                logger.error(f"unit {unit.key} failed: {e!r}")
                failures.append(
                    Quarantined(f"unit:{unit.key}", f"{type(e).__name__}: {e}", "unit", card.name, unit.key)
                )
                continue
            manifest.shards = sorted([*manifest.shards, record], key=lambda s: s.path)
            save_manifest(target, manifest)
            logger.info(f"shard {record.path}: {record.rows} rows in {record.seconds:.1f}s")

    manifest.quarantined = merge_quarantine(target, failures)
    manifest.stats = {**pipe.finalize(target, manifest)}
    manifest.complete = not failures and len(manifest.shards) == len(units)
    save_manifest(target, manifest)
    card_md = render_card(pipe.output, manifest, card)
    write_text_atomic(f"{target}/card.md", card_md)
    create_markdown_artifact(
        key=f"{pipeline}-{card.name}".replace("_", "-").lower(), markdown=card_md, description="annotate statistics"
    )
    if failures:
        logger.warning(f"{len(failures)} unit(s) failed and were quarantined; re-run to retry them")
    return manifest


def run_annotate(task_runner: str = "threads", address: str | None = None, max_workers: int | None = None, **kwargs):
    """Run the flow with a chosen task runner (threads, dask, ray)."""
    runner = make_task_runner(task_runner, address=address, max_workers=max_workers)
    return annotate.with_options(task_runner=runner)(**kwargs)


if __name__ == "__main__":
    annotate()
