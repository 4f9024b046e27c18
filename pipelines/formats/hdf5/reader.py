"""HDF5 sources → canonical Episodes.

`card.reader_options["layout"]` names the file layout, looked up in `LAYOUTS`:
- "robomimic": LIBERO's original release; each *.hdf5 holds data/demo_N groups
  with obs/<camera> uint8 T×H×W×3, obs/<state keys>, actions, and the task in
  data.attrs (e.g. problem_info JSON). Option `flip_images` rotates frames by
  180°: LIBERO renders them upside down (OpenVLA/openpi apply `[::-1, ::-1]`).
- "egodex": one <name>.hdf5 (transforms/<joint> T×4×4 poses, attrs
  llm_description) next to <name><video_suffix> per episode.
Card keys are paths inside the episode's group; a key whose data are 4×4 pose
matrices contributes its translation, or with `pose: position_rot6d` its
translation and 6-D rotation (the first two columns of the rotation matrix; DIAL's
wrist poses). Option `axes` (a 3×3 rotation) turns those poses into another world
frame first (EgoDex: ARKit's y-up axes into the robot's z-up ones), and
`actions: next_state` makes action(t) the state of step t+1 (the last step keeps
its own), DIAL's rule for human data. Instruction keys "attrs/NAME[/FIELD...]"
read attribute NAME (JSON-decoded when FIELDs follow) of the layout's attribute
group. Files are visited in sorted order and demos in numeric order.
"""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import fsspec
import h5py
import numpy as np

from annotators.kinematics.pose import matrix_to_rot6d
from datasets_cards import GRIPPER_RAW, Episode, EpisodeError, FrameSequence
from datasets_cards.registry import Registry
from pipelines.formats.base import SourceReader, register_reader
from pipelines.io.video import decode_segment
from pipelines.quarantine import Quarantined

ATTRS_PREFIX = "attrs/"


@dataclass(frozen=True)
class _Ref:
    episode_id: str
    path: str  # the HDF5 file (filesystem path)
    group: str  # the episode's group inside it ("" = the file root)
    video: str | None = None  # a companion video file (EgoDex)


POSE_OPTIONS = ("position", "position_rot6d")  # reader_options.pose: what a 4×4 pose contributes
ACTION_OPTIONS = ("keys", "next_state")  # reader_options.actions: the card's action keys, or the next state


@dataclass(frozen=True)
class PoseReading:
    """How 4×4 pose datasets are read (reader_options pose and axes)."""

    pose: str = "position"
    axes: np.ndarray | None = None  # 3×3 rotation applied to every pose (world frame change)

    @classmethod
    def from_options(cls, options: dict[str, Any], card_name: str) -> PoseReading:
        pose = options.get("pose", "position")
        if pose not in POSE_OPTIONS:
            raise ValueError(f"source card {card_name!r}: reader_options.pose is {pose!r}; known: {', '.join(POSE_OPTIONS)}")
        axes = options.get("axes")
        if axes is not None:
            axes = np.asarray(axes, dtype=np.float64)
            if axes.shape != (3, 3) or not np.allclose(axes @ axes.T, np.eye(3), atol=1e-6) or np.linalg.det(axes) < 0:
                raise ValueError(f"source card {card_name!r}: reader_options.axes must be a 3×3 rotation matrix "
                                 f"(orthonormal, determinant 1), got {options.get('axes')}")
        return cls(pose, axes)


def _as_matrix(values: np.ndarray, reading: PoseReading = PoseReading()) -> np.ndarray:
    """A T×... dataset → float32 T×D; T×4×4 pose matrices contribute their translation (and 6-D rotation)."""
    values = np.asarray(values)
    if len(values) == 0:
        raise EpisodeError("zero-length episode")
    if values.ndim == 3 and values.shape[1:] == (4, 4):
        position, rotation = values[:, :3, 3].astype(np.float64), values[:, :3, :3].astype(np.float64)
        if reading.axes is not None:
            position, rotation = position @ reading.axes.T, reading.axes @ rotation
        values = position if reading.pose == "position" else np.concatenate([position, matrix_to_rot6d(rotation)], 1)
    return values.reshape(len(values), -1).astype(np.float32)


def _attr_value(group: h5py.Group, key: str):
    """Resolve "attrs/NAME[/FIELD...]" on `group` (FIELDs index the attribute's JSON)."""
    name, *fields = key[len(ATTRS_PREFIX):].split("/")
    if name not in group.attrs:
        raise EpisodeError(f"missing instruction: attribute {name!r} not found")
    value = group.attrs[name]
    value = value.decode() if isinstance(value, bytes) else value
    for field_name in fields:
        value = json.loads(value) if isinstance(value, str) else value
        if not isinstance(value, dict) or field_name not in value:
            raise EpisodeError(f"missing instruction: {key!r} has no field {field_name!r}")
        value = value[field_name]
    return value


