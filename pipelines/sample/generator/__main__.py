"""`python -m pipelines.sample.generator --out pipelines/sample/data --episodes 12 --seed 0` (what `make sample-data` runs)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from pipelines.sample.generator.generate import SampleConfig, generate_sample
from pipelines.sample.ground_truth import DEFAULT_DATA_DIR, SCHEMAS

app = typer.Typer(add_completion=False, help=__doc__)


@app.command()
def main(
    out: Annotated[Path, typer.Option(help="folder that receives <schema>/<version>/ and <schema>/ground_truth/")] = DEFAULT_DATA_DIR,
    episodes: Annotated[int, typer.Option(help="number of episodes")] = 12,
    seed: Annotated[int, typer.Option(help="random seed: the same seed gives the same files")] = 0,
    workers: Annotated[int, typer.Option(help="simulation processes")] = 2,
    jpeg_quality: Annotated[int, typer.Option(help="JPEG quality of the frames")] = SampleConfig.jpeg_quality,
    schema: Annotated[list[str] | None, typer.Option(help=f"schemas to write (repeatable): {', '.join(SCHEMAS)}")] = None,
) -> None:
    from rich.progress import Progress

    config = SampleConfig(
        episodes=episodes, seed=seed, workers=workers, jpeg_quality=jpeg_quality, schemas=tuple(schema or SCHEMAS)
    )
    start = time.perf_counter()
    with Progress(transient=True) as progress:
        task = progress.add_task("simulating episodes", total=episodes)
        written = generate_sample(out, config, progress=lambda: progress.advance(task))
    size = sum(f.stat().st_size for f in Path(out).rglob("*") if f.is_file()) / 1e6
    for name, path in written.items():
        typer.echo(f"{name}: {path}")
    typer.echo(f"{episodes} episodes, {size:.1f} MB in {out}, {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    app()
