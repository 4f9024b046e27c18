"""la throughput on state arrays alone: keyframes + kinematic labels in steps/s, so a whole corpus can be costed.

The la pipeline's own per-episode code (LaPipeline.segmentation_input: canonical pose from the
card's state layout, Savitzky–Golay static keyframes and gripper transitions; then the kinematic
segmenter's labels), on the state arrays of sample-droid's episodes read once before the clock
(frames never decoded), repeated `--repeat` times; the fastest pass counts. Rows, shards, plots
and review clips are not timed: this is the compute that scales with steps.

    python -m benchmarks.la_speed                      # sample-droid, 12 episodes, 1,727 steps
    python -m benchmarks.la_speed --repeat 5 --corpus-steps 27000000   # + the CPU-hours for all of DROID

DROID's RLDS release: about 92 K episodes and 27 M steps including failures (the issue's figures).
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

DROID_STEPS = 27_000_000  # DROID 1.0.1 RLDS, failures included


def measure(source: str = "sample-droid", repeat: int = 3, corpus_steps: int = DROID_STEPS) -> dict[str, Any]:
    """Steps/s of keyframes + kinematic labels over the source's episodes (one process, state arrays in memory)."""
    from datasets_cards import Episode, load_source_card
    from pipelines.formats import open_reader
    from pipelines.la.pipeline import LaPipeline

    card = load_source_card(source)
    pipeline = LaPipeline(card, {"review": False})
    episodes = [e for e in open_reader(card).read(0, 10**9) if isinstance(e, Episode)]
    steps = sum(e.num_frames for e in episodes)
    best = float("inf")
    segments = 0
    for _ in range(repeat):
        start = time.perf_counter()
        segments = 0
        for episode in episodes:
            item, _ = pipeline.segmentation_input(episode)
            segments += len(pipeline.kinematic.segment(item))
        best = min(best, time.perf_counter() - start)
    rate = steps / best
    return {"source": source, "episodes": len(episodes), "steps": steps, "segments": segments, "seconds": best,
            "steps_per_s": rate, "corpus_steps": corpus_steps, "corpus_cpu_hours": corpus_steps / rate / 3600,
            "shard_bytes_per_segment": shard_bytes_per_row(pipeline, episodes)}


def shard_bytes_per_row(pipeline: Any, episodes: list[Any]) -> float:
    """The la rows of `episodes` written through the shard writer (the card's schema): bytes per segment row."""
    import tempfile

    from datasets_cards import load_output_card
    from pipelines.io import ShardWriter

    rows = [row for episode in episodes for row in pipeline.annotate(episode)]
    with tempfile.TemporaryDirectory() as tmp:
        with ShardWriter(load_output_card("la"), f"{tmp}/shard.parquet") as writer:
            writer.write_rows(rows)
        n, size, _ = writer.result
    return size / max(1, n)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", default="sample-droid")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--corpus-steps", type=int, default=DROID_STEPS)
    args = parser.parse_args(argv)
    result = measure(args.source, args.repeat, args.corpus_steps)
    print(f"{result['source']}: {result['episodes']} episodes, {result['steps']} steps, {result['segments']} segments "
          f"in {result['seconds']:.3f} s (fastest of {args.repeat}): {result['steps_per_s']:,.0f} steps/s in one process; "
          f"{result['corpus_steps']:,} steps → {result['corpus_cpu_hours']:.2f} CPU-hours; "
          f"{result['shard_bytes_per_segment']:,.0f} shard bytes per segment row")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
