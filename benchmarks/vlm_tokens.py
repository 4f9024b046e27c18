"""Estimated VLM tokens per episode: our request (keyframe-chosen frames in contact sheets) vs a
per-frame baseline (every camera at vlm_fps, one image per frame), next to LA4VLA's reported
4.633 K input / 0.354 K output tokens per episode (la4vla.txt Appendix 7.4).

ESTIMATES, NOT MEASUREMENTS: no endpoint is called. Image tokens follow the Qwen2.5-VL rule
(each side rounded to a multiple of 28 px, 28×28 patches merged 2×2 → (H/28)·(W/28) tokens,
+2 for the vision start/end markers); Qwen3-VL's 32-px rule is shown too. Text tokens are
counted with tiktoken (o200k_base) when it is installed and usable offline, else chars/4.
Output tokens are estimated from the JSON the kinematic segmenter's segments would make.
With a live endpoint the segmenter's TokenLedger records the API's real usage instead.

    .venv/bin/python benchmarks/vlm_tokens.py [--source sample-droid] [--episodes 20]
"""

from __future__ import annotations

import argparse
import base64
import json
import math
from collections.abc import Sequence

import cv2
import numpy as np

from annotators.keyframes import episode_to_keyframes, keyframes_to_hints
from annotators.segments.base import Segment, SegmentationInput
from annotators.segments.vlm import VlmConfig, VlmSegmenter
from annotators.segments.vlm.frames import keyframes_to_frame_indices
from datasets_cards.source import KeyframeParams, LaParams

PAPER_INPUT, PAPER_OUTPUT = 4633, 354
DROID_MEAN_FRAMES = 288  # la4vla.txt Table 3: 287.83 frames per original episode
VISION_MARKERS = 2  # <|vision_start|>, <|vision_end|>


def image_tokens(width: int, height: int, unit: int = 28, min_pixels: int = 56 * 56) -> int:
    """Qwen-VL smart-resize: sides rounded to `unit`, ≥ min_pixels; one token per unit×unit block."""
    h, w = max(unit, round(height / unit) * unit), max(unit, round(width / unit) * unit)
    if h * w < min_pixels:
        scale = math.sqrt(min_pixels / (height * width))
        h, w = math.ceil(height * scale / unit) * unit, math.ceil(width * scale / unit) * unit
    return (h // unit) * (w // unit) + VISION_MARKERS


def _text_counter():
    try:
        import tiktoken  # optional: its vocabularies are downloaded on first use

        enc = tiktoken.get_encoding("o200k_base")
        return lambda text: len(enc.encode(text)), "tiktoken o200k_base"
    except Exception:  # not installed or no vocabulary offline
        return lambda text: math.ceil(len(text) / 4), "chars/4"


def request_tokens(request: dict, count_text, unit: int) -> tuple[int, int, int]:
    """(text tokens, image tokens, images) of one chat request."""
    text = image = images = 0
    for message in request["messages"]:
        content = message["content"]
        parts = [{"type": "text", "text": content}] if isinstance(content, str) else content
        for part in parts:
            if part["type"] == "text":
                text += count_text(part["text"])
            else:
                jpeg = base64.b64decode(part["image_url"]["url"].split(",", 1)[1])
                h, w = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR).shape[:2]
                image += image_tokens(w, h, unit)
                images += 1
    return text, image, images


