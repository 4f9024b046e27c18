"""Source cards: how to read one corpus into the canonical Episode.

Everything dataset-specific (keys, conventions, rates, per-pipeline thresholds)
lives in a YAML card validated by these models; the pipelines read only cards.
Per-pipeline parameters are defined in datasets_cards/params/<pipeline>.py; a
card's `params:` block states only what differs from their defaults.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    create_model,
    field_validator,
    model_validator,
)

from datasets_cards.constants import PROJECT_ROOT
from datasets_cards.errors import CardError
from datasets_cards.params import PIPELINE_PARAMS


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CameraSpec(_Strict):
    key: str  # feature key in the source, e.g. "observation/exterior_image_1_left"
    view: str = "exterior"  # exterior | wrist | ego: lets pipelines pick views without names


ROTATIONS = ("euler_<seq>", "quat_xyzw", "quat_wxyz", "rotvec", "none")
EULER_ROTATION = re.compile(r"euler_([xyz]{3}|[XYZ]{3})$")  # scipy sequences: lower = extrinsic, upper = intrinsic


def validate_rotation(rotation: str) -> str:
    """`rotation` if it names a known orientation representation, else ValueError listing them."""
    if rotation in ROTATIONS[1:] or EULER_ROTATION.match(rotation):
        return rotation
    raise ValueError(f"unknown rotation representation {rotation!r}; known: {', '.join(ROTATIONS)}")


# The default plausible range of every state and action dim: wide enough for any real corpus (metres,
# radians, degrees, motor ticks up to 4096), narrow enough to catch a sensor spike such as a finite 3e38.
DEFAULT_PLAUSIBLE_RANGE = (-1e4, 1e4)
Bounds = tuple[float, float]


class _PlausibleRange(_Strict):
    """`plausible_range`: values outside it quarantine the episode (a spike no robot produces).

    One [low, high] for every dim, or a list with one [low, high] per dim (in the order of `names`);
    finite bounds only (cards travel as JSON), so a very wide range such as [-1e30, 1e30] turns it off.
    """

    names: list[str] = Field(default_factory=list)
    plausible_range: Bounds | list[Bounds] = DEFAULT_PLAUSIBLE_RANGE

    @field_validator("plausible_range")
    @classmethod
    def _ordered(cls, v):
        for low, high in [v] if isinstance(v, tuple) else v:
            if not (math.isfinite(low) and math.isfinite(high) and low < high):
                raise ValueError(f"plausible_range needs finite low < high, got [{low}, {high}]")
        return v

    @model_validator(mode="after")
    def _one_range_per_name(self):
        if isinstance(self.plausible_range, list) and self.names and len(self.plausible_range) != len(self.names):
            raise ValueError(f"plausible_range has {len(self.plausible_range)} ranges for {len(self.names)} names")
        return self

    def out_of_range(self, values, field: str = "plausible_range") -> str | None:
        """None when every value of T×D `values` lies in the plausible range, else what lies outside and where
        (`field`: how the message names the card field, e.g. "state.plausible_range")."""
        import numpy as np

        values = np.asarray(values, dtype=np.float64)
        if values.ndim != 2 or not values.size:
            return None
        dims = values.shape[1]
        if isinstance(self.plausible_range, tuple):
            bounds = np.tile(np.asarray(self.plausible_range, np.float64), (dims, 1))
        elif len(self.plausible_range) == dims:
            bounds = np.asarray(self.plausible_range, np.float64)
        else:
            raise CardError(f"{field} has {len(self.plausible_range)} ranges, the data has {dims} dims")
        bad = (values < bounds[:, 0]) | (values > bounds[:, 1])  # NaN compares False: the Episode checks those
        if not bad.any():
            return None
        step, dim = (int(i) for i in np.argwhere(bad)[0])
        name = self.names[dim] if dim < len(self.names) else f"dim {dim}"
        return (f"{name} = {values[step, dim]:.4g} at step {step} is outside {field} [{bounds[dim, 0]:g}, "
                f"{bounds[dim, 1]:g}] ({int(bad.sum())} value(s) outside in all)")


class StateSpec(_PlausibleRange):
    """Where the arm state lives. Several keys are concatenated in order."""

    keys: list[str]  # e.g. ["observation/cartesian_position"]
    dims: list[int] | None = None  # indices kept after concatenation (None = all)
    names: list[str] = Field(default_factory=list)  # human names of the kept dims, e.g. x,y,z,roll,pitch,yaw
    # plausible_range (see _PlausibleRange): default ±1e4 for every kept dim; outside it: quarantined.
    frame: str = "base"  # frame the Cartesian part is expressed in
    # ee_pose: xyz (m) then the orientation as `rotation` says; joint: joint positions (rad, m).
    space: Literal["ee_pose", "joint"] = "ee_pose"
    # How an ee_pose stores orientation (annotators.kinematics.pose): euler_<seq> (scipy sequence,
    # euler_xyz = extrinsic, as DROID and Bridge), quat_xyzw, quat_wxyz, rotvec, or none.
    rotation: str = "euler_xyz"
    urdf: str | None = None  # joint space: the robot's URDF (relative = to the project root), for forward kinematics
    ee_frame: str | None = None  # joint space: the URDF frame whose pose is the end effector

    @field_validator("rotation")
    @classmethod
    def _known_rotation(cls, v: str) -> str:
        return validate_rotation(v)

    @model_validator(mode="after")
    def _joint_space_names_its_kinematics(self) -> StateSpec:
        if (self.urdf is None) != (self.ee_frame is None):
            raise ValueError("state.urdf and state.ee_frame go together (forward kinematics needs both)")
        return self

    def resolve_urdf(self) -> Path | None:
        if self.urdf is None:
            return None
        path = Path(self.urdf)
        return path if path.is_absolute() else PROJECT_ROOT / path


class GripperSpec(_Strict):
    """The gripper channel and how to normalise it to 0 = open, 1 = closed."""

    key: str  # e.g. "observation/gripper_position"
    index: int | None = None  # index into the key's vector, None for a scalar
    open_value: float  # raw value meaning fully open
    closed_value: float  # raw value meaning fully closed
    source: Literal["state", "action"] = "state"  # LIBERO/CALVIN only log the commanded ±1 action
    # True: open/closed come from the data (robust percentiles of the raw channel over the run's first
    # episodes, recorded in the manifest); the card's values then only say which end is open.
    calibrate: bool = False

    @model_validator(mode="after")
    def _distinct(self) -> GripperSpec:
        if self.open_value == self.closed_value:
            raise ValueError(f"gripper open_value and closed_value are both {self.open_value}")
        return self

    def calibrated(self, raw, percentiles: tuple[float, float] = (2.0, 98.0)) -> GripperSpec:
        """This spec with open/closed at the `percentiles` of the raw values, keeping the direction."""
        import numpy as np

        low, high = (float(v) for v in np.percentile(np.asarray(raw, dtype=np.float64), percentiles))
        if high - low <= 1e-6 * max(1.0, abs(high)):
            raise CardError(f"cannot calibrate the gripper ({self.key}): its raw channel stays at {low:g} in the episodes "
                            "read; set open_value/closed_value in the card and calibrate: false")
        opens_low = self.open_value < self.closed_value
        return self.model_copy(update={"open_value": low if opens_low else high,
                                       "closed_value": high if opens_low else low})

    def _scaled(self, raw):
        import numpy as np

        return (np.asarray(raw, dtype=np.float32) - self.open_value) / (self.closed_value - self.open_value)

    def normalise(self, raw):
        """Raw values → [0, 1] with 0 = open, 1 = closed (clipped: `clipped_count` says how many were)."""
        import numpy as np

        return np.clip(self._scaled(raw), 0.0, 1.0)

    def clipped_count(self, raw) -> int:
        """How many raw values lie beyond the open or the closed value (`normalise` clips them)."""
        scaled = self._scaled(raw)
        return int(((scaled < 0.0) | (scaled > 1.0)).sum())


class ActionSpec(_PlausibleRange):
    keys: list[str]  # concatenated in order, e.g. ["action"] or ["action/world_vector", ...]
    names: list[str] = Field(default_factory=list)  # layout, one name per dim
    # plausible_range (see _PlausibleRange): default ±1e4 for every dim; outside it: quarantined.
    space: str = "ee_velocity"  # ee_velocity | ee_delta | ee_absolute | joint_velocity | joint_absolute


def _pipeline_params_model() -> type[BaseModel]:
    """`params:` of a source card: one field per registered pipeline, each its params class with defaults."""
    fields: dict[str, Any] = {}
    for name in PIPELINE_PARAMS.names():
        cls = PIPELINE_PARAMS.get(name)
        fields[name] = (cls, cls())
    return create_model("PipelineParams", __base__=_Strict, **fields)


PipelineParams = _pipeline_params_model()


class SourceCard(_Strict):
    """One corpus. See datasets_cards/sources/*.yaml."""

    name: str
    description: str
    format: str  # a source format registered in pipelines/formats/ (rlds | lerobot | hdf5), checked when read
    location: str  # local path (relative = to the project root) or an fsspec URL (gs://...)
    homepage: str = ""
    license: str = ""
    split: str = "train"
    fps: float
    instruction_key: str  # e.g. "language_instruction"; "episode_metadata/..." for episode-level
    cameras: dict[str, CameraSpec] = Field(default_factory=dict)  # our name → where it lives; {} = state only
    state: StateSpec
    gripper: GripperSpec | None = None  # None for human video (EgoDex): the Episode gets zeros
    action: ActionSpec
    pipelines: list[str]  # outputs this corpus is used for by default (pipelines with a params module)
    params: PipelineParams = PipelineParams()  # type: ignore[valid-type]
    # Keys whose values together identify an episode (see `episode_id`); [] = the split and the index.
    episode_id_keys: list[str] = Field(default_factory=list)
    reader_options: dict[str, Any] = Field(default_factory=dict)  # format-specific extras
    # Scene tags the corpus appends to its instructions ("put pear in bowl cardboardfence"); every reader
    # strips them, so no annotator mistakes them for words of the task.
    instruction_tags: list[str] = Field(default_factory=list)
    # Mean steps per episode of the whole corpus (a published figure, named in the card): sizes the work units
    # (pipelines/units.py) without reading the data. None: the flow's fixed fallback unit size.
    episode_steps: int | None = Field(default=None, ge=1)

    def clean_instruction(self, text: str) -> str:
        """`text` without a trailing `instruction_tags` tag (case and a final period ignored)."""
        for tag in sorted(self.instruction_tags, key=len, reverse=True):
            stripped = re.sub(rf"\s+{re.escape(tag)}\s*\.?\s*$", "", text, flags=re.IGNORECASE)
            if stripped != text:
                return stripped
        return text

    @field_validator("fps")
    @classmethod
    def _positive(cls, v: float) -> float:
        if v <= 0:
            raise ValueError(f"fps must be positive, got {v}")
        return v

    @field_validator("pipelines")
    @classmethod
    def _known_pipelines(cls, v: list[str]) -> list[str]:
        unknown = [name for name in v if name not in PIPELINE_PARAMS]
        if unknown:
            raise ValueError(f"unknown pipelines {unknown}; known: {', '.join(PIPELINE_PARAMS.names())}")
        return v

    def resolve_location(self, override: str | None = None) -> str:
        """Absolute path or URL of the data; relative card paths resolve against the project root."""
        location = override or self.location
        if "://" in location or Path(location).is_absolute():
            return location
        return str(PROJECT_ROOT / location)

    def cameras_with_view(self, view: str) -> list[str]:
        return [name for name, spec in self.cameras.items() if spec.view == view]


EPISODE_ID_SEPARATOR = "#"


def episode_id(card_name: str, split: str, index: int, key_values: list[Any] = ()) -> str:
    """The run-wide episode id: the card's id key values joined by '#', in the card's order.

    One key gives its value unchanged (DROID: the episode's file path); several give e.g.
    "<bridge file_path>#<episode_id>". When a dataset stores no key (or a value is empty), the id is
    "<card name>-<split>-<index:06d>", the episode's position in the split.
    """
    values = [str(v).strip() for v in key_values]
    if values and all(values):
        return EPISODE_ID_SEPARATOR.join(values)
    return f"{card_name}-{split}-{index:06d}"
