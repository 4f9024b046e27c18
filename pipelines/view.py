"""`python -m pipelines view OUT/<pipeline>/<source>`: one episode of an output with its annotations, as a
Rerun recording (`.rrd`; open it with `rerun FILE.rrd`). Needs rerun-sdk, the `view` extra.

This module finds the episode's rows through the manifest (only the shards that hold it are read), opens
the recording with two timelines, `frame_index` (source-episode frames) and `time` (from the source card's
fps), and writes the file. What the rows show is each pipeline's own: `pipelines/<name>/view.py` registers
one function in `VIEWERS` that maps the rows to Rerun logs and returns the recording's layout.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from datasets_cards import load_output_card
from datasets_cards.constants import QUARANTINE_FILE
from datasets_cards.manifest import Manifest, ShardIntegrityError, ShardRecord
from datasets_cards.registry import Registry, UnknownNameError, modules_named

FRAME, TIME = "frame_index", "time"  # the recording's timelines
APPLICATION_ID = "robot-annotate"
EXTRA = "view"  # pyproject's optional extra holding rerun-sdk
SHOWN_IDS = 5  # episode ids an error message lists
# Colours picked by name (a subaction, a flag), the same in every recording.
PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
           (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]


class ViewError(ValueError):
    """A folder, episode or environment `view` cannot use; the message says what to do."""


@dataclass
class Scene:
    """What a pipeline's viewer logs into: the recording stream, the clock and the run's manifest."""

    rec: Any  # rerun.RecordingStream
    manifest: Manifest
    fps: float | None  # of the source episode, from the source card (None: no `time` timeline)
    _shown: set[str] = field(default_factory=set)

    def at(self, frame: int) -> None:
        """Log what follows at source-episode frame `frame` (and at frame / fps seconds)."""
        self.rec.set_time(FRAME, sequence=int(frame))
        if self.fps:
            self.rec.set_time(TIME, duration=float(frame) / self.fps)

    def show(self, path: str, item: Any | None) -> None:
        """Log `item` at `path`, or, with None, clear what an earlier frame showed there (else the viewer keeps
        showing the latest value: a box of frame 3 would stay on frames 4.. that have none)."""
        import rerun as rr

        if item is not None:
            self.rec.log(path, item)
            self._shown.add(path)
        elif path in self._shown:
            self.rec.log(path, rr.Clear(recursive=False))
            self._shown.discard(path)


Viewer = Callable[[Scene, list[dict[str, Any]]], Any]  # rows of one episode → logs; returns a blueprint or None
VIEWERS: Registry[Viewer] = Registry("viewer", builtins=modules_named("pipelines", "view"))


@dataclass(frozen=True)
class Recording:
    path: str
    pipeline: str
    source: str
    episode: str
    rows: int


def require_rerun():
    try:
        import rerun
    except ImportError as e:
        raise ViewError(f"`view` writes a Rerun recording and needs rerun-sdk, the `{EXTRA}` extra: "
                        f"pip install -e '.[{EXTRA}]' (`make install` includes it)") from e
    return rerun


def write_recording(folder: str, episode: str | None = None, out: str | None = None) -> Recording:
    """Write episode `episode` (default: the output's first) of the output `folder` to `out` (default:
    ./<pipeline>-<source>-<episode>.rrd). ViewError, FileNotFoundError or ManifestError say what is wrong."""
    rr = require_rerun()
    folder = folder.rstrip("/")
    manifest = Manifest.load(folder)
    try:
        viewer = VIEWERS.get(manifest.pipeline)
    except UnknownNameError as e:
        raise ViewError(f"{folder} holds a {manifest.pipeline!r} output, which `view` cannot show ({e})") from e
    episode, rows = episode_rows(folder, manifest, episode)
    path = out or f"{manifest.pipeline}-{manifest.source}-{re.sub(r'[^A-Za-z0-9._-]+', '_', episode)}.rrd"
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    rec = rr.RecordingStream(APPLICATION_ID, recording_id=f"{manifest.pipeline}/{manifest.source}/{episode}")
    rec.set_log_time_enabled(False)  # the timelines are the episode's, not the moment of writing
    rec.save(path)
    rec.send_recording_name(f"{manifest.pipeline} · {manifest.source} · {episode}")
    rec.send_property("output", rr.AnyValues(pipeline=manifest.pipeline, source=manifest.source, episode=episode,
                                              folder=folder, rows=len(rows), generation=manifest.generation))
    scene = Scene(rec, manifest, _fps(manifest))
    blueprint = viewer(scene, rows)
    if blueprint is not None:
        rec.send_blueprint(blueprint)
    rec.flush()
    rec.disconnect()  # closes the file: the footer is written
    return Recording(path, manifest.pipeline, manifest.source, episode, len(rows))


def episode_rows(folder: str, manifest: Manifest, episode: str | None) -> tuple[str, list[dict[str, Any]]]:
    """(episode id, its rows in key order) from the shards of the generation in force."""
    key = load_output_card(manifest.pipeline).key  # its first column is the source episode's id
    column = key[0]
    shards = [s for s in manifest.current_shards if s.rows]
    if not shards:
        raise ViewError(f"{folder} holds no rows yet ({len(manifest.current_shards)} shards): run or finish "
                        "`annotate` first")
    if episode is None:
        episode = _read(folder, shards[0], columns=[column]).column(column)[0].as_py()
    holders = [s for s in shards if episode in s.episodes]
    rows = [r for s in holders for r in _rows(_read(folder, s, filters=[(column, "==", episode)]))]
    if not rows:
        raise ViewError(_no_episode(folder, manifest, shards, episode))
    return episode, sorted(rows, key=lambda r: tuple(r[k] for k in key))


def _rows(table: pa.Table) -> list[dict[str, Any]]:
    """The table's rows as dicts; a flat list of floats (future's tokens: 131,072 float16 a frame) as a numpy
    array, not Python floats (6 s and 600 MB for 150 such rows)."""
    vectors = [f.name for f in table.schema if pa.types.is_list(f.type) and pa.types.is_floating(f.type.value_type)]
    rows = table.drop_columns(vectors).to_pylist()
    for name in vectors:
        values = table.column(name).combine_chunks()
        offsets, flat = values.offsets.to_numpy(), values.values.to_numpy(zero_copy_only=False)
        for i, (row, null) in enumerate(zip(rows, values.is_null().to_pylist())):
            row[name] = None if null else flat[offsets[i]:offsets[i + 1]]
    return rows


def _no_episode(folder: str, manifest: Manifest, shards: list[ShardRecord], episode: str) -> str:
    quarantined = _quarantined(folder)
    if episode in quarantined:
        return f"episode {episode!r} of {folder} was quarantined ({quarantined[episode]}): it has no rows to show"
    ids = [e for s in shards for e in s.episodes if e not in quarantined]
    return (f"no episode {episode!r} in {folder} ({manifest.pipeline} ← {manifest.source}, {len(ids)} episodes "
            f"with rows); e.g. {', '.join(ids[:SHOWN_IDS])}")


def _quarantined(folder: str) -> dict[str, str]:
    fs, path = fsspec.core.url_to_fs(f"{folder}/{QUARANTINE_FILE}")
    if not fs.exists(path):
        return {}
    with fs.open(path, "rb") as f:
        return {r["episode_id"]: r["reason"] for r in pq.read_table(f, columns=["episode_id", "reason"]).to_pylist()}


def _read(folder: str, shard: ShardRecord, **kwargs):
    fs, path = fsspec.core.url_to_fs(f"{folder}/{shard.path}")
    try:
        with fs.open(path, "rb") as f:
            return pq.read_table(f, **kwargs)
    except (OSError, ValueError) as e:  # a missing or damaged shard: named, as the other readers do
        raise ShardIntegrityError(f"shard {folder}/{shard.path} cannot be read ({type(e).__name__}: {e})") from e


def _fps(manifest: Manifest) -> float | None:
    try:
        return float(manifest.source_card().fps)
    except (KeyError, ValueError):  # a manifest whose recorded card no longer validates: frames only
        return None


# -- helpers the pipelines' viewers share -------------------------------------------------------------------


def color(name: str) -> tuple[int, int, int]:
    """A palette colour for `name`, stable across runs and machines."""
    return PALETTE[zlib.crc32(name.encode()) % len(PALETTE)]


def encoded_image(data: bytes):
    """A stored JPEG or PNG as Rerun logs it, without decoding it here."""
    import rerun as rr

    return rr.EncodedImage(contents=data, media_type="image/png" if data[:4] == b"\x89PNG" else "image/jpeg")


def box(xyxy, label: str | None = None, rgb: tuple[int, int, int] | None = None):
    """An xyxy pixel box (or None for no box)."""
    import rerun as rr

    if xyxy is None:
        return None
    return rr.Boxes2D(array=[list(xyxy)], array_format=rr.Box2DFormat.XYXY,
                      labels=[label] if label else None, colors=[rgb] if rgb else None)