class _SyntheticFrames:
    """Lazy H×W×3 frames: a blob drifting over a gradient (pixel content does not change the count)."""

    def __init__(self, n: int, size: tuple[int, int], seed: int) -> None:
        self.n, (self.w, self.h), self.seed = n, size, seed

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> np.ndarray:
        img = np.zeros((self.h, self.w, 3), np.uint8)
        img[..., 0] = np.linspace(40, 200, self.w, dtype=np.uint8)[None, :]
        cx = int((i * 3 + self.seed * 17) % self.w)
        cv2.circle(img, (cx, self.h // 2), self.h // 6, (30, 180, 60), -1)
        return img


def synthetic_items(count: int, fps: float = 15.0, n: int = DROID_MEAN_FRAMES) -> list[SegmentationInput]:
    """DROID-like pick-and-place episodes: 3 cameras at 320×180, pauses at grasp and place."""
    items = []
    for k in range(count):
        rng = np.random.default_rng(k)
        # waypoints (frame, xyz): approach, pause, lift, transport, lower, pause, retreat
        keys = [(0, (0.4, 0.0, 0.4)), (60, (0.5, 0.1, 0.1)), (80, (0.5, 0.1, 0.1)), (120, (0.5, 0.1, 0.3)),
                (200, (0.5, -0.2, 0.3)), (235, (0.5, -0.2, 0.12)), (255, (0.5, -0.2, 0.12)), (n, (0.4, -0.1, 0.4))]
        frames_at, xyz = np.array([f for f, _ in keys]), np.array([p for _, p in keys])
        pos = np.stack([np.interp(np.arange(n), frames_at, xyz[:, d]) for d in range(3)], 1)
        arm = np.concatenate([pos + rng.normal(0, 1e-4, pos.shape), np.zeros((n, 3))], 1)
        gripper = np.zeros(n)
        gripper[70:245] = 1.0
        keyframes = episode_to_keyframes(arm, gripper, fps, KeyframeParams())
        cams = {"exterior_1_left": "exterior", "exterior_2_left": "exterior", "wrist_left": "wrist"}
        items.append(SegmentationInput(
            episode_id=f"synthetic-{k}", task="put the cup on the plate", fps=fps, arm_state=arm, gripper=gripper,
            keyframe_hints=keyframes_to_hints(keyframes, fps), keyframes=[kf.frame for kf in keyframes],
            frames={c: (v, _SyntheticFrames(n, (320, 180), k + j)) for j, (c, v) in enumerate(cams.items())}))
    return items


def sample_items(source: str, count: int) -> list[SegmentationInput]:
    """The first `count` episodes of a source card, with keyframes from its la params."""
    from datasets_cards.registry import load_source_card
    from pipelines.readers import open_reader

    card = load_source_card(source)
    la = card.params.la
    items = []
    for episode in open_reader(card).read(0, count):
        if not hasattr(episode, "arm_state"):  # a Quarantined record
            continue
        kfs = episode_to_keyframes(episode.arm_state, episode.gripper, episode.fps, la.keyframes)
        items.append(SegmentationInput(
            episode_id=episode.episode_id, task=episode.instruction, fps=episode.fps, arm_state=episode.arm_state,
            gripper=episode.gripper, keyframe_hints=keyframes_to_hints(kfs, episode.fps),
            keyframes=[k.frame for k in kfs],
            frames={cam: (card.cameras[cam].view, seq) for cam, seq in episode.frames.items()}))
    if not items:
        raise RuntimeError(f"no readable episodes in {source}")
    return items


def answer_tokens(segments: Sequence[Segment], fps: float, count_text) -> int:
    answer = [{"subaction": s.subaction, "instruction": s.instruction, "start": round(s.start / fps, 2),
               "end": round(s.end / fps, 2)} for s in segments]
    return count_text(json.dumps(answer))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", default="sample-droid", help="source card to read (synthetic if unreadable)")
    parser.add_argument("--episodes", type=int, default=20)
    args = parser.parse_args()
    try:
        items, origin = sample_items(args.source, args.episodes), f"source card {args.source!r}"
    except Exception as e:  # the sample may not be generated yet
        items = synthetic_items(args.episodes)
        origin = f"synthetic DROID-like episodes ({args.source} unavailable: {type(e).__name__}: {e})"

    from annotators.segments.kinematic import KinematicSegmenter

    kinematic = KinematicSegmenter()
    la = LaParams()
    config = VlmConfig(base_urls=("http://estimate.invalid/v1",), api_key="unused", vlm_fps=la.vlm_fps,
                       frame_size=tuple(la.vlm_frame_size))
    segmenter = VlmSegmenter(config, kinematic)
    count_text, text_method = _text_counter()
    rows = []
    for item in items:
        requests = segmenter.window_requests(item)
        ours = [request_tokens(r, count_text, 28) for r in requests]
        ours32 = [request_tokens(r, count_text, 32) for r in requests]
        text = sum(o[0] for o in ours)
        # baseline: the same text, every camera at vlm_fps, one vlm_frame_size image per frame
        step = max(1, round(item.fps / la.vlm_fps))
        per_frame = len(range(0, item.num_frames, step)) * len(item.frames)
        w, h = la.vlm_frame_size
        shown = len(keyframes_to_frame_indices(
            item.num_frames, item.fps, item.keyframes, vlm_fps=config.vlm_fps, uniform_fps=config.uniform_fps,
            keyframe_offset_s=config.keyframe_offset_s)) * len(item.frames)
        rows.append({
            "frames": item.num_frames, "text": text, "ours_img": sum(o[1] for o in ours),
            "ours_img32": sum(o[1] for o in ours32), "images": sum(o[2] for o in ours), "shown": shown,
            "base_img": per_frame * image_tokens(w, h, 28), "base_img32": per_frame * image_tokens(w, h, 32),
            "base_images": per_frame, "output": answer_tokens(kinematic.segment(item), item.fps, count_text),
        })
    mean = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
    print(f"VLM token ESTIMATES per episode (no live endpoint; Qwen-VL image rule, text by {text_method})")
    print(f"episodes: {len(rows)} from {origin}; mean {mean['frames']:.0f} frames, {len(items[0].frames)} cameras")
    print(f"settings: vlm_fps={config.vlm_fps}, frame {config.frame_size}, uniform_fps={config.uniform_fps}, "
          f"keyframe ±{config.keyframe_offset_s}s, sheets {config.sheet_columns}×{config.sheet_rows} "
          f"tiles at ×{config.tile_scale}")
    print(f"{'':38}{'input (28px rule)':>18}{'input (32px rule)':>18}{'output':>9}")
    print(f"{'ours: keyframe frames in contact sheets':38}{mean['text'] + mean['ours_img']:>18.0f}"
          f"{mean['text'] + mean['ours_img32']:>18.0f}{mean['output']:>9.0f}"
          f"   ({mean['shown']:.0f} frames in {mean['images']:.1f} images)")
    print(f"{'per-frame baseline at vlm_fps':38}{mean['text'] + mean['base_img']:>18.0f}"
          f"{mean['text'] + mean['base_img32']:>18.0f}{mean['output']:>9.0f}"
          f"   ({mean['base_images']:.0f} images)")
    print(f"{'LA4VLA reported (Qwen3-VL-Plus)':38}{PAPER_INPUT:>18}{'':>18}{PAPER_OUTPUT:>9}")
    print(f"text part of our prompt: {mean['text']:.0f} tokens per episode")


if __name__ == "__main__":
    main()
