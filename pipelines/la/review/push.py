"""Push la candidates to Label Studio for human verification (la4vla.txt Appendix 7.6).

Phases:
0. clips    (inside each annotate unit, while the episode's frames are in memory)
            one MP4 per segment and review camera (exterior view, plus the wrist
            view when the card has one), with 1 s of outlined context either side,
            and the episode's keyframe plot, into OUT/la/<source>/review/media/; a
            source without cameras gets one state plot PNG per segment in
            review/plots/ instead;
1. collect  read the candidate rows of the manifest's shards;
2. match    find each candidate's clips or plot (a candidate without them gets no task,
            and is reported);
3. tasks    one task per segment keyed `source_episode_id#segment_index`, the
            proposal (subaction, instruction, start, end) attached as a
            prediction, disagreements with the kinematic cross-check first;
4. deliver  either import the tasks missing from the run's project (found again
            by title, so re-pushing creates no duplicates), or write
            Label Studio-importable JSON plus the labeling config for users
            without a server.
"""

from __future__ import annotations

import json
import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import fsspec
import numpy as np
import pyarrow.parquet as pq

from annotators.segments.base import VOCABULARY
from datasets_cards import Episode, SourceCard
from datasets_cards.constants import REVIEW_DIR
from datasets_cards.manifest import Manifest
from pipelines.base import checked_frames
from pipelines.io import write_text_atomic
from annotators.keyframes import episode_to_keyframes
from datasets_cards.params.la import KeyframeParams
from pipelines.la.plots import write_episode_plot, write_segment_plot
from pipelines.la.review import labeling
from pipelines.labelstudio.client import (
    URL_ENV,
    LabelStudioClient,
    LabelStudioError,
    settings_from_env,
)
from pipelines.labelstudio.clips import write_clip

MEDIA_DIR = "media"
PLOTS_DIR = "plots"  # review/plots/: the state plots of a source without cameras (media/ holds only clips)
CONTEXT_S = 1.0  # seconds shown either side of a segment (clip or state plot): its boundaries show against what surrounds them
TASKS_FILE = "tasks.json"
PROJECT_FILE = "project.json"  # where the run's project lives: lets pull find it after the manifest changes
LABEL_CONFIG_FILE = "label_config.xml"
LOCAL_FILES_URL = "/data/local-files/?d="
DOCUMENT_ROOT_ENV = "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT"
TITLE_MAX_CHARS = 50  # Label Studio's limit on project titles
CANDIDATE_COLUMNS = (
    "source_episode_id", "segment_index", "subaction", "instruction", "task", "start", "end", "fps",
    "agreement", "segmenter", "cameras",
)


@dataclass
class PushResult:
    title: str
    source: str  # source card of the run
    tasks: int  # candidate tasks built this time
    created: int  # imported now
    existing: int  # already in the project (skipped)
    project_id: int | None = None
    tasks_file: str | None = None  # export_tasks_json only
    unreadable: list[str] = field(default_factory=list)  # "episode_id: reason" whose segments got no task
    push_error: str | None = None  # a configured server refused or failed: the tasks went to tasks_file instead
    out_root: str = "outputs"  # the run's OUT (the output folder is OUT/la/<source>)

    @property
    def retry_command(self) -> str:
        """The command that pushes this output, as printed: the review reads the output folder (its manifest
        holds the card, and no source is read), so it works for a run made with --location or a card file."""
        return f"python -m pipelines review {shlex.quote(self.source)} --out {shlex.quote(self.out_root)} --push"

    def summary(self) -> str:
        """One line for people: where the tasks went and what to do next."""
        skipped = f"; {len(self.unreadable)} episode(s) unreadable, their segments were not pushed" if self.unreadable else ""
        if self.push_error:
            return (
                f"Label Studio push failed ({self.push_error}); {self.tasks} review tasks written to {self.tasks_file} "
                f"instead{skipped}. Fix the server and run `{self.retry_command}`"
            )
        if self.tasks_file:
            return (
                f"{self.tasks} review tasks written to {self.tasks_file}{skipped}. To verify: start `make labelstudio`, "
                f"set {URL_ENV} and LABEL_STUDIO_API_KEY, and run `{self.retry_command}` "
                "(or import the file by hand with review/label_config.xml)"
            )
        return f"{self.created} new review tasks in Label Studio project {self.title!r} ({self.existing} already there){skipped}"


