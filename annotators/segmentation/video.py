"""SAM 2 video tracking over an unbounded stream with bounded state, checkpoints, and per-episode propagation.

The pixel pipeline (PixelVLA §4.2) treats one frame per episode of a whole corpus as one
"video" (87,000 frames for Fractal) and tracks the gripper through it. transformers'
`Sam2VideoInferenceSession` keeps every frame's pixels and outputs forever; here the session
is pruned after every frame to exactly what SAM 2 reads next (installed
modeling_sam2_video.py, transformers 5.23):

- memory: `_gather_memory_frame_outputs` reads the conditioning frames' memories and the
  non-conditioning outputs at offsets 1 … num_maskmem-1 before the current frame
  (`maskmem_features`, `maskmem_pos_enc`);
- object pointers: `_get_object_pointers` reads every conditioning frame's pointer (up to
  the current frame) and the non-conditioning pointers at offsets 1 … max_pointers-1, where
  max_pointers = max_object_pointers_in_encoder when streaming (min(T, that) on a whole video);
- nothing else of a past frame: pixels and vision features are read for the current frame
  only (the feature cache holds one frame), point/mask prompts only on the frame they were
  added on, `frames_tracked_per_obj` only when new prompts arrive, `high_res_masks` and
  `pred_masks` only inside the call that made them.

So after a frame the session keeps one conditioning frame (the seed: a re-seed starts a new
session, since these videos cut across scenes, so `max_cond_frame_num` never comes into
play) and at most max(num_maskmem, max_object_pointers_in_encoder) - 1 non-conditioning
frames, full memories only for the last num_maskmem - 1; pixels, features and prompts of
past frames are dropped. The masks are bit-identical to an unpruned session (tested).

Streaming mode: frames are passed in memory one at a time (`model(inference_session=...,
frame_idx=..., frame=...)`, no JPEG folder); transformers' Sam2VideoProcessor needs
torchvision (not installed here), so frames are normalised on the device with the
checkpoint's settings and the session is built directly, as `init_video_session()` without
a video would build it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from annotators.devices import pick_device
from annotators.segmentation.base import TRACKERS, MaskResult, SegmenterConfig
from annotators.segmentation.sam import (
    Pixels,
    PixelSettings,
    inference,
    model_type,
    upsample_masks,
)
from annotators.weights import resolve_weights

FAMILY = "SAM 2 video"
OBJ_ID = 1
STATE_FORMAT = "sam2-streaming-tracker/1"
MEMORY_KEYS = ("object_pointer", "maskmem_features", "maskmem_pos_enc")  # what a memory frame is read for
POINTER_KEYS = ("object_pointer",)  # what an older frame inside the pointer window is read for


def load_sam2_video(model: str, device: str = "cpu") -> tuple[Any, PixelSettings]:
    """(Sam2VideoModel in eval mode on `device`, pixel settings) from a local folder or the HF cache."""
    from transformers import Sam2VideoModel

    path = resolve_weights(model, FAMILY)
    kind = model_type(path)
    if kind != "sam2_video":
        raise ValueError(f"{path} holds a {kind!r} checkpoint; the video tracker needs a SAM 2 video one "
                         f"(model_type sam2_video, e.g. facebook/sam2.1-hiera-tiny), which carries the memory weights")
    net = Sam2VideoModel.from_pretrained(str(path), local_files_only=True)
    return net.to(device).eval(), PixelSettings.from_folder(path)


@dataclass(frozen=True)
class Retention:
    """How far back SAM 2 reads past non-conditioning frames (see the module docstring)."""

    memory: int  # num_maskmem - 1: frames whose memory features are read
    pointers: int  # max_object_pointers_in_encoder - 1: frames whose object pointers are read

    @classmethod
    def of(cls, config: Any) -> Retention:
        return cls(max(0, config.num_maskmem - 1), max(0, config.max_object_pointers_in_encoder - 1))

    @property
    def max_frames(self) -> int:
        """Upper bound of frames with outputs in a pruned session: the seed plus the read window."""
        return 1 + max(self.memory, self.pointers)


def reads(t: int, readers: list[tuple[int, int]], reach: int) -> bool:
    """Whether a frame processed next at r in direction d (+1 forward, -1 reverse) reads frame t within `reach`."""
    return any(1 <= (r - t) * d <= reach for r, d in readers)


def prune_session(session: Any, readers: list[tuple[int, int]], retention: Retention) -> None:
    """Drop from `session` everything the frames in `readers` (the next ones to run) will not read."""
    for obj_idx, outputs in session.output_dict_per_obj.items():
        for out in outputs["cond_frame_outputs"].values():
            for key in [k for k in out if k not in MEMORY_KEYS]:
                del out[key]
        noncond = outputs["non_cond_frame_outputs"]
        for t in list(noncond):
            if reads(t, readers, retention.memory):
                keep = MEMORY_KEYS
            elif reads(t, readers, retention.pointers):
                keep = POINTER_KEYS
            else:
                del noncond[t]
                continue
            for key in [k for k in noncond[t] if k not in keep]:
                del noncond[t][key]
        tracked = session.frames_tracked_per_obj.get(obj_idx, {})
        for t in [t for t in tracked if t not in noncond]:
            del tracked[t]
        if not session.obj_with_new_inputs:  # prompts are read only on the frame they were added on
            session.point_inputs_per_obj.get(obj_idx, {}).clear()
            session.mask_inputs_per_obj.get(obj_idx, {}).clear()
    session.cache.clear_all()
    if isinstance(session.processed_frames, dict):
        session.processed_frames.clear()


def tensor_bytes(value: Any) -> int:
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, Mapping):
        return sum(tensor_bytes(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(tensor_bytes(v) for v in value)
    return 0


class LazyFrames(Mapping):
    """A whole episode as the session's `processed_frames`: uint8 frames, normalised on access (no T×3×S×S copy)."""

    def __init__(self, frames: np.ndarray, to_pixels: Any):
        self.frames, self.to_pixels = frames, to_pixels

    def __getitem__(self, index: int) -> torch.Tensor:
        if not 0 <= index < len(self.frames):
            raise KeyError(index)
        return self.to_pixels(self.frames[index])

    def __len__(self) -> int:
        return len(self.frames)

    def __iter__(self) -> Iterator[int]:
        return iter(range(len(self.frames)))


