"""The future pipeline (DIAL §3.2–3.4): every stored frame → its frozen vision tokens, computed once.

annotate_many (per unit, episodes streamed in order)
    episodes are read on a background thread; plan each one: the cameras, the stored frames
    (0, stride, 2·stride, ... and the last), its views (the centre view and `views` augmented
    ones), its state and actions placed in the card's layout → decode and crop every frame on
    a thread pool, ahead of the encoder → fill batches of `batch_size` frames across episode
    boundaries → one encoder call per batch (bf16 on CUDA, one forward at a time per worker)
    → rows of an episode once all its frames have tokens, in input order. A bad frame (one
    that does not decode, or has another size than its camera's other stored frames)
    quarantines its episode with a reason naming the camera and the frame; the others go on.
finalize (per run)
    the feature shape and the storage figures (bytes per row and per source frame, the
    projected size of the whole source and corpus) from the shard records.

Options (flags, recorded in the manifest; `python -m pipelines options future` lists them): any FutureParams
field (encoder, model, pool, stride, views, cameras, batch_size, view, layout, ...) overrides the card; the
run-time keys are FutureOptions.
"""

from __future__ import annotations

import queue
import threading
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
from pydantic import Field

from annotators.vision import VisionEncoder, VisionEncoderConfig, make_vision_encoder
from annotators.vision.base import default_model
from annotators.vision.views import (
    Jitter,
    draw_augmentation,
    image_to_view,
    jitter_image,
    view_box,
    view_rng,
)
from annotators.weights import Weights, require_weights
from datasets_cards import Episode, EpisodeError, SourceCard
from datasets_cards.codecs import decode_image
from datasets_cards.errors import FrameDecodeError
from datasets_cards.manifest import Manifest
from datasets_cards.params import with_overrides
from datasets_cards.params.future import FutureParams
from pipelines.base import BAD_FRAME, Pipeline, merge_stats, register_pipeline
from pipelines.future.layout import LayoutMapper
from pipelines.future.stats import mean_std, moments, storage_stats
from pipelines.options import ModelOptions

VIEW_KINDS = ("exterior", "ego")  # default camera: the card's first camera of these views
T = TypeVar("T")


class _Raised:
    def __init__(self, error: BaseException):
        self.error = error