def task_key(source_episode_id: str, segment_index: int) -> str:
    """Stable task key: the la output card's row key."""
    return f"{source_episode_id}#{int(segment_index)}"


def out_root(out_dir: str) -> str:
    """OUT of an output folder OUT/la/<source> (what `review --out` takes)."""
    return os.path.dirname(os.path.dirname(out_dir.rstrip("/"))) or "."


def project_title(manifest: Manifest) -> str:
    """One project per run: pipeline, source and config hash (same run → same project)."""
    return f"{manifest.pipeline}/{manifest.source}/{manifest.config_hash}"[-TITLE_MAX_CHARS:]


def load_run(out_dir: str) -> Manifest:
    return Manifest.load(out_dir)


def read_candidates(out_dir: str, manifest: Manifest) -> list[dict[str, Any]]:
    """The candidate segments (the annotate run's shards), with the light columns the review needs."""
    rows: list[dict[str, Any]] = []
    for shard in sorted(manifest.shards, key=lambda s: s.path):
        with fsspec.open(f"{out_dir}/{shard.path}", "rb") as f:
            rows += pq.read_table(f, columns=list(CANDIDATE_COLUMNS)).to_pylist()
    return rows


def review_cameras(card: SourceCard) -> list[str]:
    """The clips shown to verifiers: the first exterior camera, then the first wrist camera if any."""
    exterior = card.cameras_with_view("exterior") or list(card.cameras)
    return exterior[:1] + card.cameras_with_view("wrist")[:1]


def _file_stem(key: str) -> str:
    return key.replace("/", "_").replace("#", "__")


def clip_start(start: int, fps: float) -> int:
    """The source frame a segment's clip starts at: CONTEXT_S before the segment, or the episode's start."""
    return max(0, int(start) - round(CONTEXT_S * fps))


def clip_path(media_dir: str, key: str, camera: str, first: int) -> str:
    """The clip of segment `key` from source frame `first` (in the name: a clip cut another way is another file)."""
    return f"{media_dir}/{_file_stem(key)}.{camera}.from{first}.mp4"


def keyframe_plot_path(media_dir: str, episode_id: str) -> str:
    return f"{media_dir}/{_file_stem(episode_id)}.keyframes.png"


def plot_path(plots_dir: str, key: str) -> str:
    return f"{plots_dir}/{_file_stem(key)}.state.png"


def media_folder(out_dir: str, cameras: list[str]) -> str:
    """Where the tasks' media lie (the folder Label Studio's local-files storage serves)."""
    return f"{out_dir}/{REVIEW_DIR}/{MEDIA_DIR if cameras else PLOTS_DIR}"


def segment_media(out_dir: str, row: dict[str, Any], cameras: list[str]) -> dict[str, str]:
    """The files one task shows, by labeling object name: a clip per camera and the episode's keyframe plot,
    or the state plot without cameras."""
    folder = media_folder(out_dir, cameras)
    key = task_key(row["source_episode_id"], row["segment_index"])
    if not cameras:
        return {labeling.STATE_PLOT: plot_path(folder, key)}
    first = clip_start(row["start"], row["fps"])
    return {**{c: clip_path(folder, key, c, first) for c in cameras},
            labeling.KEYFRAME_PLOT: keyframe_plot_path(folder, row["source_episode_id"])}


def write_episode_clips(out_dir: str, episode: Episode, rows: list[dict[str, Any]], cameras: list[str],
                        frames: dict[str, np.ndarray] | None = None) -> int:
    """Cut the clip of every segment of `episode` for each review camera (inside its annotate unit): the
    segment and CONTEXT_S either side, the context frames outlined.

    `frames`: the cameras' frames, decoded and checked by the caller (`pipelines.base.checked_frames`);
    without them a camera is decoded and checked on its first missing clip (FrameDecodeError naming the
    frame). Clips already there are kept (a resumed or retried unit); returns the number written now.
    """
    media_dir = f"{out_dir}/{REVIEW_DIR}/{MEDIA_DIR}"
    fs, _ = fsspec.core.url_to_fs(media_dir)
    frames = dict(frames or {})
    context = round(CONTEXT_S * episode.fps)
    written = 0
    for row in rows:
        key = task_key(row["source_episode_id"], row["segment_index"])
        start, end = int(row["start"]), int(row["end"])
        first = clip_start(start, episode.fps)
        for camera in cameras:
            path = clip_path(media_dir, key, camera, first)
            if not fs.exists(path):
                if camera not in frames:  # decoded once per episode and camera
                    frames[camera] = checked_frames(episode, camera)
                write_clip(frames[camera][first: end + context], episode.fps, path, (start - first, end - first))
                written += 1
    return written