@TRACKERS.register("transformers")
class StreamingTracker:
    """One object (obj_id 1) tracked through an unbounded stream of frames by SAM 2, with bounded memory.

    `seed()` (re)starts the track from a box or mask prompt; `step()` takes the next frame.
    `prune=False` keeps the whole session as transformers does (for tests and the benchmark).
    """

    def __init__(self, config: SegmenterConfig | None = None, model: Any = None, processor: Any = None,
                 prune: bool = True):
        self.config = config or SegmenterConfig()
        self.device = pick_device(self.config.device)
        if model is None:
            model, settings = load_sam2_video(self.config.model, self.device)
        else:
            settings = PixelSettings.from_processor(processor) if processor is not None else PixelSettings()
        self.model, self.processor = model, processor
        self.size = int(model.config.image_size)
        self.pixels = Pixels(settings, self.device)
        self.retention = Retention.of(model.config)
        self.prune = prune
        self.session: Any = None
        self.index = -1  # the session's index of the last frame (restarts at 0 on every seed)
        self.frames_seen = 0  # frames through seed() and step() since construction (or the restored checkpoint)

    # ---------------------------------------------------------------- session
    def new_session(self, height: int, width: int) -> Any:
        from transformers import Sam2VideoInferenceSession

        session = Sam2VideoInferenceSession(
            video=None, inference_device=self.device, inference_state_device=self.device,
            video_storage_device=self.device, dtype=torch.float32, max_vision_features_cache_size=1,
        )
        session.video_height, session.video_width = int(height), int(width)
        session.obj_id_to_idx(OBJ_ID)
        return session

    def frame_pixels(self, frame: np.ndarray) -> torch.Tensor:
        """uint8 H×W×3 → 3×S×S normalised on the device (the video processor's resize and normalisation)."""
        return self.pixels(frame, (self.size, self.size))[0]

    def add_prompt(self, session: Any, frame_idx: int, shape: tuple[int, int], box: np.ndarray | None,
                   mask: np.ndarray | None) -> None:
        """A box (xyxy pixels) or a mask prompt on `frame_idx`, as the processor's add_inputs_to_inference_session."""
        if (box is None) == (mask is None):
            raise ValueError("give exactly one prompt: a box or a mask")
        obj_idx = session.obj_id_to_idx(OBJ_ID)
        height, width = shape
        if box is not None:
            box = np.asarray(box, dtype=np.float64).reshape(2, 2)
            if not np.isfinite(box).all():
                raise ValueError(f"box prompt must be finite, got {box.ravel()}")
            coords = torch.tensor(box * [self.size / width, self.size / height], dtype=torch.float32)
            # a box is two points labelled 2 (top-left) and 3 (bottom-right)
            session.add_point_inputs(obj_idx, frame_idx, {
                "point_coords": coords.view(1, 1, 2, 2),
                "point_labels": torch.tensor([[[2, 3]]], dtype=torch.int32),
            })
            session.remove_mask_inputs(obj_idx, frame_idx)
        else:
            mask = np.asarray(mask)
            if mask.shape != (height, width):
                raise ValueError(f"mask prompt of shape {mask.shape} for a frame of {(height, width)}")
            x = torch.from_numpy(mask.astype(np.float32)).to(self.device)[None, None]
            if x.shape[-2:] != (self.size, self.size):
                x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False,
                                  antialias=True)
                x = (x >= 0.5).float()
            session.add_mask_inputs(obj_idx, frame_idx, x)
            session.remove_point_inputs(obj_idx, frame_idx)
        session.obj_with_new_inputs = [OBJ_ID]

    def result(self, outputs: Any, shape: tuple[int, int]) -> MaskResult:
        mask = upsample_masks(outputs.pred_masks[:1], shape)[0]
        score = torch.sigmoid(outputs.object_score_logits.float().reshape(-1)[0])
        return MaskResult(mask.cpu().numpy(), float(score))

    def run(self, frame: np.ndarray) -> MaskResult:
        self.index += 1
        with inference(self.device, self.config.dtype):
            outputs = self.model(inference_session=self.session, frame_idx=self.index,
                                 frame=self.frame_pixels(frame))
            if self.prune:
                prune_session(self.session, [(self.index + 1, 1)], self.retention)
            result = self.result(outputs, frame.shape[:2])
        self.frames_seen += 1
        return result

    # ---------------------------------------------------------------- stream
    def seed(self, frame: np.ndarray, box: np.ndarray | None = None, mask: np.ndarray | None = None) -> MaskResult:
        """(Re)start the track on `frame` from a box or a mask; the old memory is discarded."""
        height, width = frame.shape[:2]
        session = self.new_session(height, width)
        self.add_prompt(session, 0, (height, width), box, mask)
        self.session, self.index = session, -1
        return self.run(frame)

    def step(self, frame: np.ndarray) -> MaskResult:
        """The next frame of the stream; score = object-presence probability."""
        if self.session is None:
            raise RuntimeError("seed() the tracker before step()")
        if frame.shape[:2] != (self.session.video_height, self.session.video_width):
            raise ValueError(f"frame of {frame.shape[:2]} in a stream of "
                             f"{(self.session.video_height, self.session.video_width)} frames; re-seed first")
        return self.run(frame)

    def session_size(self) -> dict[str, int]:
        """What the session holds: frames with outputs, frames of pixels, cached feature frames, prompts, bytes."""
        s = self.session
        if s is None:
            return {"outputs": 0, "conditioning": 0, "pixels": 0, "features": 0, "prompts": 0, "bytes": 0}
        outputs = [o for obj in s.output_dict_per_obj.values() for o in obj.values()]
        prompts = [*s.point_inputs_per_obj.values(), *s.mask_inputs_per_obj.values()]
        return {
            "outputs": sum(len(o) for o in outputs),
            "conditioning": sum(len(obj["cond_frame_outputs"]) for obj in s.output_dict_per_obj.values()),
            "pixels": len(s.processed_frames or {}),
            "features": len(s.cache._vision_features),
            "prompts": sum(len(p) for p in prompts),
            "bytes": tensor_bytes(outputs) + tensor_bytes(dict(s.processed_frames or {}))
            + tensor_bytes(s.cache._vision_features) + tensor_bytes(prompts),
        }

    # ---------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict[str, torch.Tensor]:
        """The bounded session as tensors (CPU copies) plus JSON metadata in a uint8 tensor under "meta"."""
        s = self.session
        meta = {"format": STATE_FORMAT, "seeded": s is not None, "index": self.index, "frames_seen": self.frames_seen,
                "num_maskmem": self.model.config.num_maskmem, "image_size": self.size,
                "max_object_pointers_in_encoder": self.model.config.max_object_pointers_in_encoder}
        state: dict[str, torch.Tensor] = {}
        if s is not None:
            if s.obj_with_new_inputs:
                raise RuntimeError("a prompt is pending; run the frame it belongs to before taking a checkpoint")
            meta["height"], meta["width"] = s.video_height, s.video_width
            outputs = s.output_dict_per_obj[s.obj_id_to_idx(OBJ_ID)]
            for kind, short in (("cond_frame_outputs", "cond"), ("non_cond_frame_outputs", "noncond")):
                for t, out in outputs[kind].items():
                    for key, value in out.items():
                        if isinstance(value, torch.Tensor):
                            state[f"{short}.{t}.{key}"] = value.detach().to("cpu", copy=True).contiguous()
        state["meta"] = torch.frombuffer(bytearray(json.dumps(meta).encode()), dtype=torch.uint8).clone()
        return state

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        """Restore a `state_dict()` (e.g. from torch.load(f, weights_only=True)); the next step continues the track."""
        meta = json.loads(bytes(state["meta"].to(torch.uint8).tolist()).decode())
        if meta.get("format") != STATE_FORMAT:
            raise ValueError(f"not a {STATE_FORMAT} checkpoint: {meta.get('format')!r}")
        ours = {"num_maskmem": self.model.config.num_maskmem, "image_size": self.size,
                "max_object_pointers_in_encoder": self.model.config.max_object_pointers_in_encoder}
        theirs = {k: meta[k] for k in ours}
        if theirs != ours:
            raise ValueError(f"checkpoint taken with a different model: {theirs} vs {ours}")
        self.index, self.frames_seen = int(meta["index"]), int(meta["frames_seen"])
        if not meta["seeded"]:
            self.session = None
            return
        session = self.new_session(meta["height"], meta["width"])
        obj_idx = session.obj_id_to_idx(OBJ_ID)
        outputs = session.output_dict_per_obj[obj_idx]
        kinds = {"cond": "cond_frame_outputs", "noncond": "non_cond_frame_outputs"}
        for name, value in state.items():
            if name == "meta":
                continue
            short, _, rest = name.partition(".")
            t, _, key = rest.partition(".")
            if short not in kinds or not t.isdigit() or not key:
                raise ValueError(f"unexpected entry {name!r} in a tracker checkpoint")
            outputs[kinds[short]].setdefault(int(t), {})[key] = value.to(self.device)
        for t in outputs["non_cond_frame_outputs"]:
            session.frames_tracked_per_obj[obj_idx][t] = {"reverse": False}
        self.session = session

    # ---------------------------------------------------------------- one episode
    def propagate(self, frames: np.ndarray, start: int, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Carry `mask` (the object on frame `start`) forward to the end and backward to frame 0 of one episode.

        A fresh session holds this episode only (the stream's session is untouched): the mask
        prompt on `start`, then frames start+1 … T-1, then start-1 … 0 in reverse, as
        propagate_in_video_iterator does, pruned as the stream is. Returns (T×H×W bool masks,
        T float32 object-presence probabilities); frame `start` is the given mask, score 1.
        """
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"expected T×H×W×3 frames, got {frames.shape}")
        count, height, width = frames.shape[:3]
        if not 0 <= start < count:
            raise ValueError(f"start {start} outside an episode of {count} frames")
        session = self.new_session(height, width)
        session.processed_frames = LazyFrames(frames, self.frame_pixels)
        self.add_prompt(session, start, (height, width), None, mask)
        masks = np.zeros((count, height, width), dtype=bool)
        scores = np.zeros(count, dtype=np.float32)
        masks[start], scores[start] = np.asarray(mask, dtype=bool), 1.0
        backward = [(start - 1, -1)] if start > 0 else []  # the reverse pass reads the frames after `start`

        def after(ahead: list[tuple[int, int]]) -> None:
            if self.prune:
                prune_session(session, [(r, d) for r, d in ahead if 0 <= r < count], self.retention)

        with inference(self.device, self.config.dtype):
            self.model(inference_session=session, frame_idx=start)
            after([(start + 1, 1), *backward])
            for t in range(start + 1, count):
                result = self.result(self.model(inference_session=session, frame_idx=t), (height, width))
                masks[t], scores[t] = result.mask, result.score
                after([(t + 1, 1), *backward])
            for t in range(start - 1, -1, -1):
                out = self.model(inference_session=session, frame_idx=t, reverse=True)
                result = self.result(out, (height, width))
                masks[t], scores[t] = result.mask, result.score
                after([(t - 1, -1)])
        return masks, scores
