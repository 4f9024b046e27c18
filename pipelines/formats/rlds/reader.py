"""RLDS reader: TFDS datasets (DROID, Bridge, Fractal, ...) → canonical Episodes, configured by the card.

Phases per episode:
1. read: `tfds.builder_from_directory(location)` and the split slice
   `train[start:stop]`, in file order (no shuffling), with every image feature
   left encoded (`tfds.decode.SkipDecoding`);
2. gather: the card's keys (`observation/...`, `action/...`, or
   `episode_metadata/...` for episode-level values) are stacked over steps;
   state keys are concatenated, then `state.dims` kept; the gripper channel is
   normalised to 0 = open, 1 = closed with `card.gripper.normalise`;
3. validate: the first frame of every camera is decoded and its shape
   checked (`reader_options.check_frames`: "first" (default), "all" or
   "none"); then the Episode invariants run. Any failure becomes a
   `Quarantined(episode_id, reason)`. A frame that is bad *after* the first
   one (with "first": corrupt, truncated, empty, another size) is found by the
   pipeline that needs it, inside the unit (`pipelines.base.checked_frames`),
   which quarantines the episode naming camera and frame index; a frame no
   pipeline needs is never decoded.

A damaged record (a TFRecord file with flipped or missing bytes: TensorFlow's
DataLossError, "corrupted record at N" / "truncated record at N") quarantines
the episode it holds, the reason naming the file, and reading goes on with the
next record; when the damage broke the file's framing, the records after it in
that file come out quarantined the same way, and the next file reads normally.
So a damaged file costs the episodes it touches, never the unit's other ones.
An unreadable record's id is `<card name>-<split>-<index:06d>`, in `episode_ids`
as in `read`. Other read errors (a dropped connection) propagate: the flow
retries the unit.

Opening the reader loads the dataset's metadata: a missing or damaged
dataset_info.json or features.json is a `DamagedSourceError` naming the file and
what is wrong with it (TFDS itself would say "generated with an old TFDS version"
or give a bare JSON parse error). Card keys that the dataset does not have are a
card error, raised then too, with the keys it does have. An instruction whose
bytes are not UTF-8 quarantines its episode (never stored as U+FFFD).

Episode ids join the values of the card's `episode_id_keys` (episode-level
keys; `datasets_cards.source.episode_id`), otherwise they are `<card name>-<split>-<index:06d>`. `episode_ids()` reads
only those keys (TFDS partial decoding), so the flow can check that the ids are
unique over the whole run before it cuts units; an id seen twice in one read is
still quarantined.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from datasets_cards import GRIPPER_RAW, CardError, Episode, EpisodeError, FrameSequence, SourceCard
from datasets_cards.source import episode_id as make_episode_id
from pipelines.formats.base import DamagedSourceError, SourceReader, fingerprint_of, register_reader
from pipelines.formats.rlds.tf_setup import quiet_tensorflow
from pipelines.quarantine import Quarantined

quiet_tensorflow()

import tensorflow as tf  # noqa: E402
import tensorflow_datasets as tfds  # noqa: E402

DATASET_INFO_FILE = "dataset_info.json"
FEATURES_FILE = "features.json"
METADATA_FILES = (DATASET_INFO_FILE, FEATURES_FILE)  # what TFDS needs to open a dataset folder
STEPS = "steps"
CHECK_FRAMES = ("first", "all", "none")
_STEP_BATCH = 4096  # steps fetched per tf.data batch; one batch holds a whole typical episode
# What a URL scheme TensorFlow has no filesystem for needs (TFDS reads RLDS through tf.io.gfile, not fsspec).
SCHEME_HINTS = {
    "s3": "TensorFlow has had no built-in s3:// filesystem since 2.6 and tensorflow-io, which registers one, "
          "is released for older TensorFlow versions; copy the dataset to a local disk (e.g. `aws s3 sync`) "
          "or to a gs:// bucket (built into TensorFlow) and point --location there",
}


class UnsupportedSchemeError(CardError):
    """TensorFlow has no filesystem for the source location's URL scheme; the message says what to do.

    A CardError: the command line reports it in one line, before anything is read.
    """


def check_scheme(location: str) -> None:
    """Raise UnsupportedSchemeError unless TensorFlow can read `location`'s URL scheme (checked, no request made)."""
    scheme, sep, _ = location.partition("://")
    if sep and scheme not in tf.io.gfile.get_registered_schemes():
        hint = SCHEME_HINTS.get(scheme, f"install the TensorFlow filesystem plugin for {scheme}://, or copy the "
                                        "dataset to a local disk")
        raise UnsupportedSchemeError(f"RLDS location {location!r}: TensorFlow {tf.__version__} cannot read "
                                     f"{scheme}:// (it reads {', '.join(_schemes())}); {hint}")