def write_episode_keyframe_plot(out_dir: str, episode: Episode, rows: list[dict[str, Any]], pose: np.ndarray,
                                params: KeyframeParams) -> int:
    """The episode's keyframe plot beside its review clips, its segments numbered as the tasks' summaries
    name them (inside the annotate unit). `pose`: the canonical pose the keyframes were found on.
    Returns 1 when written now, 0 when a resumed unit finds it there."""
    path = keyframe_plot_path(f"{out_dir}/{REVIEW_DIR}/{MEDIA_DIR}", episode.episode_id)
    fs, _ = fsspec.core.url_to_fs(path)
    if fs.exists(path):
        return 0
    gripper = np.asarray(episode.gripper, dtype=np.float64)
    keyframes = episode_to_keyframes(pose, gripper, episode.fps, params)
    segments = [(int(r["start"]), int(r["end"]), segment_label(r)) for r in sorted(rows, key=lambda r: r["start"])]
    write_episode_plot(path, episode.episode_id, pose, gripper, episode.fps, params, keyframes, segments)
    return 1


def segment_label(row: dict[str, Any]) -> str:
    """How the keyframe plot and the task name a segment: '#index subaction'."""
    return f"#{int(row['segment_index'])} {row['subaction']}"


def write_episode_state_plots(out_dir: str, episode: Episode, rows: list[dict[str, Any]], pose: np.ndarray) -> int:
    """For a source without cameras: a state plot of every segment of `episode` (inside its annotate unit).

    `pose` is the episode's canonical end-effector pose (T×6), the one its segments were found on.
    Plots already there are kept (a resumed or retried unit); returns the number written now.
    """
    folder = media_folder(out_dir, [])
    fs, _ = fsspec.core.url_to_fs(folder)
    context = round(CONTEXT_S * episode.fps)
    gripper = np.asarray(episode.gripper, dtype=np.float64)
    written = 0
    for row in rows:
        key = task_key(row["source_episode_id"], row["segment_index"])
        path = plot_path(folder, key)
        if not fs.exists(path):
            write_segment_plot(path, f"{key}: proposed '{row['subaction']}'", pose, gripper,
                               int(row["start"]), int(row["end"]), context)
            written += 1
    return written


def find_segment_media(
    out_dir: str, rows: list[dict[str, Any]], cameras: list[str]
) -> tuple[dict[str, dict[str, str]], list[str]]:
    """The clips (or state plots) the units made for every candidate; returns ({key: {object name: path}},
    episodes without them)."""
    fs, _ = fsspec.core.url_to_fs(media_folder(out_dir, cameras))
    media: dict[str, dict[str, str]] = {}
    missing: dict[str, None] = {}
    for row in rows:
        key = task_key(row["source_episode_id"], row["segment_index"])
        paths = segment_media(out_dir, row, cameras)
        if all(fs.exists(p) for p in paths.values()):
            media[key] = paths
        else:
            missing[row["source_episode_id"]] = None
    what = "clips" if cameras else "state plots"
    reason = f"no review {what} (annotated with review off: re-run annotate with -o review=true into a new --out)"
    return media, [f"{episode_id}: {reason}" for episode_id in missing]


def media_url(path: str, document_root: str) -> str:
    """The Label Studio local-files URL of a clip or plot (it must lie below the server's document root)."""
    relative = os.path.relpath(os.path.abspath(path), os.path.abspath(document_root))
    if relative.startswith(".."):
        raise ValueError(
            f"review file {path} is outside the Label Studio document root {document_root}; "
            f"start the server with {DOCUMENT_ROOT_ENV} set to a parent of the output folder"
        )
    return LOCAL_FILES_URL + quote(relative)