class _Layout(ABC):
    """How one family of HDF5 files maps onto episodes. Subclasses list refs and find frames."""

    attrs_at_root = True  # instruction attributes live on the file root (else on the episode's parent group)

    def __init__(self, reader: Hdf5Reader):
        self.reader = reader
        self.card = reader.card
        self.options = reader.card.reader_options
        self.reading = PoseReading.from_options(self.options, self.card.name)
        self.actions = self.options.get("actions", "keys")
        if self.actions not in ACTION_OPTIONS:
            raise ValueError(f"source card {self.card.name!r}: reader_options.actions is {self.actions!r}; "
                             f"known: {', '.join(ACTION_OPTIONS)}")

    @abstractmethod
    def refs(self) -> list[_Ref]:
        """Every episode of the source, in a deterministic order."""

    @abstractmethod
    def frames(self, ref: _Ref, group: h5py.Group, length: int) -> dict[str, FrameSequence]:
        """Lazy frames per card camera; raises EpisodeError when they cannot match `length`."""

    def episode(self, ref: _Ref) -> Episode:
        card = self.card
        with self.reader.open(ref.path) as f:
            group = f[ref.group] if ref.group else f
            data = {}
            for key in dict.fromkeys(card.state.keys + card.action.keys + ([card.gripper.key] if card.gripper else [])):
                if key not in group:
                    raise EpisodeError(f"dataset {key!r} missing")
                data[key] = _as_matrix(group[key][()], self.reading)
            lengths = {k: len(v) for k, v in data.items()}
            if len(set(lengths.values())) != 1:
                raise EpisodeError(f"datasets differ in length: {lengths}")
            length = next(iter(lengths.values()))
            attrs_group = f if self.attrs_at_root else group.parent
            instruction_key = card.instruction_key
            if instruction_key.startswith(ATTRS_PREFIX):
                instruction = _attr_value(attrs_group, instruction_key)
            elif instruction_key in group:
                instruction = group[instruction_key][()]
            else:
                raise EpisodeError(f"missing instruction: dataset {instruction_key!r} not found")
            instruction = instruction.decode() if isinstance(instruction, bytes) else str(instruction)
            frames = self.frames(ref, group, length)
        state = np.concatenate([data[k] for k in card.state.keys], axis=1)
        if card.state.dims is not None:
            state = state[:, card.state.dims]
        metadata: dict[str, Any] = {"file": ref.path, "group": ref.group}
        if card.gripper is None:
            gripper = np.zeros(length, np.float32)
        else:
            metadata[GRIPPER_RAW] = np.asarray(data[card.gripper.key][:, card.gripper.index or 0], np.float32)
            gripper = card.gripper.normalise(metadata[GRIPPER_RAW])
        if self.actions == "next_state":
            actions = np.concatenate([state[1:], state[-1:]], axis=0)
        else:
            actions = np.concatenate([data[k] for k in card.action.keys], axis=1)
        return Episode(
            episode_id=ref.episode_id, source=card.name, instruction=instruction, fps=card.fps, frames=frames,
            arm_state=state, gripper=gripper, actions=actions, metadata=metadata,
        )


# reader_options.layout → the _Layout subclass that maps those files onto episodes
LAYOUTS: Registry[type[_Layout]] = Registry("HDF5 layout")


def _demo_number(name: str) -> tuple[int, str]:
    match = re.search(r"(\d+)$", name)
    return (int(match.group(1)) if match else -1, name)


@LAYOUTS.register("robomimic")
class _Robomimic(_Layout):
    attrs_at_root = False  # LIBERO/robomimic keep problem_info on the `data` group

    def refs(self) -> list[_Ref]:
        refs = []
        for path in self.reader.files(".hdf5"):
            stem = path.rsplit("/", 1)[-1].removesuffix(".hdf5")
            with self.reader.open(path) as f:
                demos = sorted(f["data"].keys(), key=_demo_number) if "data" in f else []
            refs += [_Ref(f"{self.card.name}-{stem}-{demo}", path, f"data/{demo}") for demo in demos]
        return refs

    def frames(self, ref: _Ref, group: h5py.Group, length: int) -> dict[str, FrameSequence]:
        frames = {}
        for name, camera in self.card.cameras.items():
            if camera.key not in group:
                raise EpisodeError(f"camera {name!r}: dataset {camera.key!r} missing")
            shape = group[camera.key].shape
            if len(shape) != 4 or shape[0] != length or shape[-1] != 3:
                raise EpisodeError(f"camera {name!r} has shape {shape}, expected ({length}, H, W, 3)")
            loader = partial(self._load, ref, camera.key, bool(self.options.get("flip_images", False)))
            frames[name] = FrameSequence(loader=loader, length=length)
        return frames

    def _load(self, ref: _Ref, key: str, flip: bool) -> np.ndarray:
        with self.reader.open(ref.path) as f:
            images = f[ref.group][key][()]
        return np.ascontiguousarray(images[:, ::-1, ::-1]) if flip else images


