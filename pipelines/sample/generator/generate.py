"""Generate the sample: simulate episodes in parallel, write each schema's RLDS data and ground truth.

Phases: simulate (worker processes, one pybullet world each) → ground truth
(Parquet per schema) → RLDS (one TFDS dataset per schema through
pipelines.formats.rlds.writer). Episode i depends only on (seed, i).
"""

from __future__ import annotations

import multiprocessing as mp
import shutil
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from pipelines.sample.generator.export import EXPORTERS, SensorNoise
from pipelines.sample.generator.simulate import SchemaRender, SimEpisode, simulate_episode
from pipelines.sample.generator.tables import build_tables, write_tables
from pipelines.sample.ground_truth import GROUND_TRUTH_DIR, SCHEMAS, StaticRule

BASE_FPS = 15.0  # simulation rate = DROID's; the other schemas take every n-th frame
# Published rates and image sizes (H, W) of the three schemas, and the RLDS version each release uses.
SCHEMA_FPS = {"droid": 15.0, "bridge": 5.0, "fractal": 3.0}
SCHEMA_IMAGE_SIZE = {"droid": (180, 320), "bridge": (256, 256), "fractal": (256, 320)}
SCHEMA_VERSION = {"droid": "1.0.1", "bridge": "1.0.0", "fractal": "0.1.0"}


@dataclass(frozen=True)
class SampleConfig:
    episodes: int = 12
    seed: int = 0
    schemas: tuple[str, ...] = SCHEMAS
    image_sizes: dict[str, tuple[int, int]] = field(default_factory=lambda: dict(SCHEMA_IMAGE_SIZE))
    jpeg_quality: int = 50  # keeps the committed sample small; simulated frames have few details to lose
    workers: int = 2  # simulation processes (each renders its own episodes)
    noise: SensorNoise = SensorNoise()
    static_rule: StaticRule = StaticRule()

    def __post_init__(self) -> None:
        unknown = set(self.schemas) - set(SCHEMAS)
        if unknown:
            raise ValueError(f"unknown schemas {sorted(unknown)}; known: {', '.join(SCHEMAS)}")
        if self.episodes < 1:
            raise ValueError(f"episodes must be ≥ 1, got {self.episodes}")

    def renders(self) -> dict[str, SchemaRender]:
        return {s: SchemaRender(int(round(BASE_FPS / SCHEMA_FPS[s])), tuple(self.image_sizes[s])) for s in self.schemas}


_SCENE = None  # one pybullet world per pool worker process


def _simulate(args: tuple[int, SampleConfig]) -> SimEpisode:
    global _SCENE
    from pipelines.sample.generator.scene import Scene

    index, config = args
    if _SCENE is None:
        _SCENE = Scene()
    return _episode(_SCENE, index, config)


def _episode(scene, index: int, config: SampleConfig) -> SimEpisode:
    return simulate_episode(scene, index, config.seed, config.renders(), base_fps=BASE_FPS,
                            jpeg_quality=config.jpeg_quality)


def simulate_all(config: SampleConfig, progress=None) -> Iterator[SimEpisode]:
    """Episodes 0..n-1 in order, simulated by `config.workers` processes (1 = in this process)."""
    jobs = [(i, config) for i in range(config.episodes)]
    if config.workers <= 1:  # in this process: its world is closed after, so the next Scene here gets client 0
        from pipelines.sample.generator.scene import Scene

        scene = Scene()
        try:
            for index, _ in jobs:
                yield _episode(scene, index, config)
                if progress:
                    progress()
        finally:
            scene.close()
        return
    # spawn: the parent may have imported TensorFlow, which does not survive fork
    with mp.get_context("spawn").Pool(min(config.workers, config.episodes)) as pool:
        for sim in pool.imap(_simulate, jobs):
            if progress:
                progress()
            yield sim


def write_sample(sims: list[SimEpisode], out: Path, config: SampleConfig) -> dict[str, Path]:
    """Ground truth and RLDS data of every schema under `out/<schema>/`; returns the RLDS folders."""
    from pipelines.formats.rlds.writer import write_rlds
    from pipelines.sample.generator.rlds_schemas import rlds_schema

    renders = config.renders()
    written = {}
    for schema in config.schemas:
        rows: dict[str, list[dict]] = {"episodes": [], "frames": [], "views": []}
        for index, sim in enumerate(sims):
            for name, table in build_tables(sim, schema, renders[schema].stride, index, config.static_rule).items():
                rows[name].extend(table)
        write_tables(rows, out / schema / GROUND_TRUTH_DIR, renders[schema].image_size)

        spec = rlds_schema(schema, renders[schema].image_size)
        exporter = EXPORTERS[schema]

        def episodes(exporter=exporter):
            for index, sim in enumerate(sims):
                rng = np.random.default_rng([config.seed, index, 7])  # noise stream, apart from the script's
                yield exporter(sim, index, rng, config.noise)

        written[schema] = write_rlds(
            out,
            schema,
            spec.steps,
            list(episodes()),  # a list: num_shards needs the count
            episode_metadata_features=spec.episode_metadata,
            version=SCHEMA_VERSION[schema],
            description=f"Simulated {schema}-schema sample (pybullet, seed {config.seed}); see pipelines/sample.",
            num_shards=1,
        )
    return written


def generate_sample(out: str | Path, config: SampleConfig = SampleConfig(), progress=None) -> dict[str, Path]:
    """Simulate and write the whole sample into `out` (replacing what each schema had there)."""
    out = Path(out)
    sims = list(simulate_all(config, progress))
    for schema in config.schemas:
        if (out / schema).exists():
            shutil.rmtree(out / schema)
    return write_sample(sims, out, config)


def config_summary(config: SampleConfig) -> dict:
    summary = asdict(config)
    summary["schemas"] = list(config.schemas)
    return summary
