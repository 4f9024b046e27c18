"""Layout, file names and format versions shared by every package.

Path templates live here and nowhere else, so a reader of an output folder, the
trainer and the flows always agree on where things are.
"""

from __future__ import annotations

from pathlib import Path

# Output layout: OUT/<pipeline>/<source>/...
SHARDS_DIR = "shards"
SHARD_PATTERN = "shard-{index:05d}.parquet"
SHARD_GLOB = "shard-*.parquet"
MANIFEST_FILE = "manifest.json"
QUARANTINE_FILE = "quarantine.parquet"
QUARANTINE_STAGING_DIR = "_quarantine"  # one file per work unit, merged at the end
EPISODE_IDS_FILE = "_staging/episode_ids.json"  # the run's episode ids, scanned once (a resume reuses them)
STAGE_PART = "_staging/{stage}/unit-{index:05d}.parquet"  # a run-level stage's part collected by one unit
CARD_FILE = "card.md"
HUB_README_FILE = "README.md"  # the dataset card the Hub and `datasets.load_dataset(folder)` read
REVIEW_DIR = "review"
SAMPLE_PREFIX = "sample-"  # the embedded simulated sample of source X is the card sample-X
PREFECT_HOME_DIR = ".prefect"

# Bumped when the manifest's own layout changes (not an output card's schema).
MANIFEST_FORMAT_VERSION = 1

# Root of the repository / installed project: relative card locations resolve here.
PROJECT_ROOT = Path(__file__).resolve().parent.parent

# Gripper in the canonical Episode: 0 = fully open, 1 = fully closed.
GRIPPER_OPEN = 0.0
GRIPPER_CLOSED = 1.0


def output_dir(out: str, pipeline: str, source: str) -> str:
    """The folder one (pipeline, source) run writes to; `out` may be any fsspec URL."""
    return f"{out.rstrip('/')}/{pipeline}/{source}"