def _schemes() -> list[str]:
    return [f"{s}://" for s in tf.io.gfile.get_registered_schemes() if s and s != "ram"] + ["local paths"]


def resolve_version_dir(location: str) -> str:
    """`location` itself if it holds dataset_info.json, else its highest version subfolder that does."""
    check_scheme(location)
    if tf.io.gfile.exists(f"{location.rstrip('/')}/{DATASET_INFO_FILE}"):
        return location
    if not tf.io.gfile.isdir(location):
        raise FileNotFoundError(f"RLDS location {location!r} does not exist")
    versions, without_info = [], []
    for entry in tf.io.gfile.listdir(location):
        name = entry.rstrip("/")
        try:
            version = tuple(int(part) for part in name.split("."))
        except ValueError:
            continue
        if tf.io.gfile.exists(f"{location.rstrip('/')}/{name}/{DATASET_INFO_FILE}"):
            versions.append((version, name))
        elif tf.io.gfile.exists(f"{location.rstrip('/')}/{name}/{FEATURES_FILE}"):
            without_info.append((version, name))
    if not versions:
        # A dataset folder (its features.json is there) that lost dataset_info.json: name that file.
        damaged = [location.rstrip("/")] if tf.io.gfile.exists(f"{location.rstrip('/')}/{FEATURES_FILE}") else [
            f"{location.rstrip('/')}/{max(without_info)[1]}"] if without_info else []
        if damaged:
            raise DamagedSourceError(f"{damaged[0]}/{DATASET_INFO_FILE} is missing (its {FEATURES_FILE} is there): "
                                     "copy the dataset folder again from its release")
        raise FileNotFoundError(
            f"RLDS location {location!r} has no {DATASET_INFO_FILE} and no version folder (e.g. 1.0.1/) holding one"
        )
    return f"{location.rstrip('/')}/{max(versions)[1]}"


def check_metadata(version_dir: str) -> None:
    """Raise DamagedSourceError naming the file when dataset_info.json or features.json is missing, empty,
    not JSON (a truncated copy) or not a JSON object."""
    for name in METADATA_FILES:
        path = f"{version_dir.rstrip('/')}/{name}"
        if not tf.io.gfile.exists(path):
            raise DamagedSourceError(f"{path} is missing: TFDS needs it to decode the records; "
                                     "copy the dataset folder again from its release")
        with tf.io.gfile.GFile(path, "rb") as f:
            data = f.read()
        if not data.strip():
            raise DamagedSourceError(f"{path} is empty: copy it again from the dataset's release")
        try:
            value = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            what = (f"{e.msg}: line {e.lineno} column {e.colno}" if isinstance(e, json.JSONDecodeError)
                    else f"{e.reason}: byte {e.start}")
            raise DamagedSourceError(f"{path} is not valid JSON ({what} of {len(data)} bytes): truncated or "
                                     "damaged; copy it again from the dataset's release") from e
        if not isinstance(value, dict):
            raise DamagedSourceError(f"{path} holds a JSON {type(value).__name__}, not the object TFDS writes: "
                                     "copy it again from the dataset's release")


def _one_line(error: Exception) -> str:
    return " ".join(f"{type(error).__name__}: {error}".split())


def _split_key(key: str) -> list[str]:
    return [part for part in key.split("/") if part]


def _feature_at(features: Any, path: list[str]) -> Any:
    for part in path:
        features = features[part]
    return features


def _value_at(tree: Mapping[str, Any], path: list[str]) -> Any:
    for part in path:
        tree = tree[part]
    return tree


def _leaf_keys(features: Any, prefix: str = "") -> list[str]:
    if isinstance(features, tfds.features.FeaturesDict):
        return [k for name, f in features.items() for k in _leaf_keys(f, f"{prefix}{name}/")]
    return [prefix.rstrip("/")]


