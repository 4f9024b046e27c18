"""Command line: `python -m pipelines ...` or the `robot-annotate` console script."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from datasets_cards import CardError, list_outputs, list_sources, load_source_card, sample_card_at
from datasets_cards.constants import CARD_FILE, MANIFEST_FILE, SAMPLE_PREFIX
from datasets_cards.registry import UnknownNameError
from pipelines.base import available_pipelines

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Annotate robot-learning corpora.")
console = Console(stderr=True)


@contextmanager
def reported_as_errors(log: Path | None = None) -> Iterator[None]:
    """Problems a user can fix (missing data or weights, an unknown name, endpoint or server, a config clash,
    repeated episode ids) end the command with one line and exit code 1 instead of a traceback; anything else
    is a bug and shows one. With `log`, the line names the run log that holds the tracebacks."""
    from annotators.segments.vlm.config import VlmConfigError
    from datasets_cards.errors import RunAbortError
    from datasets_cards.manifest import (
        DuplicateEpisodeError,
        IncompleteOutputError,
        ManifestError,
        ShardIntegrityError,
    )
    from datasets_cards.storage import StorageError, is_disk_error, storage_error
    from pipelines.flows.annotate import ConfigMismatchError
    from pipelines.formats import DuplicateEpisodeIdError
    from pipelines.io.lease import LeaseHeldError, LeaseLostError
    from pipelines.labelstudio.client import LabelStudioError

    fixable = (FileNotFoundError, CardError, UnknownNameError, ConfigMismatchError, VlmConfigError, LabelStudioError,
               DuplicateEpisodeIdError, DuplicateEpisodeError)  # missing weights are a FileNotFoundError
    # A damaged output (named), another run holding the output's lease, a full or read-only disk.
    fixable += (ManifestError, IncompleteOutputError, ShardIntegrityError, StorageError, LeaseHeldError, LeaseLostError)
    fixable += (RunAbortError,)  # a rejected key or request: the run stopped early, saving what finished
    try:
        yield
    except fixable as e:  # soft_wrap: the message stays one line, however long its paths
        # escaped: a message's `pip install '.[models]'` is text, not rich markup
        console.print(f"[red]error:[/] {escape(str(e))}" + (f"\n  (full log: {escape(str(log))})" if log else ""),
                      soft_wrap=True)
        raise typer.Exit(1) from e
    except OSError as e:  # a disk error raised past the storage helpers (a pipeline's own writes)
        if not is_disk_error(e):
            raise
        console.print(f"[red]error:[/] {escape(str(storage_error(e, e.filename or 'the output')))}"
                      + (f"\n  (full log: {escape(str(log))})" if log else ""), soft_wrap=True)
        raise typer.Exit(1) from e


class _TerminalFilter(logging.Filter):
    """One line per failure on the terminal: Prefect's tracebacks, its restatement of a failure and its notice
    of each retry stay in the run log; the flow's own line for the failure ("unit 0:8 failed: ...") shows."""

    REPEATS = ("Finished in state Failed", "Finished in state Crashed", "Task run failed with exception",
               "Encountered exception during execution")

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info or record.exc_text:
            return False
        return not record.getMessage().startswith(self.REPEATS)


class _NoticeFilter(logging.Filter):
    """Library notices that ask nothing of the user: Prefect's temporary server coming and going (it stops at
    exit, after the run log is closed) and a model-step concurrency limit the server lacks (README "On a
    cluster" creates one). The run log keeps them; `--verbose` shows them."""

    NOTICES = ("Starting temporary server on", "Stopping temporary server on", "Concurrency limits [")

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.NOTICES)