@LAYOUTS.register("egodex")
class _EgoDex(_Layout):
    def __init__(self, reader: Hdf5Reader):
        super().__init__(reader)
        if len(self.card.cameras) != 1:
            raise ValueError(f"the egodex layout has one video per episode; card {self.card.name!r} "
                             f"names cameras {sorted(self.card.cameras)}")

    def refs(self) -> list[_Ref]:
        suffix = self.options.get("video_suffix", ".mp4")
        root = self.reader.root.rstrip("/")
        refs = []
        for path in self.reader.files(".hdf5"):
            relative = path[len(root) + 1:].removesuffix(".hdf5")
            refs.append(_Ref(f"{self.card.name}-{relative.replace('/', '-')}", path, "",
                             path.removesuffix(".hdf5") + suffix))
        return refs

    def frames(self, ref: _Ref, group: h5py.Group, length: int) -> dict[str, FrameSequence]:
        name = next(iter(self.card.cameras))
        if not self.reader.fs.exists(ref.video):
            raise EpisodeError(f"missing video for camera {name!r}: {ref.video}")
        frames_in_file = self._probe(ref.video)
        if frames_in_file and frames_in_file != length:
            raise EpisodeError(f"video {ref.video} has {frames_in_file} frames, poses have {length}")
        return {name: FrameSequence(loader=partial(self._load, ref.video, length), length=length)}

    def _probe(self, path: str) -> int:
        """Frame count from the container header (0 if it does not say); raises on undecodable files."""
        import av

        try:
            with self.reader.fs.open(path, "rb") as f, av.open(f) as container:
                return int(container.streams.video[0].frames)
        except Exception as e:  # PyAV raises a family of FFmpeg errors for corrupt files
            raise EpisodeError(f"undecodable video {path}: {e}") from e

    def _load(self, path: str, length: int) -> np.ndarray:
        with self.reader.fs.open(path, "rb") as f:
            return decode_segment(f, start_time=0.0, num_frames=length, fps=self.card.fps)


@register_reader("hdf5")
class Hdf5Reader(SourceReader):
    """Streams HDF5 episodes in the layout named by `card.reader_options["layout"]`."""

    def __init__(self, card, location: str | None = None):
        super().__init__(card, location)
        name = card.reader_options.get("layout")
        if name not in LAYOUTS:
            raise ValueError(f"source card {card.name!r}: reader_options.layout is {name!r}; "
                             f"known HDF5 layouts: {', '.join(LAYOUTS.names())}")
        self.fs, self.root = fsspec.core.url_to_fs(self.location)
        if not self.fs.exists(self.root):
            raise FileNotFoundError(f"HDF5 source {card.name!r}: {self.location} does not exist")
        self.layout = LAYOUTS.get(name)(self)
        self._refs: list[_Ref] | None = None

    def files(self, suffix: str) -> list[str]:
        """Files under the location ending in `suffix`, sorted (the location may be one file)."""
        if self.fs.isfile(self.root):
            return [self.root]
        return sorted(self.fs.glob(f"{self.root.rstrip('/')}/**/*{suffix}"))

    @contextmanager
    def open(self, path: str) -> Iterator[h5py.File]:
        with self.fs.open(path, "rb") as raw, h5py.File(raw, "r") as f:
            yield f

    def _episode_refs(self) -> list[_Ref]:
        if self._refs is None:
            self._refs = self.layout.refs()
        return self._refs

    def num_episodes(self) -> int:
        return len(self._episode_refs())

    def episode_ids(self, start: int, stop: int) -> list[str]:
        return [ref.episode_id for ref in self._episode_refs()[start:stop]]

    def read(self, start: int, stop: int) -> Iterator[Episode | Quarantined]:
        for ref in self._episode_refs()[start:stop]:
            try:
                yield self.layout.episode(ref)
            except EpisodeError as e:
                yield Quarantined(ref.episode_id, e.reason, source=self.card.name)
            except (OSError, KeyError, IndexError, ValueError) as e:
                yield Quarantined(ref.episode_id, f"unreadable episode: {type(e).__name__}: {e}", source=self.card.name)