def _to_python(value: Any) -> Any:
    """Numpy leaves of episode_metadata → plain Python (bytes decoded as UTF-8)."""
    if isinstance(value, Mapping):
        return {k: _to_python(v) for k, v in value.items()}
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, np.ndarray):
        return [_to_python(v) for v in value.tolist()] if value.ndim else _to_python(value.item())
    if isinstance(value, np.generic):
        return value.item()
    return value


@register_reader("rlds")
class RldsReader(SourceReader):
    """Stream a TFDS/RLDS dataset as canonical Episodes (see the module docstring)."""

    def __init__(self, card: SourceCard, location: str | None = None):
        super().__init__(card, location)
        self.check_frames = card.reader_options.get("check_frames", "first")
        if self.check_frames not in CHECK_FRAMES:
            raise ValueError(f"reader_options.check_frames must be one of {CHECK_FRAMES}, got {self.check_frames!r}")
        self._builder: tfds.core.DatasetBuilder | None = None
        self.builder  # noqa: B018  opened now: damaged metadata or a card that does not fit fails here, in one line

    # -- dataset -----------------------------------------------------------------------------------
    @property
    def builder(self) -> tfds.core.DatasetBuilder:
        if self._builder is None:
            version_dir = resolve_version_dir(self.location)
            check_metadata(version_dir)
            try:
                builder = tfds.builder_from_directory(version_dir)
            except Exception as e:  # valid JSON that is not TFDS metadata (a field missing, a wrong type)
                raise DamagedSourceError(f"{version_dir}: TFDS cannot restore the dataset from its {DATASET_INFO_FILE} "
                                         f"and {FEATURES_FILE} ({_one_line(e)}); copy them again from the dataset's "
                                         "release") from e
            if self.card.split not in builder.info.splits:
                raise CardError(
                    f"source {self.card.name!r}: split {self.card.split!r} not in {self.location}; "
                    f"splits: {sorted(builder.info.splits)}"
                )
            self._check_card_keys(builder.info.features)
            self._builder = builder
        return self._builder

    def fingerprint(self) -> str:
        """TFDS metadata names every shard with its episode count and bytes: its two files and the folder's file
        names identify the release without a request per shard (DROID has 2,048 of them on GCS)."""
        version_dir = resolve_version_dir(self.location)
        metadata = {name: tf.io.gfile.GFile(f"{version_dir.rstrip('/')}/{name}", "rb").read().decode("utf-8", "replace")
                    for name in METADATA_FILES}
        return fingerprint_of({"metadata": metadata, "files": sorted(tf.io.gfile.listdir(version_dir))})

    def _check_card_keys(self, features: tfds.features.FeaturesDict) -> None:
        steps = features[STEPS].feature
        missing = []
        for key in self._card_keys():
            path = _split_key(key)
            tree = features if self._is_episode_level(features, path) else steps
            try:
                _feature_at(tree, path)
            except KeyError:
                missing.append(key)
        step_level = [k for k in self.card.episode_id_keys
                      if k not in missing and not self._is_episode_level(features, _split_key(k))]
        if step_level:
            raise CardError(
                f"source card {self.card.name!r}: episode_id_keys {step_level} are step keys; "
                "an episode id needs episode-level keys (episode_metadata/...)"
            )
        if missing:
            known = _leaf_keys(steps) + [k for k in _leaf_keys(features) if not k.startswith(f"{STEPS}/")]
            raise CardError(
                f"source card {self.card.name!r} names keys {missing} that {self.location} does not have; "
                f"its keys: {sorted(known)}"
            )

    def _card_keys(self) -> list[str]:
        card = self.card
        keys = [card.instruction_key, *card.state.keys, *card.action.keys, *(c.key for c in card.cameras.values())]
        if card.gripper is not None:
            keys.append(card.gripper.key)
        return keys + list(card.episode_id_keys)

    @staticmethod
    def _is_episode_level(features: tfds.features.FeaturesDict, path: list[str]) -> bool:
        return path[0] != STEPS and path[0] in features.keys()

    def num_episodes(self) -> int:
        return int(self.builder.info.splits[self.card.split].num_examples)

    def _decoders(self) -> dict[str, Any]:
        def skip_images(features: Any) -> Any:
            if isinstance(features, tfds.features.Image):
                return tfds.decode.SkipDecoding()
            if isinstance(features, tfds.features.FeaturesDict):
                inner = {name: skip_images(f) for name, f in features.items()}
                inner = {name: d for name, d in inner.items() if d is not None}
                return inner or None
            return None

        return {STEPS: skip_images(self.builder.info.features[STEPS].feature) or {}}

    # -- reading ---------------------------------------------------------------------------------------
    def _records(self, start: int, stop: int, decoders: Any) -> Iterator[tuple[int, Any, str | None]]:
        """(index, element, None) for every record of [start, stop) in order, or (index, None, reason) for one
        that cannot be read (a damaged file); reading resumes after it."""
        position = start
        while position < stop:
            dataset = self.builder.as_dataset(
                split=f"{self.card.split}[{position}:{stop}]", decoders=decoders, shuffle_files=False,
                read_config=tfds.ReadConfig(try_autocache=False),
            )
            try:
                for element in dataset:
                    yield position, element, None
                    position += 1
                return
            except tf.errors.DataLossError as e:
                yield position, None, self._damage(position, e)
                position += 1

    def _damage(self, index: int, error: tf.errors.DataLossError) -> str:
        """The reason an unreadable record is quarantined with: its index, its file, TensorFlow's words."""
        split = self.builder.info.splits[self.card.split]
        ends = np.cumsum(split.shard_lengths)
        file = split.filepaths[min(int(np.searchsorted(ends, index, side="right")), len(ends) - 1)]
        message = re.sub(r"\{\{.*?\}\}|\[Op:.*$", "", error.message or str(error), flags=re.DOTALL)
        message = " ".join(message.split()).rstrip(" '")
        return (f"unreadable record {index}: {file} is damaged (DataLossError: {message}); "
                "copy the file again from the dataset's release")

    def read(self, start: int, stop: int) -> Iterator[Episode | Quarantined]:
        total = self.num_episodes()
        start, stop = max(0, start), min(stop, total)
        if start >= stop:
            return
        features = self.builder.info.features
        seen: set[str] = set()
        for index, element, damage in self._records(start, stop, self._decoders()):
            if damage is not None:
                yield self._quarantine(make_episode_id(self.card.name, self.card.split, index), damage)
                continue
            episode_level = {k: tf.nest.map_structure(lambda t: t.numpy(), v) for k, v in element.items() if k != STEPS}
            steps = _stack_steps(element[STEPS])
            episode_id = self._episode_id(index, episode_level)
            if episode_id in seen:
                yield self._quarantine(f"{episode_id}@{index}", f"duplicate episode id {episode_id!r} at index {index}")
                continue
            seen.add(episode_id)
            try:
                yield self._episode(index, episode_id, episode_level, steps, features)
            except EpisodeError as e:
                yield self._quarantine(episode_id, e.reason)

    def _quarantine(self, episode_id: str, reason: str) -> Quarantined:
        return Quarantined(episode_id=episode_id, reason=reason, stage="read", source=self.card.name)

    def _episode_id(self, index: int, episode_level: Mapping[str, Any]) -> str:
        values = [_to_python(_value_at(episode_level, _split_key(k))) for k in self.card.episode_id_keys]
        return make_episode_id(self.card.name, self.card.split, index, values)

    def episode_ids(self, start: int, stop: int) -> list[str]:
        total = self.num_episodes()
        start, stop = max(0, start), min(stop, total)
        if start >= stop:
            return []
        if not self.card.episode_id_keys:
            return [make_episode_id(self.card.name, self.card.split, i) for i in range(start, stop)]
        wanted: dict[str, Any] = {}
        for key in self.card.episode_id_keys:
            *parents, leaf = _split_key(key)
            node = wanted
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = True
        return [
            make_episode_id(self.card.name, self.card.split, index) if damage is not None
            else self._episode_id(index, tf.nest.map_structure(lambda t: t.numpy(), dict(element)))
            for index, element, damage in self._records(start, stop, tfds.decode.PartialDecoding(wanted))
        ]

    def _episode(
        self,
        index: int,
        episode_id: str,
        episode_level: Mapping[str, Any],
        steps: Mapping[str, Any] | None,
        features: tfds.features.FeaturesDict,
    ) -> Episode:
        if steps is None:
            raise EpisodeError("zero-length episode", episode_id)
        card = self.card

        def get(key: str) -> np.ndarray:
            path = _split_key(key)
            if path[0] in episode_level:
                return np.asarray(_value_at(episode_level, path))
            return np.asarray(_value_at(steps, path))

        def matrix(keys: list[str]) -> np.ndarray:
            parts = []
            for key in keys:
                values = get(key)
                parts.append(values.reshape(len(values), -1).astype(np.float32))
            return np.concatenate(parts, axis=1)

        arm_state = matrix(card.state.keys)
        if card.state.dims is not None:
            if max(card.state.dims, default=-1) >= arm_state.shape[1]:
                raise EpisodeError(
                    f"wrong shape: state {card.state.keys} has {arm_state.shape[1]} dims, card keeps {card.state.dims}",
                    episode_id,
                )
            arm_state = arm_state[:, card.state.dims]
        t = arm_state.shape[0]
        raw_gripper = self._raw_gripper(get, t, episode_id)
        actions = matrix(card.action.keys)
        frames = {name: FrameSequence(encoded=list(get(spec.key))) for name, spec in card.cameras.items()}
        for name, spec in card.cameras.items():
            self._check_frames(name, frames[name], _feature_at(features[STEPS].feature, _split_key(spec.key)), episode_id)
        metadata: dict[str, Any] = {"episode_index": index, "location": self.location}
        metadata.update(_to_python(dict(episode_level)))
        if raw_gripper is not None:
            metadata[GRIPPER_RAW] = raw_gripper
        return Episode(
            episode_id=episode_id,
            source=card.name,
            instruction=self._instruction(get),
            fps=card.fps,
            frames=frames,
            arm_state=arm_state,
            gripper=np.zeros(t, np.float32) if raw_gripper is None else card.gripper.normalise(raw_gripper),
            actions=actions,
            metadata=metadata,
        )

    def _raw_gripper(self, get, t: int, episode_id: str) -> np.ndarray | None:
        spec = self.card.gripper
        if spec is None:  # human video: no gripper channel
            return None
        raw = get(spec.key).reshape(t, -1)
        index = spec.index or 0
        if index >= raw.shape[1]:
            raise EpisodeError(f"wrong shape: gripper key {spec.key!r} has {raw.shape[1]} dims, card reads index {index}", episode_id)
        return raw[:, index].astype(np.float32)

    def _instruction(self, get) -> str:
        values = np.asarray(get(self.card.instruction_key)).reshape(-1)
        for value in values:  # step-level keys repeat the instruction; take the first non-empty one
            if isinstance(value, bytes):
                try:  # strictly: bytes that are not UTF-8 quarantine the episode, never become U+FFFD
                    text = value.decode("utf-8")
                except UnicodeDecodeError as e:
                    raise EpisodeError(f"instruction is not valid UTF-8 ({e.reason} at byte {e.start}): "
                                       f"{value[:80]!r}") from e
            else:
                text = _to_python(value)
            if isinstance(text, str) and text.strip():
                return text.strip()
        return ""

    def _check_frames(self, camera: str, frames: FrameSequence, feature: Any, episode_id: str) -> None:
        if self.check_frames == "none" or not len(frames):
            return
        expected = tuple(feature.shape) if isinstance(feature, tfds.features.Image) else None
        indices = range(len(frames)) if self.check_frames == "all" else range(1)
        for i in indices:
            try:
                image = frames[i]
            except EpisodeError as e:
                raise EpisodeError(f"undecodable frame {i} of camera {camera!r}: {e.reason}", episode_id) from e
            if expected and None not in expected and image.shape != expected:
                raise EpisodeError(f"wrong shape: camera {camera!r} frame {i} is {image.shape}, expected {expected}", episode_id)


def _stack_steps(steps: tf.data.Dataset) -> dict[str, Any] | None:
    """All steps of one episode as one nested dict of numpy arrays (leading axis T); None if empty."""
    batches = [tf.nest.map_structure(lambda t: t.numpy(), b) for b in steps.batch(_STEP_BATCH)]
    if not batches:
        return None
    if len(batches) == 1:
        return batches[0]
    return tf.nest.map_structure(lambda *parts: np.concatenate(parts), *batches)


__all__ = ["RldsReader", "check_metadata", "resolve_version_dir"]
