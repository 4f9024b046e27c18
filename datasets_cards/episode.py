"""The canonical Episode: the one in-memory type every reader produces.

Frames are lazy: a reader hands over encoded bytes (or a loader callable) and
pixels are decoded only when an annotator asks for them, so streaming a corpus
never holds more than the episode at hand.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from datasets_cards.codecs import decode_image
from datasets_cards.errors import EpisodeError, FrameDecodeError


class FrameSequence(Sequence[np.ndarray]):
    """A camera's frames, decoded on access.

    Built from a list of encoded images (the common case for RLDS and image
    shards) or from a loader callable returning the whole T×H×W×3 array (video
    files, HDF5 datasets), which is called once and cached.
    """

    def __init__(
        self,
        encoded: Sequence[bytes] | None = None,
        *,
        loader: Callable[[], np.ndarray] | None = None,
        length: int | None = None,
    ):
        if (encoded is None) == (loader is None):
            raise ValueError("FrameSequence needs exactly one of `encoded` or `loader`")
        if loader is not None and length is None:
            raise ValueError("FrameSequence(loader=...) needs `length`")
        self._encoded = encoded
        self._loader = loader
        self._length = len(encoded) if encoded is not None else int(length)  # type: ignore[arg-type]
        self._cache: np.ndarray | None = None

    @classmethod
    def from_array(cls, frames: np.ndarray) -> FrameSequence:
        """Wrap frames already in memory (tests, simulators)."""
        frames = np.asarray(frames)
        return cls(loader=lambda: frames, length=len(frames))

    def __len__(self) -> int:
        return self._length

    @property
    def encoded(self) -> Sequence[bytes] | None:
        """The encoded bytes when the source stores images (lets writers skip a re-encode)."""
        return self._encoded

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return np.stack([self[i] for i in range(*index.indices(self._length))])
        if index < 0:
            index += self._length
        if not 0 <= index < self._length:
            raise IndexError(f"frame {index} out of range for {self._length} frames")
        if self._encoded is not None:
            return decode_image(self._encoded[index])
        return self.load()[index]

    def load(self) -> np.ndarray:
        """All frames as uint8 T×H×W×3 (decodes everything; use for short episodes)."""
        if self._cache is None:
            if self._encoded is not None:
                self._cache = np.stack([decode_image(b) for b in self._encoded])
            else:
                try:
                    self._cache = np.asarray(self._loader(), dtype=np.uint8)  # type: ignore[misc]
                except EpisodeError:
                    raise
                except Exception as e:
                    raise FrameDecodeError(f"frames could not be loaded: {e}") from e
            if self._cache.ndim != 4 or self._cache.shape[-1] != 3:
                raise FrameDecodeError(f"frames have shape {self._cache.shape}, expected T×H×W×3")
        return self._cache


GRIPPER_RAW = "gripper_raw"  # metadata key: T float32 gripper values as stored, before normalising
# metadata key: how many raw gripper values lay beyond the card's open or closed value (clipped to [0, 1]);
# set by every SourceReader (pipelines.formats.base) for sources with a gripper channel.
GRIPPER_CLIPPED = "gripper_clipped"
REPLACEMENT_CHARACTER = "\ufffd"  # what a lenient decoder puts where bytes were not valid UTF-8


@dataclass
class Episode:
    """One demonstration in canonical form.

    Invariants (checked at construction, violations raise EpisodeError so the
    reader can quarantine the episode with that reason):
    - T ≥ 1 steps; arm_state is T×D, gripper is T, actions is T×A;
    - every camera has T frames;
    - state, gripper and actions are finite; gripper lies in [0, 1]
      (0 = open, 1 = closed, whatever the source's convention);
    - the instruction is a non-empty string without U+FFFD (the mark of bytes that were not UTF-8).
    """

    episode_id: str
    source: str
    instruction: str
    fps: float
    frames: Mapping[str, FrameSequence]
    arm_state: np.ndarray  # T×D float32, the arm only (no gripper)
    gripper: np.ndarray  # T float32, 0 = open, 1 = closed
    actions: np.ndarray  # T×A float32, layout named by the source card
    metadata: dict[str, Any] = field(default_factory=dict)  # reader extras; GRIPPER_RAW: the raw gripper channel

    def __post_init__(self) -> None:
        self.arm_state = np.asarray(self.arm_state, dtype=np.float32)
        self.gripper = np.asarray(self.gripper, dtype=np.float32).reshape(-1)
        self.actions = np.asarray(self.actions, dtype=np.float32)
        if self.actions.ndim == 1:
            self.actions = self.actions[:, None]
        self.validate()

    @property
    def num_frames(self) -> int:
        return int(self.arm_state.shape[0]) if self.arm_state.ndim else 0

    @property
    def cameras(self) -> list[str]:
        return list(self.frames)

    def validate(self) -> None:
        def fail(reason: str) -> None:
            raise EpisodeError(reason, self.episode_id)

        if not isinstance(self.instruction, str) or not self.instruction.strip():
            fail("missing instruction")
        if REPLACEMENT_CHARACTER in self.instruction:
            fail(f"instruction holds U+FFFD where its bytes were not valid UTF-8: {self.instruction[:80]!r}")
        if self.fps <= 0:
            fail(f"fps must be positive, got {self.fps}")
        if self.arm_state.ndim != 2:
            fail(f"arm_state must be T×D, got shape {self.arm_state.shape}")
        t = self.num_frames
        if t == 0:
            fail("zero-length episode")
        if self.gripper.shape != (t,):
            fail(f"gripper has shape {self.gripper.shape}, expected ({t},)")
        if self.actions.ndim != 2 or self.actions.shape[0] != t:
            fail(f"actions have shape {self.actions.shape}, expected ({t}, A)")
        for name, values in (("arm_state", self.arm_state), ("gripper", self.gripper), ("actions", self.actions)):
            if not np.isfinite(values).all():
                fail(f"non-finite values (NaN/inf) in {name}")
        if self.gripper.min() < -1e-3 or self.gripper.max() > 1 + 1e-3:
            fail(f"gripper outside [0, 1]: min {self.gripper.min():.3f}, max {self.gripper.max():.3f}")
        for camera, seq in self.frames.items():
            if len(seq) != t:
                fail(f"camera {camera!r} has {len(seq)} frames, expected {t}")