def quiet_library_notices() -> None:
    """For the rest of the process: the terminal handlers Prefect set up drop `_NoticeFilter`'s notices."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
            handler.addFilter(_NoticeFilter())


@contextmanager
def run_log(path: Path, verbose: bool = False) -> Iterator[Path]:
    """Every log record of the command, tracebacks included, appended to `path`; the terminal gets the rest
    (everything with `verbose`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s | %(levelname)-7s | %(name)s - %(message)s"))
    root = logging.getLogger()  # Prefect's records propagate here, where its console handler is
    terminal = [h for h in root.handlers
                if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)]
    quiet = _TerminalFilter()
    root.addHandler(handler)
    if verbose:
        terminal = []
    for h in terminal:
        h.addFilter(quiet)
    try:
        yield path
    finally:
        root.removeHandler(handler)
        handler.close()
        for h in terminal:
            h.removeFilter(quiet)


def resolve_source(name: str, location: str | None) -> tuple[str, str | None]:
    """The card to run. A corpus that is not reachable here falls back, loudly, to its sample."""
    from pipelines.io.location import location_problem

    card = load_source_card(name)
    sample = sample_card_at(card, card.resolve_location(location)) if location else None
    if sample is not None:  # named and described as what it is, wherever the run writes
        console.print(f"[yellow]{location} is the embedded sample: running as {sample.name!r}.[/]", soft_wrap=True)
        return sample.name, None
    if location or name.startswith(SAMPLE_PREFIX) or Path(name).is_file():  # a card file is the user's own choice
        return name, location
    where = card.resolve_location()
    problem = location_problem(where)  # the flow asks the same (pipelines/flows/sources.py) and refuses
    if problem is None:
        return name, None
    sample = f"{SAMPLE_PREFIX}{name}"
    if sample in list_sources():
        console.print(
            f"[yellow]{name} was not found at {where} ({problem}): running on the embedded sample {sample!r}.[/]\n"
            f"  Point at the real corpus with LOCATION=/path/to/{name} (make) or --location."
        )
        return sample, None
    raise typer.BadParameter(f"{name} data not found at {where} ({problem}); pass --location /path/to/{name}")


@app.command()
def sources() -> None:
    """List the source cards and the outputs they feed."""
    table = Table(title="source cards")
    for col in ("name", "format", "fps", "pipelines", "location"):
        table.add_column(col)
    for name in list_sources():
        card = load_source_card(name)
        table.add_row(name, card.format, f"{card.fps:g}", ",".join(card.pipelines), card.location)
    Console().print(table)