def read_ahead(items: Iterable[T], depth: int) -> Iterator[T]:
    """`items` pulled on a background thread, up to `depth` ahead, so reading episodes overlaps the encoder.

    Errors raised while pulling come out here, in order. Closing this generator stops the thread at its
    next item (the source generator itself is left where it stopped).
    """
    if depth < 1:
        yield from items
        return
    box: queue.Queue = queue.Queue(maxsize=depth)
    end, stop = object(), threading.Event()

    def put(value: object) -> bool:
        while not stop.is_set():
            try:
                box.put(value, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def pull() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(end)
        except BaseException as e:  # noqa: BLE001 - handed to the consumer, which re-raises it
            put(_Raised(e))

    thread = threading.Thread(target=pull, name="future-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            value = box.get()
            if value is end:
                return
            if isinstance(value, _Raised):
                raise value.error
            yield value
    finally:
        stop.set()


def bad_frame(episode: Episode, camera: str, t: int, problem: str) -> FrameDecodeError:
    """The suite's reason for an episode quarantined for one of its frames ("bad frame: camera ... frame t of T: ...")."""
    return FrameDecodeError(f"{BAD_FRAME}: camera {camera!r} frame {t} of {episode.num_frames}: {problem}",
                            episode.episode_id)


def stored_frames(num_frames: int, stride: int) -> list[int]:
    """Frames 0, stride, 2·stride, ... and always the last one (so t+H can be clipped to it)."""
    frames = list(range(0, num_frames, stride))
    if frames and frames[-1] != num_frames - 1:
        frames.append(num_frames - 1)
    return frames


@dataclass(frozen=True)
class ViewSpec:
    """How to cut one view out of a frame: the crop place and the colour jitter (None for the centre view)."""

    offset: tuple[float, float] = (0.5, 0.5)
    jitter: Jitter | None = None


@dataclass
class _Job:
    """One episode on its way through the unit: its rows wait for their features."""

    episode: Episode
    rows: list[dict[str, Any]] = field(default_factory=list)
    remaining: int = 0
    error: EpisodeError | None = None
    shapes: dict[str, dict[int, tuple]] = field(default_factory=dict)  # camera → stored frame → decoded shape

    @property
    def done(self) -> bool:
        return self.error is not None or self.remaining == 0


@dataclass(frozen=True)
class _Item:
    """One image for the encoder: row `slot` of `job`, image `index` of what `work` returns."""

    job: _Job
    slot: int
    work: Future
    index: int


class FutureOptions(ModelOptions):
    """The future pipeline's run-time keys (besides FutureParams' fields)."""

    NOT_HASHED = frozenset({"prefetch", "read_ahead"})  # how the run goes, not its rows

    # ≥ 1: a prefetch of 0 would plan nothing and spin forever
    prefetch: int | None = Field(None, ge=1, description="frames decoded ahead of the encoder (default 2 × batch_size)")
    read_ahead: int = Field(2, ge=0, description="episodes read on a background thread (0 = in the unit's thread)")


@register_pipeline("future")
class FuturePipeline(Pipeline):
    concurrency_limit = "gpu"  # the encoder: at most the GPUs' worth of units hold it at once
    options_model = FutureOptions
    run_options: FutureOptions

    def __init__(self, source: SourceCard, options: dict[str, Any] | None = None, encoder: VisionEncoder | None = None):
        super().__init__(source, options)
        self.params: FutureParams = with_overrides(source.params.future, self.options)
        self.layout = LayoutMapper(self.params.layout, source)
        # Built here, once per worker: missing weights stop the run before any unit starts.
        config = self.encoder_config()
        if encoder is None and default_model(self.params.encoder) is not None:  # the stub has no weights
            self.weights = [Weights(f"{self.params.encoder} vision encoder", config.model, "model", config.device,
                                    config.dtype)]
            require_weights(self.weights)
        self.encoder = encoder or make_vision_encoder(self.params.encoder, config)
        self.prefetch = self.run_options.prefetch or 2 * self.params.batch_size
        self.episodes_ahead = self.run_options.read_ahead  # episodes read on a background thread
        self.pool = ThreadPoolExecutor(self.run_options.decode_workers, thread_name_prefix="future-decode")
        # Units of one worker share the encoder; one forward pass at a time (on a GPU they queue anyway, and on
        # a CPU two torch calls from two threads oversubscribe the cores).
        self.model_lock = threading.Lock()

    def encoder_config(self) -> VisionEncoderConfig:
        p = self.params
        return VisionEncoderConfig(
            model=p.model or default_model(p.encoder) or "", device=self.run_options.device, dtype=p.dtype,
            image_size=tuple(p.view.size), pool=p.pool, batch_size=p.batch_size, fast_attention=p.fast_attention,
        )

    # ---- planning ---------------------------------------------------------------------------------------

    def cameras(self, episode: Episode) -> list[str]:
        wanted = self.params.cameras or next(
            ([name] for kind in VIEW_KINDS for name in self.source.cameras_with_view(kind)), episode.cameras[:1])
        missing = [c for c in wanted if c not in episode.frames]
        if missing:
            raise EpisodeError(f"cameras {missing} not in the episode (has {episode.cameras})", episode.episode_id)
        return list(wanted)

    def view_specs(self, episode_id: str, camera: str) -> list[ViewSpec]:
        """The centre view, then one drawn crop place and jitter per augmented view (fixed for the episode)."""
        a = self.params.augment
        specs = [ViewSpec()]
        for view in range(1, self.params.views + 1):
            offset, jitter = draw_augmentation(view_rng(episode_id, camera, view), a.brightness, a.contrast,
                                               a.saturation, a.hue)
            specs.append(ViewSpec(offset, jitter))
        return specs

    def cut_views(self, image: np.ndarray, specs: list[ViewSpec]) -> list[np.ndarray]:
        """The views of one decoded frame (runs on the decode threads)."""
        v = self.params.view
        height, width = image.shape[:2]
        out = []
        for spec in specs:
            box = view_box(height, width, tuple(v.rows), tuple(v.cols), v.crop, spec.offset)
            view = image_to_view(image, box, tuple(v.size))
            out.append(view if spec.jitter is None else jitter_image(view, spec.jitter))
        return out

    def _decode_views(self, data: bytes, specs: list[ViewSpec]) -> tuple[list[tuple], list[np.ndarray]]:
        image = decode_image(data)
        return [image.shape], self.cut_views(image, specs)

    def _load_views(self, episode: Episode, camera: str, frames: list[int],
                    specs: list[ViewSpec]) -> tuple[list[tuple], list[np.ndarray]]:
        images = episode.frames[camera].load()
        return [images.shape[1:]] * len(frames), [view for t in frames for view in self.cut_views(images[t], specs)]

    def plan(self, episode: Episode) -> tuple[_Job, list[_Item]]:
        """The episode's rows (features to come) and the images to encode for them, decoding already submitted."""
        job = _Job(episode)
        try:
            cameras = self.cameras(episode)
            placed = self.layout(episode)
        except EpisodeError as e:
            job.error = e
            return job, []
        frames = stored_frames(episode.num_frames, self.params.stride)
        ends = [*frames[1:], episode.num_frames]
        items: list[_Item] = []
        for camera in cameras:
            specs = self.view_specs(episode.episode_id, camera)
            encoded = episode.frames[camera].encoded
            whole = None if encoded is not None else self.pool.submit(self._load_views, episode, camera, frames, specs)
            for i, (t, end) in enumerate(zip(frames, ends, strict=True)):
                work = whole or self.pool.submit(self._decode_views, encoded[t], specs)
                for view in range(len(specs)):
                    items.append(_Item(job, len(job.rows), work, i * len(specs) + view if whole else view))
                    job.rows.append({
                        "episode_id": episode.episode_id, "source": episode.source, "camera": camera,
                        "frame_index": t, "view": view, "num_frames": episode.num_frames,
                        "instruction": episode.instruction, "feature": None,
                        "state": placed.state[t], "state_valid": placed.state_valid,
                        "actions": list(placed.actions[t:end]), "action_valid": placed.action_valid,
                    })
        job.remaining = len(items)
        return job, items

    # ---- the batched loop -------------------------------------------------------------------------------

    def annotate(self, episode: Episode) -> list[dict[str, Any]]:
        [(_, result)] = list(self.annotate_many([episode]))
        if isinstance(result, EpisodeError):
            raise result
        return result

    def annotate_many(self, episodes: Iterable[Episode]) -> Iterator[tuple[Episode, list[dict[str, Any]] | EpisodeError]]:
        jobs: deque[_Job] = deque()
        queue: deque[_Item] = deque()
        source = read_ahead(episodes, self.episodes_ahead)
        exhausted = False
        while True:
            while not exhausted and len(queue) < self.prefetch:  # decode ahead of the encoder
                episode = next(source, None)
                if episode is None:
                    exhausted = True
                    break
                job, items = self.plan(episode)
                jobs.append(job)
                queue.extend(items)
            batch = self._take_batch(queue)
            if batch:
                self._encode(batch)
            while jobs and jobs[0].done:
                job = jobs.popleft()
                if job.error is None:
                    self.check_sizes(job)
                yield job.episode, job.error if job.error is not None else job.rows
            if exhausted and not queue and not jobs:
                return

    def _take_batch(self, queue: deque[_Item]) -> list[tuple[_Item, np.ndarray]]:
        """Up to `batch_size` decoded images from the front of the queue; a frame that fails its episode."""
        batch: list[tuple[_Item, np.ndarray]] = []
        while queue and len(batch) < self.params.batch_size:
            item = queue.popleft()
            job = item.job
            if job.error is not None:
                continue
            row = job.rows[item.slot]
            try:
                shapes, views = item.work.result()
            except FrameDecodeError as e:
                job.error = bad_frame(job.episode, row["camera"], row["frame_index"], e.reason)
                continue
            job.shapes.setdefault(row["camera"], {})[row["frame_index"]] = shapes[item.index // (self.params.views + 1)]
            batch.append((item, views[item.index]))
        return batch

    def check_sizes(self, job: _Job) -> None:
        """A frame of another size than its camera's other stored frames (the most common; frame 0's on a tie)
        is a bad frame: its episode is quarantined, as one that does not decode."""
        for camera, shapes in job.shapes.items():
            counts = Counter(shapes.values())
            size = max(counts, key=lambda s: (counts[s], s == shapes.get(0)))
            odd = [t for t, shape in sorted(shapes.items()) if shape != size]
            if odd:
                what = "×".join(map(str, shapes[odd[0]]))
                also = f" (also: frames {', '.join(map(str, odd[1:6]))})" if len(odd) > 1 else ""
                job.error = bad_frame(job.episode, camera, odd[0], f"is {what}, the camera's other frames are "
                                      f"{'×'.join(map(str, size))}{also}")
                return

    def _encode(self, batch: list[tuple[_Item, np.ndarray]]) -> None:
        images = np.stack([image for _, image in batch])
        with self.model_lock:
            tokens = self.encoder.encode(images).tokens
        for (item, _), feature in zip(batch, tokens, strict=True):
            if item.job.error is None:
                item.job.rows[item.slot]["feature"] = feature.reshape(-1)
                item.job.remaining -= 1

    # ---- statistics -------------------------------------------------------------------------------------

    def unit_stats(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        if not rows:
            return {"rows": 0, "episodes": 0, "source_frames": 0, "frames": 0, "cameras": {}}
        first = [r for r in rows if r["view"] == 0 and r["camera"] == rows[0]["camera"]]
        return {
            "rows": len(rows), "episodes": 1, "source_frames": int(rows[0]["num_frames"]),
            "frames": sum(r["view"] == 0 for r in rows),
            "cameras": {c: sum(r["camera"] == c for r in rows) for c in dict.fromkeys(r["camera"] for r in rows)},
            "moments": {
                "state": moments(np.stack([r["state"] for r in first])),
                "action": moments(np.concatenate([r["actions"] for r in first])),
            },
        }

    def feature_shape(self) -> dict[str, Any]:
        grid = self.encoder.grid
        tokens, dim = grid[0] * grid[1], self.encoder.dim
        return {"tokens": tokens, "dim": dim, "grid": list(grid), "dtype": "float16", "bytes": tokens * dim * 2}

    def finalize(self, out_dir: str, manifest: Manifest) -> dict[str, Any]:
        records = [s.stats for s in manifest.current_shards]
        totals = {k: sum(int(s.get(k, 0)) for s in records) for k in ("rows", "episodes", "source_frames", "frames")}
        cameras: dict[str, int] = {}
        for s in records:
            for camera, n in s.get("cameras", {}).items():
                cameras[camera] = cameras.get(camera, 0) + int(n)
        feature = self.feature_shape()
        shard_bytes = sum(s.bytes for s in manifest.current_shards)
        moments_total: dict[str, Any] = {}
        for s in records:
            moments_total = merge_stats(moments_total, s.get("moments", {}))
        return {
            **totals, "cameras": sorted(cameras), "feature": feature,
            "normalisation": {name: mean_std(m) for name, m in moments_total.items()},
            "storage": storage_stats(self.source, manifest.source_location, shard_bytes, totals, feature["bytes"],
                                     self.params.corpus_steps),
            "params": self.params.model_dump(mode="json", exclude={"extra"}),
        }
