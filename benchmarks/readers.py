"""Reader throughput: episodes/s and frames/s, with and without decoding the frames.

    python -m benchmarks.readers                         # sample-droid if generated, else a synthetic fixture
    python -m benchmarks.readers --source droid --location /data/droid/1.0.1 --limit 200
    python -m benchmarks.readers --synthetic droid --episodes 12 --steps 150

How it is measured: the reader is opened once (builder/metadata loading is
reported separately as "open"), then `reader.read(0, N)` is consumed end to
end, once without touching pixels ("lazy": what listing, state-only pipelines
like `la` pay) and once decoding every frame of every camera ("decoded":
what vision pipelines pay). Frames = steps × cameras. Wall-clock seconds with
time.perf_counter on whatever machine runs it; each pass is repeated `--repeat`
times and the best is kept (the first pass also warms the OS file cache).

The raw limit (RLDS sources): the same files through plain tf.data, `builder.as_dataset`
over the same episodes, each episode's steps batched and iterated as tensors, with no
conversion to numpy or Episodes: images left encoded (lazy) or decoded by TFDS inside
tf.data (decoded). reader / raw is the reader's share of what tf.data alone reaches.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from datasets_cards import Episode, load_source_card
from pipelines.formats import open_reader

SYNTHETIC_CARDS = {"droid": "droid", "bridge": "bridge", "fractal": "fractal"}


@dataclass
class Pass:
    name: str
    seconds: float
    episodes: int
    frames: int
    quarantined: int


def _consume(reader, limit: int, decode: bool) -> Pass:
    start = time.perf_counter()
    episodes = frames = quarantined = 0
    for record in reader.read(0, limit):
        if not isinstance(record, Episode):
            quarantined += 1
            continue
        episodes += 1
        for sequence in record.frames.values():
            frames += len(sequence)
            if decode:
                sequence.load()
    return Pass("decoded" if decode else "lazy", time.perf_counter() - start, episodes, frames, quarantined)


def benchmark(source: str, location: str | None, limit: int | None, repeat: int) -> tuple[float, list[Pass]]:
    card = load_source_card(source)
    start = time.perf_counter()
    reader = open_reader(card, location)
    total = reader.num_episodes()
    opened = time.perf_counter() - start
    n = min(total, limit) if limit else total
    passes = []
    for decode in (False, True):
        passes.append(min((_consume(reader, n, decode) for _ in range(repeat)), key=lambda p: p.seconds))
    return opened, passes


def raw_pass(location: str, split: str, limit: int, decode: bool, cameras: int) -> Pass:
    """The limit: the same RLDS episodes parsed by tf.data alone (TFDS decoding images when `decode`)."""
    import tensorflow as tf
    import tensorflow_datasets as tfds

    from pipelines.formats.rlds.reader import STEPS, resolve_version_dir

    builder = tfds.builder_from_directory(resolve_version_dir(location))

    def skip_images(features: Any) -> Any:
        if isinstance(features, tfds.features.Image):
            return tfds.decode.SkipDecoding()
        if isinstance(features, tfds.features.FeaturesDict):
            inner = {name: skip_images(f) for name, f in features.items()}
            return {name: d for name, d in inner.items() if d is not None} or None
        return None

    decoders = None if decode else {STEPS: skip_images(builder.info.features[STEPS].feature) or {}}
    start = time.perf_counter()
    dataset = builder.as_dataset(split=f"{split}[:{limit}]", decoders=decoders, shuffle_files=False,
                                 read_config=tfds.ReadConfig(try_autocache=False))
    episodes = steps = 0
    for element in dataset:
        episodes += 1
        for batch in element[STEPS].batch(4096):  # the reader's step batching, tensors left as they come
            steps += int(tf.shape(batch["is_first"])[0])
    return Pass(f"raw tf.data {'decoded' if decode else 'lazy'}", time.perf_counter() - start, episodes,
                steps * cameras, 0)


def measure(source: str, location: str | None, limit: int | None, repeat: int) -> dict[str, Any]:
    """The reader's passes and, for RLDS sources, the raw tf.data limit over the same episodes, with ratios."""
    card = load_source_card(source)
    opened, passes = benchmark(source, location, limit, repeat)
    result: dict[str, Any] = {"source": source, "open_s": opened, "passes": [asdict(p) for p in passes]}
    if card.format == "rlds":
        where = location or card.resolve_location()
        n = passes[0].episodes + passes[0].quarantined
        raw = [min((raw_pass(where, card.split, n, decode, len(card.cameras)) for _ in range(repeat)),
                   key=lambda p: p.seconds) for decode in (False, True)]
        passes.extend(raw)
        result["passes"] += [asdict(p) for p in raw]
        result["reader_over_raw"] = {ours.name: (ours.frames / ours.seconds) / (limit_.frames / limit_.seconds)
                                     for ours, limit_ in zip(passes[:2], raw)}
    return result


def _print(source: str, location: str, opened: float, passes: list[Pass]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"reader throughput: {source} ({location})")
    for column in ("pass", "episodes", "frames", "quarantined", "seconds", "episodes/s", "frames/s"):
        table.add_column(column, justify="right")
    for p in passes:
        table.add_row(p.name, str(p.episodes), str(p.frames), str(p.quarantined), f"{p.seconds:.2f}",
                      f"{p.episodes / p.seconds:.1f}", f"{p.frames / p.seconds:.0f}")
    console = Console()
    console.print(table)
    console.print(f"open (builder + metadata): {opened:.2f} s. Best of the repeats; frames = steps × cameras.")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", default=None, help="source card (default: sample-droid if its data exists)")
    parser.add_argument("--location", default=None, help="override the card's location")
    parser.add_argument("--synthetic", choices=sorted(SYNTHETIC_CARDS), help="write a synthetic fixture in this schema")
    parser.add_argument("--episodes", type=int, default=12, help="synthetic fixture: episodes")
    parser.add_argument("--steps", type=int, default=150, help="synthetic fixture: steps per episode")
    parser.add_argument("--limit", type=int, default=None, help="read at most this many episodes")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args(argv)

    source, location = args.source, args.location
    if source is None and args.synthetic is None:
        sample = load_source_card("sample-droid")
        if Path(sample.resolve_location()).exists():
            source = "sample-droid"
        else:
            args.synthetic = "droid"
    with tempfile.TemporaryDirectory(prefix="bench-readers-") as tmp:
        if args.synthetic:
            from pipelines.sample.generator.synthetic_rlds import write_synthetic_rlds

            # published image sizes, so decoding costs what it costs on the real corpus
            location = str(write_synthetic_rlds(tmp, args.synthetic, args.episodes, args.steps, image_size=None))
            source = SYNTHETIC_CARDS[args.synthetic]
        result = measure(source, location, args.limit, args.repeat)
        passes = [Pass(**p) for p in result["passes"]]
        _print(source, location or load_source_card(source).resolve_location(), result["open_s"], passes)
        for name, ratio in result.get("reader_over_raw", {}).items():
            print(f"reader {name} / raw tf.data {name}: {ratio:.2f} (frames/s)")


if __name__ == "__main__":
    main()