def build_tasks(
    rows: list[dict[str, Any]], media: dict[str, dict[str, str]], document_root: str
) -> list[dict[str, Any]]:
    """Label Studio tasks with the proposal as a prediction; disagreements first, then by key.

    `media` maps a task key to its files by labeling object name (`find_segment_media`).
    """
    tasks = []
    for row in rows:
        key = task_key(row["source_episode_id"], row["segment_index"])
        if key not in media:
            continue
        needs_review_first = not row["agreement"]
        no_clip = labeling.STATE_PLOT in media[key]
        first = None if no_clip else clip_start(row["start"], row["fps"])
        data = {
            "key": key,
            "source_episode_id": row["source_episode_id"],
            "segment_index": int(row["segment_index"]),
            "task": row["task"],
            "subaction": row["subaction"],
            "instruction": row["instruction"],
            "start": int(row["start"]),
            "end": int(row["end"]),
            "fps": float(row["fps"]),
            "agreement": bool(row["agreement"]),
            "priority": int(needs_review_first),  # 1 = the kinematic cross-check disagrees: review first
            "clip_start": first,  # source frame of the clip's frame 1: the boundary controls count from there
            "segment_label": segment_label(row),
            "summary": _summary(key, row, first) + ("  (segmenters disagree)" if needs_review_first else ""),
            **{labeling.media_key(name): media_url(path, document_root) for name, path in media[key].items()},
        }
        tasks.append({"data": data, "predictions": [prediction(row, next(iter(media[key])), first)]})
    return sorted(tasks, key=lambda t: (-t["data"]["priority"], t["data"]["source_episode_id"],
                                        t["data"]["segment_index"]))


def _summary(key: str, row: dict[str, Any], first: int | None) -> str:
    proposed = f"{key}: proposed '{row['subaction']}'"
    if first is None:
        return f"{proposed} on source frames [{row['start']}, {row['end']})  {labeling.NO_CAMERAS_NOTE}"
    low, high = player_frames(row["start"], row["end"], first)
    return (f"{proposed} on player frames {low}-{high} (source frames [{row['start']}, {row['end']})); "
            "the orange-outlined frames around them are context")


def player_frames(start: int, end: int, first: int) -> tuple[int, int]:
    """Source segment [start, end) → (its first, its last frame) as the player counts a clip starting at `first`
    (from 1). `pull.source_frames` is the inverse."""
    return int(start) - first + 1, int(end) - first


def prediction(row: dict[str, Any], to_name: str, first: int | None = None) -> dict[str, Any]:
    """The proposal as a Label Studio prediction: it prefills the editable controls (the boundaries in the
    player's frames of a clip starting at source frame `first`, in source frames without a clip)."""
    def item(name: str, kind: str, value: dict[str, Any]) -> dict[str, Any]:
        return {"from_name": name, "to_name": to_name, "type": kind, "value": value}

    start, end = (int(row["start"]), int(row["end"])) if first is None else player_frames(row["start"], row["end"], first)

    return {
        "model_version": row.get("segmenter") or "la",
        "result": [
            item(labeling.SUBACTION, "choices", {"choices": [row["subaction"]]}),
            item(labeling.INSTRUCTION, "textarea", {"text": [row["instruction"]]}),
            item(labeling.START, "number", {"number": start}),
            item(labeling.END, "number", {"number": end}),
        ],
    }


def _prepare(
    out_dir: str, card: SourceCard | None, document_root: str | None
) -> tuple[Manifest, list[dict[str, Any]], str, str, list[str]]:
    """(manifest, tasks, labeling config, the media folder, unreadable episodes)."""
    if "://" in out_dir and not out_dir.startswith("file://"):
        raise ValueError(
            f"the Label Studio review needs a local output folder (its clips are served from disk), got {out_dir}"
        )
    out_dir = out_dir.removeprefix("file://")
    manifest = load_run(out_dir)
    card = card or manifest.source_card()
    cameras = review_cameras(card)
    rows = read_candidates(out_dir, manifest)
    media, unreadable = find_segment_media(out_dir, rows, cameras)
    # Default document root: the output root OUT (out_dir is OUT/la/<source>), as `make labelstudio` serves it.
    root = document_root or os.environ.get(DOCUMENT_ROOT_ENV) or str(Path(out_dir).parent.parent)
    tasks = build_tasks(rows, media, root)
    config = labeling.labeling_config(cameras, VOCABULARY)
    return manifest, tasks, config, media_folder(out_dir, cameras), unreadable