@app.command()
def annotate(
    dataset: Annotated[str, typer.Argument(help="source card name, e.g. droid, bridge, sample-droid")],
    pipeline: Annotated[str | None, typer.Option(help="gaze | pixel | future | la (default: the card's list)")] = None,
    out: Annotated[str, typer.Option(help="output root (local path or fsspec URL)")] = "outputs",
    limit: Annotated[int | None, typer.Option(min=1, help="at most this many episodes (>= 1)")] = None,
    location: Annotated[str | None, typer.Option(help="where the corpus is (overrides the card)")] = None,
    episodes_per_shard: Annotated[int | None, typer.Option(
        min=1, help="episodes per work unit / shard (>= 1); default: about a minute of model time on one GPU, "
                    "from the cards (README 'Work units')")] = None,
    option: Annotated[list[str], typer.Option(
        "--option", "-o", help="pipeline option KEY=VALUE (JSON values), e.g. -o model=/path/to/weights; "
                               "`python -m pipelines options PIPELINE` lists every key with its type and default; "
                               "an unknown key or a bad value stops the run before anything loads")] = [],
    task_runner: Annotated[str, typer.Option(help="threads | dask | ray")] = "threads",
    address: Annotated[str | None, typer.Option(help="dask scheduler / ray cluster address")] = None,
    workers: Annotated[int | None, typer.Option(min=1, help="thread workers (threads runner, >= 1)")] = None,
    overwrite: Annotated[bool, typer.Option(help="start over if OUT holds a run with another config or a damaged manifest")] = False,
    retries: Annotated[int, typer.Option(min=0, help="tries after the first for a failed unit or export step")] = 2,
    verbose: Annotated[bool, typer.Option("--verbose", help="tracebacks and library notices on the terminal too "
                                                            "(the run log under OUT/logs/ always has them)")] = False,
) -> None:
    """Run the annotate flow (resumable: re-running skips finished shards)."""
    from pipelines.flows.annotate import IncompleteRunError, run_annotate
    from pipelines.flows.arguments import (
        RunArgumentError,
        check_card_secrets,
        check_run_arguments,
        options_by_pipeline,
    )

    if not verbose:
        quiet_library_notices()  # after the import above: Prefect sets up its handlers when imported
    options = dict(_parse_option(o) for o in option)
    try:  # numbers typer checked already; a secret among the options must never reach the flow (Prefect records it)
        check_run_arguments(limit, episodes_per_shard, retries, options)
    except RunArgumentError as e:
        console.print(f"error: {e}", soft_wrap=True, markup=False, highlight=False)
        raise typer.Exit(2) from e
    if location and "://" not in location and not Path(location).exists():  # remote ones are checked by their reader
        raise typer.BadParameter(f"--location {location} does not exist")
    if "://" not in out and Path(out).exists() and not Path(out).is_dir():  # before the run log goes under it
        console.print(f"[red]error:[/] --out {out} is a file, not a folder: pass a folder (it is created if missing)",
                      soft_wrap=True)
        raise typer.Exit(1)
    try:
        name, location = resolve_source(dataset, location)
        card = load_source_card(name)
        check_card_secrets(card)  # a card file's params go into manifest.json
    except CardError as e:
        raise typer.BadParameter(str(e)) from e
    except RunArgumentError as e:
        console.print(f"error: {e}", soft_wrap=True, markup=False, highlight=False)
        raise typer.Exit(2) from e
    dataset_card, name = name, card.name  # a card file runs as that file (its name may be a built-in card's)
    if pipeline and pipeline not in list_outputs():
        raise typer.BadParameter(f"unknown pipeline {pipeline!r}; known: {', '.join(list_outputs())}")
    chosen = [pipeline] if pipeline else [p for p in card.pipelines if p in available_pipelines()]
    skipped = [p for p in card.pipelines if not pipeline and p not in chosen]
    if skipped:
        console.print(f"[yellow]skipping {', '.join(skipped)}: not implemented in this version[/]")
    if not chosen:
        raise typer.BadParameter(f"no implemented pipeline among the card's {card.pipelines}; pass --pipeline")
    try:  # before the run log or anything else goes under OUT, and before any model loads
        shares = options_by_pipeline(chosen, card, options)
    except RunArgumentError as e:
        console.print(f"error: {e}", soft_wrap=True, markup=False, highlight=False)
        raise typer.Exit(2) from e
    worst = 0
    for pipe in chosen:
        started = time.perf_counter()
        with run_log(_log_path(out, pipe, name), verbose) as log, reported_as_errors(log):
            try:
                manifest = run_annotate(
                    task_runner=task_runner, address=address, max_workers=workers,
                    source=dataset_card, pipeline=pipe, out=out, limit=limit, episodes_per_shard=episodes_per_shard,
                    location=location, options=shares[pipe], overwrite=overwrite, retries=retries,
                )
            except IncompleteRunError as e:
                manifest, incomplete = e.manifest, e
            else:
                incomplete = None
        target = f"{out.rstrip('/')}/{pipe}/{manifest.source}"  # the flow names a copy of the sample as the sample
        console.print(
            f"[green]{pipe}[/] ← {manifest.source}: {manifest.rows} rows in {len(manifest.shards)} shards, "
            f"{manifest.quarantined} quarantined, {_took(time.perf_counter() - started)} → {target}/{CARD_FILE}",
            soft_wrap=True,
        )
        if incomplete is not None:  # the last line says what is missing
            worst = max(worst, incomplete.exit_code)
            console.print(f"[red]incomplete ({incomplete.exit_code}):[/] {pipe} ← {name}: {escape(str(incomplete))} "
                          f"(log: {escape(str(log))})", soft_wrap=True)
    if worst:
        raise typer.Exit(worst)


def _took(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if minutes else f"{rest} s"


def _log_path(out: str, pipeline: str, source: str) -> Path:
    """OUT/logs/<pipeline>-<source>.log when OUT is a local folder, else ./logs/ (outside the output,
    so --overwrite never deletes the log of the run that is writing it)."""
    root = Path(out) if "://" not in out else Path.cwd()
    return root / "logs" / f"{pipeline}-{source}.log"


@app.command("options")
def options_command(
    pipeline: Annotated[str, typer.Argument(help="gaze | pixel | future | la")],
) -> None:
    """List the keys `annotate --option KEY=VALUE` takes for PIPELINE: type, default, help."""
    from datasets_cards.registry import UnknownNameError
    from pipelines.base import PIPELINES
    from pipelines.options import option_rows

    try:
        model = PIPELINES.get(pipeline).options_model
    except UnknownNameError as e:
        raise typer.BadParameter(str(e)) from e
    table = Table(title=f"{pipeline}: annotate --option KEY=VALUE (-o; JSON values)",
                  caption=f"from card: a field of datasets_cards/params/{pipeline}.py, overriding the source card's "
                          "value (nested fields merge); run: read by the pipeline at run time")
    for col in ("key", "from", "type", "default", "help"):
        table.add_column(col, overflow="fold")
    for row in option_rows(pipeline, model):
        table.add_row(row.key, row.kind, row.type, row.default, row.help)
    Console().print(table)


@app.command("lerobot-card")
def lerobot_card(
    location: Annotated[str, typer.Argument(help="a LeRobot dataset folder (or fsspec URL)")],
    name: Annotated[str, typer.Option(help="the card's name")],
    out: Annotated[Path | None, typer.Option(help="where to write the card (default: <name>.yaml)")] = None,
) -> None:
    """Write a source card for any LeRobot dataset from its meta/info.json; edit it, then `annotate <card>.yaml`."""
    from datasets_cards.source import SourceCard
    from pipelines.formats.lerobot.card_from_info import card_from_lerobot, card_yaml

    path = out or Path(f"{name}.yaml")
    if path.suffix not in (".yaml", ".yml"):
        raise typer.BadParameter(f"--out {path}: a card file ends in .yaml")
    with reported_as_errors():
        card = card_from_lerobot(location, name)
        SourceCard.model_validate(card)  # valid before anything is written
    path.write_text(card_yaml(card))
    notes = [] if card["cameras"] else ["no cameras: state only (la runs; gaze, pixel and future need images)"]
    if card["cameras"]:
        notes.append("cameras listed: if their videos are not downloaded, run la with -o review=false")
    if card["state"]["space"] == "joint":
        notes.append("joint-space state: la needs state.urdf and state.ee_frame (the robot's URDF) in the card")
    console.print(f"[green]card written[/] → {path}" + "".join(f"\n  {n}" for n in notes), soft_wrap=True)


@app.command()
def review(
    dataset: Annotated[str, typer.Argument(help="the source of the la run: a card name (droid), a card file, "
                                                "or the name its output folder OUT/la/<name> carries")],
    out: Annotated[str, typer.Option(help="output root")] = "outputs",
    push: Annotated[bool, typer.Option(help="push candidates to Label Studio before pulling")] = False,
) -> None:
    """Pull verified annotations from Label Studio and rewrite the la dataset with the verified set."""
    from pipelines.la.review.flow import review as review_flow

    with reported_as_errors():
        review_flow(source=_review_source(dataset, out), out=out, push=push)


def _review_source(dataset: str, out: str) -> str:
    """The run to review: OUT/la/<dataset> when it holds one (however it was annotated: --location, a card
    file; the review reads only the output folder), else the sample's output that `annotate` fell back to."""
    import fsspec

    from datasets_cards.constants import output_dir
    from pipelines.la.review.flow import PIPELINE, source_name

    def has_run(name: str) -> bool:
        fs, path = fsspec.core.url_to_fs(f"{output_dir(out, PIPELINE, name)}/{MANIFEST_FILE}")
        return bool(fs.exists(path))

    name = source_name(dataset)
    if has_run(name):
        return name
    sample = f"{SAMPLE_PREFIX}{name}"
    if not name.startswith(SAMPLE_PREFIX) and has_run(sample):
        console.print(f"[yellow]no la run of {name} in {out}: reviewing the one on the embedded sample, {sample!r}.[/]",
                      soft_wrap=True)
        return sample
    raise FileNotFoundError(f"no la run of {name!r} in {out} (no {output_dir(out, PIPELINE, name)}/{MANIFEST_FILE}): "
                            f"annotate it first, or pass the --out the run was made with")


@app.command()
def inspect(path: Annotated[str, typer.Argument(help="an output folder OUT/<pipeline>/<source>")]) -> None:
    """Summarise an output folder: manifest and card."""
    from datasets_cards.manifest import Manifest

    with reported_as_errors():  # a damaged manifest: one line naming it
        m = Manifest.load_if_exists(path)
    if m is None:
        raise typer.BadParameter(f"no {MANIFEST_FILE} in {path}")
    table = Table(title=f"{m.pipeline} ← {m.source}")
    table.add_column("field")
    table.add_column("value")
    for field, value in [
        ("complete", m.complete), ("shards", f"{len(m.shards)} / {m.planned_units} planned"), ("generation", m.generation), ("rows", m.rows),
        ("quarantined", m.quarantined), ("output card", m.output_card_version), ("config hash", m.config_hash),
        ("code version", m.code_version), ("source location", m.source_location), ("updated", m.updated),
    ]:
        table.add_row(field, str(value))
    Console().print(table)
    if m.stats:
        Console().print_json(json.dumps(m.stats, default=str))


@app.command()
def view(
    path: Annotated[str, typer.Argument(help="an output folder OUT/<pipeline>/<source>")],
    episode: Annotated[str | None, typer.Option(help="the source episode's id (default: the output's first)")] = None,
    out: Annotated[str | None, typer.Option(
        help="the .rrd file to write (default: ./<pipeline>-<source>-<episode>.rrd)")] = None,
) -> None:
    """Write one episode and its annotations as a Rerun recording (.rrd): `rerun FILE.rrd` opens it (extra `view`)."""
    from datasets_cards.manifest import ManifestError, ShardIntegrityError
    from pipelines.view import ViewError, write_recording

    if out is not None and not out.endswith(".rrd"):
        raise typer.BadParameter(f"--out {out}: a Rerun recording ends in .rrd")
    try:  # not reported_as_errors: its imports (Prefect) would double the command's time
        written = write_recording(path, episode, out)
    except (ViewError, FileNotFoundError, ManifestError, ShardIntegrityError) as e:
        console.print(f"[red]error:[/] {escape(str(e))}", soft_wrap=True)  # escaped: `.[view]` is not markup
        raise typer.Exit(1) from e
    console.print(f"[green]{written.pipeline}[/] ← {escape(f'{written.source}, episode {written.episode}')}: "
                  f"{written.rows} rows → {escape(written.path)}  (open it with: rerun {escape(written.path)})",
                  soft_wrap=True)


@app.command()
def export(
    path: Annotated[str, typer.Argument(help="a finished output folder OUT/<pipeline>/<source>")],
    dest: Annotated[str, typer.Option(help="where to write the exported dataset")],
    format: Annotated[str, typer.Option("--format", help="an export format: rlds")] = "rlds",
) -> None:
    """Export a finished output in another format (RLDS/TFDS)."""
    from pipelines.formats import EXPORTERS

    try:
        exporter = EXPORTERS.get(format)
    except UnknownNameError as e:
        raise typer.BadParameter(str(e)) from e
    with reported_as_errors():  # a damaged or unfinished output: one line naming the file
        built = exporter(path, dest)
    console.print(f"[green]{format} dataset written[/] → {built}")


def _parse_option(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep:
        raise typer.BadParameter(f"--option takes KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def main() -> None:
    # Local runs use Prefect's ephemeral mode; keep its state out of $HOME unless configured.
    os.environ.setdefault("PREFECT_HOME", str(Path.cwd() / ".prefect"))
    # Prefect's temporary server can take longer than its 20 s default on small machines.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")  # no telemetry from offline machines
    app()


if __name__ == "__main__":
    main()