def export_tasks_json(out_dir: str, *, card: SourceCard | None = None, document_root: str | None = None) -> PushResult:
    """Write OUT/la/<source>/review/{tasks.json, label_config.xml} next to the clips, for import by hand.

    In Label Studio: create a project, paste label_config.xml under Settings → Labeling Interface,
    add a Local Files storage pointing at review/media (review/plots for a source without cameras; server started with
    LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true and LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT=<document_root>),
    then import tasks.json. `document_root` defaults to that env var, else the output root.
    """
    manifest, tasks, config, _, unreadable = _prepare(out_dir, card, document_root)
    review = f"{out_dir}/{REVIEW_DIR}"
    write_text_atomic(f"{review}/{LABEL_CONFIG_FILE}", config)
    write_text_atomic(f"{review}/{TASKS_FILE}", json.dumps(tasks, indent=1))
    return PushResult(project_title(manifest), manifest.source, len(tasks), 0, 0,
                      tasks_file=f"{review}/{TASKS_FILE}", unreadable=unreadable, out_root=out_root(out_dir))


def existing_keys(client: LabelStudioClient, project_id: int) -> set[str]:
    return {t["data"].get("key") for t in client.export(project_id)}


def ensure_project(
    client: LabelStudioClient, title: str, config: str, media_dir: str, annotations_per_task: int = 1
) -> dict[str, Any]:
    """The run's project (created on first push) with a local-files storage over its clips (or state plots)."""
    project = client.find_project(title) or client.create_project(
        title, config, description="LA segment verification (la4vla.txt Appendix 7.6): quality 0-3, keep ≥ 2",
        annotations_per_task=annotations_per_task,
    )
    media = os.path.abspath(media_dir)
    if not any(os.path.abspath(s.get("path", "")) == media for s in client.local_storages(project["id"])):
        client.add_local_storage(project["id"], media, title="la review clips")
    return project


def push_candidates(
    out_dir: str, client: LabelStudioClient, *, card: SourceCard | None = None,
    document_root: str | None = None, annotations_per_task: int = 1,
) -> PushResult:
    """Create (or find) the run's project and import the candidates it does not hold yet.

    `annotations_per_task` > 1 makes Label Studio hand each task to that many verifiers
    (needed for Krippendorff's alpha; the paper double-annotated a subset).
    """
    manifest, tasks, config, media_dir, unreadable = _prepare(out_dir, card, document_root)
    title = project_title(manifest)
    project = ensure_project(client, title, config, media_dir, annotations_per_task)
    have = existing_keys(client, project["id"])
    new = [t for t in tasks if t["data"]["key"] not in have]
    if new:
        client.import_tasks(project["id"], new)
    write_text_atomic(
        f"{out_dir}/{REVIEW_DIR}/{PROJECT_FILE}",
        json.dumps({"title": title, "id": project["id"], "url": client.url}, indent=2),
    )
    return PushResult(title, manifest.source, len(tasks), len(new), len(tasks) - len(new), project_id=project["id"],
                      unreadable=unreadable, out_root=out_root(out_dir))


def deliver(out_dir: str, *, url: str | None = None, token: str | None = None, card: SourceCard | None = None) -> PushResult:
    """Push to Label Studio when a server is configured (args or LABEL_STUDIO_URL + token), else write task JSON.

    A push that fails raises LabelStudioError: the annotate flow retries this as a task and,
    when every try failed, falls back to `export_after_failure`.
    """
    url, token = settings_from_env(url, token)
    if not url or not token:
        return export_tasks_json(out_dir, card=card)
    with LabelStudioClient(url, token) as client:
        return push_candidates(out_dir, client, card=card)


def export_after_failure(out_dir: str, error: Exception, *, card: SourceCard | None = None) -> PushResult:
    """Task JSON plus why the push failed: the annotations are done, only their delivery is not,
    and `review --push` retries it."""
    result = export_tasks_json(out_dir, card=card)
    result.push_error = str(error)
    return result


def push_or_export(out_dir: str, *, url: str | None = None, token: str | None = None,
                   card: SourceCard | None = None) -> PushResult:
    """`deliver` once; a failed push writes the task JSON and says why."""
    try:
        return deliver(out_dir, url=url, token=token, card=card)
    except LabelStudioError as e:
        return export_after_failure(out_dir, e, card=card)
