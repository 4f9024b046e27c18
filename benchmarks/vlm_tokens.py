"""VLM tokens per episode, counted the way Qwen3-VL counts them: our requests (keyframe-chosen
frames in contact sheets) vs a per-frame baseline (every camera at vlm_fps, one image per frame),
next to LA4VLA's 4.633 K input / 0.354 K output tokens per episode (la4vla.txt Appendix 7.4).

How it is counted (no endpoint is called): every request the segmenter would send is rendered
with Qwen3-VL's chat template (<|im_start|>role ... <|im_end|>, <|vision_start|> image
<|vision_end|>); text goes through Qwen's own BPE vocabulary (shipped in the `dashscope` package,
extra `vlm`: the 151,643 tokens Qwen2, 2.5 and 3 share, with their pre-tokenizer); each image goes
through transformers' Qwen2VLImageProcessor with Qwen3-VL's published preprocessor settings
(16-px patches merged 2×2, so one token per 32×32 px, at least 65,536 px per image). That is the
prompt a vLLM server running Qwen3-VL bills; DashScope's qwen3-vl-plus may resize images its own
way, and the segmenter's TokenLedger records what an endpoint really bills. Qwen2.5-VL's settings
(28-px tokens, a far smaller minimum) are shown beside them. Output tokens: the JSON answer the
kinematic segmenter's segments would make, same tokenizer, plus <|im_end|> (a real answer may
differ in length).

Every lever of issue 17 is measured alone against the settings before it, then the adopted settings
(VlmConfig's defaults): the uniform grid's rate, no grid inside resting stretches, tiles on the
32-px patch grid (at ×0.75 and ×0.5), the kinematic segments as the text cue, and the fixed
prefix first. `prefix` is the system message, which a prefix-caching server bills once. The
quality constraint is measured beside the tokens: how many of the ground truth's segment
boundaries have a frame sent within 0.5 s, on the committed sample and on benchmarks.la_split's
fit and report generations (the settings were chosen on the fit generations' coverage).

    .venv/bin/python -m benchmarks.vlm_tokens                      # the sample's episodes
    .venv/bin/python -m benchmarks.vlm_tokens --synthetic 20       # DROID-length (288-frame) episodes
"""

from __future__ import annotations

import argparse
import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from annotators.keyframes import episode_to_keyframes, keyframes_to_hints
from annotators.segments.base import Segment, SegmentationInput
from annotators.segments.vlm import VlmConfig, VlmSegmenter
from annotators.segments.vlm.frames import episode_to_windows
from datasets_cards.params.la import KeyframeParams, LaParams

PAPER_INPUT, PAPER_OUTPUT = 4633, 354
DROID_MEAN_FRAMES = 288  # la4vla.txt Table 3: 287.83 frames per original episode
VISION_MARKERS = 2  # <|vision_start|>, <|vision_end|> around each image's pad tokens


@dataclass(frozen=True)
class ImageSettings:
    """A Qwen-VL preprocessor_config.json, the fields that decide the token count."""

    name: str
    patch_size: int
    merge_size: int
    min_pixels: int
    max_pixels: int


# From the models' preprocessor_config.json (Qwen/Qwen3-VL-*-Instruct, Qwen/Qwen2.5-VL-*-Instruct).
QWEN3_VL = ImageSettings("Qwen3-VL", patch_size=16, merge_size=2, min_pixels=65_536, max_pixels=16_777_216)
QWEN25_VL = ImageSettings("Qwen2.5-VL", patch_size=14, merge_size=2, min_pixels=3_136, max_pixels=12_845_056)


@dataclass(frozen=True)
class RequestTokens:
    text: int  # chat template and text parts
    image: int  # image pad tokens and their markers
    images: int

    @property
    def total(self) -> int:
        return self.text + self.image


class QwenTokenCounter:
    """Prompt tokens of OpenAI-style chat requests as Qwen-VL's tokenizer and image processor count them."""

    def __init__(self, images: ImageSettings = QWEN3_VL) -> None:
        try:
            from dashscope import get_tokenizer
        except ImportError as e:
            raise ImportError("counting with Qwen's tokenizer needs the `vlm` extra: "
                              "pip install -c constraints.txt -e '.[vlm]'") from e
        from transformers import Qwen2VLImageProcessor

        self.settings = images
        self._tokenizer = get_tokenizer("qwen-plus")  # the vocabulary file ships with the package
        self._processor = Qwen2VLImageProcessor(
            size={"shortest_edge": images.min_pixels, "longest_edge": images.max_pixels},
            patch_size=images.patch_size, temporal_patch_size=2, merge_size=images.merge_size)

    def text(self, text: str) -> int:
        return len(self._tokenizer.encode(text))

    def image(self, rgb: np.ndarray) -> int:
        """Tokens of one H×W×3 image: its pad tokens after the processor's resize, plus the markers."""
        grid = self._processor(images=[rgb], return_tensors="np")["image_grid_thw"][0]
        return int(np.prod(grid)) // self.settings.merge_size**2 + VISION_MARKERS

    def request(self, request: dict) -> RequestTokens:
        """Tokens of the prompt `request` renders to, up to and including the assistant turn's header."""
        # Text between images is tokenized piece by piece: BPE never merges across the
        # special tokens that surround an image.
        pieces, image, images = [""], 0, 0
        for message in request["messages"]:
            content = message["content"]
            parts = [{"type": "text", "text": content}] if isinstance(content, str) else content
            pieces[-1] += f"<|im_start|>{message['role']}\n"
            for part in parts:
                if part["type"] == "text":
                    pieces[-1] += part["text"]
                else:
                    image += self.image(data_url_to_rgb(part["image_url"]["url"]))
                    images += 1
                    pieces.append("")
            pieces[-1] += "<|im_end|>\n"
        pieces[-1] += "<|im_start|>assistant\n"
        return RequestTokens(sum(self.text(p) for p in pieces if p), image, images)


def data_url_to_rgb(url: str) -> np.ndarray:
    jpeg = base64.b64decode(url.split(",", 1)[1])
    return cv2.cvtColor(cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


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
    from datasets_cards import load_source_card
    from pipelines.formats import open_reader

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


def answer_tokens(segments: Sequence[Segment], fps: float, counter: QwenTokenCounter) -> int:
    """The JSON answer these segments would be, plus the <|im_end|> that closes it."""
    answer = [{"subaction": s.subaction, "instruction": s.instruction, "start": round(s.start / fps, 2),
               "end": round(s.end / fps, 2)} for s in segments]
    return counter.text(json.dumps(answer)) + 1


def prefix_tokens(request: dict, counter: QwenTokenCounter) -> int:
    """Tokens of the request's fixed prefix: the system message, which a prefix-caching server
    (vLLM --enable-prefix-caching, DashScope) bills once and then serves from its cache."""
    first = request["messages"][0]
    if first["role"] != "system" or not isinstance(first["content"], str):
        return 0
    return counter.text(f"<|im_start|>system\n{first['content']}<|im_end|>\n")


def shown_frames(item: SegmentationInput, segmenter: VlmSegmenter) -> list[int]:
    """Every frame index any window of the episode sends (the same for every camera)."""
    c = segmenter.config
    shown: set[int] = set()
    for start, end in episode_to_windows(item.num_frames, item.fps, c.window_s, c.window_overlap_s):
        shown.update(segmenter.frame_indices(item, start, end))
    return sorted(shown)


def episode_row(item: SegmentationInput, segmenter: VlmSegmenter, counters: Sequence[QwenTokenCounter]) -> dict:
    """Tokens of one episode under each counter: our requests, the per-frame baseline, the answer."""
    config = segmenter.config
    requests = segmenter.window_requests(item)
    step = max(1, round(item.fps / config.vlm_fps))
    per_frame = len(range(0, item.num_frames, step)) * len(item.frames)
    blank = np.zeros((config.frame_size[1], config.frame_size[0], 3), np.uint8)
    shown = len(shown_frames(item, segmenter)) * len(item.frames)
    row: dict = {"frames": item.num_frames, "shown": shown, "base_images": per_frame,
                 "output": answer_tokens(segmenter.fallback.segment(item), item.fps, counters[0])}
    for counter in counters:
        ours = [counter.request(r) for r in requests]
        text, name = sum(o.text for o in ours), counter.settings.name
        row["images"] = sum(o.images for o in ours)
        row[f"text {name}"] = text
        row[f"ours {name}"] = text + sum(o.image for o in ours)
        row[f"prefix {name}"] = sum(prefix_tokens(r, counter) for r in requests)
        # baseline: the same text, one frame_size image per camera and frame at vlm_fps
        row[f"base {name}"] = text + per_frame * counter.image(blank)
    return row


def boundary_coverage(items: Sequence[SegmentationInput], truth: dict, segmenter: VlmSegmenter,
                      within_s: float = 0.5) -> tuple[float, float]:
    """(share of the ground truth's segment boundaries with a frame sent within ±within_s, the
    largest distance in s from a true boundary to the nearest frame sent)."""
    distances = []
    for item in items:
        shown = np.asarray(shown_frames(item, segmenter), dtype=float)
        for b in truth["boundaries"].get(item.episode_id, []):
            distances.append(float(np.abs(shown - b).min()) / item.fps)
    if not distances:
        return 1.0, 0.0
    d = np.asarray(distances)
    return float(np.mean(d <= within_s + 1e-9)), float(d.max())


# One lever at a time against today's settings, then what the segmenter adopts (VlmConfig's defaults
# after issue 17). Each entry: (name, VlmConfig overrides).
LEVERS: list[tuple[str, dict]] = [
    ("before: keyframes ±0.5 s + 1 fps grid, 4×3 at ×0.75", dict(
        uniform_fps=1.0, skip_static=False, patch_px=0, tile_scale=0.75, kinematic_cue=False, prefix_first=False)),
    ("grid 0.5 fps", dict(
        uniform_fps=0.5, skip_static=False, patch_px=0, tile_scale=0.75, kinematic_cue=False, prefix_first=False)),
    ("no grid inside resting stretches", dict(
        uniform_fps=1.0, skip_static=True, patch_px=0, tile_scale=0.75, kinematic_cue=False, prefix_first=False)),
    ("tiles on the 32-px grid, balanced sheets, ×0.75", dict(
        uniform_fps=1.0, skip_static=False, patch_px=32, tile_scale=0.75, kinematic_cue=False, prefix_first=False)),
    ("tiles on the 32-px grid, balanced sheets, ×0.5", dict(
        uniform_fps=1.0, skip_static=False, patch_px=32, tile_scale=0.5, kinematic_cue=False, prefix_first=False)),
    ("kinematic segments as the cue (frames on their boundaries)", dict(
        uniform_fps=1.0, skip_static=False, patch_px=0, tile_scale=0.75, kinematic_cue=True, prefix_first=False)),
    ("fixed prefix first (system message), times listed once", dict(
        uniform_fps=1.0, skip_static=False, patch_px=0, tile_scale=0.75, kinematic_cue=False, prefix_first=True)),
    ("adopted (VlmConfig defaults)", {}),
]


def lever_table(items: Sequence[SegmentationInput], coverage: dict[str, tuple[list[SegmentationInput], dict]],
                counters: Sequence[QwenTokenCounter], frame_size: tuple[int, int], vlm_fps: float,
                levers: Sequence[tuple[str, dict]] = LEVERS) -> list[dict]:
    """Mean tokens per episode on `items`, and boundary coverage on each coverage set, for each lever."""
    from annotators.segments.kinematic import KinematicSegmenter

    out = []
    for name, overrides in levers:
        config = VlmConfig(base_urls=("http://counting.invalid/v1",), api_key="unused", vlm_fps=vlm_fps,
                           frame_size=frame_size, **overrides)
        segmenter = VlmSegmenter(config, KinematicSegmenter())
        rows = [episode_row(item, segmenter, counters) for item in items]
        mean: dict = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
        mean["name"] = name
        mean["coverage"] = {set_name: boundary_coverage(cov_items, truth, segmenter)
                            for set_name, (cov_items, truth) in coverage.items()}
        out.append(mean)
    return out


def state_items(name: str, schema: str = "droid") -> tuple[list[SegmentationInput], dict]:
    """A set of benchmarks.la_split (fit, report) as camera-less items, keyframes from the card's
    la params, with its ground truth: enough to measure which frames would be sent."""
    from benchmarks.la_split import set_data
    from datasets_cards import load_source_card
    from pipelines.sample.ground_truth import CARD_NAMES

    la = load_source_card(CARD_NAMES[schema]).params.la
    data, truth = set_data(name, schema)
    items = []
    for eid, fps, state, gripper in data:
        kfs = episode_to_keyframes(state, gripper, fps, la.keyframes)
        items.append(SegmentationInput(eid, "", fps, state, gripper, keyframe_hints=keyframes_to_hints(kfs, fps),
                                       keyframes=[k.frame for k in kfs]))
    return items, truth


def sample_truth(source: str, items: Sequence[SegmentationInput]) -> dict | None:
    """The ground truth's boundaries of a sample card's episodes (None for a card without ground truth)."""
    from benchmarks.fidelity import truth_predictions
    from pipelines.sample.ground_truth import CARD_NAMES, load_ground_truth

    schema = {v: k for k, v in CARD_NAMES.items()}.get(source)
    if schema is None:
        return None
    truth = truth_predictions(load_ground_truth(schema))
    ids = {item.episode_id for item in items}
    return {"boundaries": {e: b for e, b in truth["boundaries"].items() if e in ids}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", default="sample-droid", help="source card to read (the coverage check needs a sample card)")
    parser.add_argument("--episodes", type=int, default=20, help="at most this many episodes of --source")
    parser.add_argument("--synthetic", type=int, default=0, metavar="N",
                        help="count tokens on N synthetic DROID-like episodes of 288 frames (DROID's mean length) "
                             "instead; boundary coverage is still measured on --source")
    parser.add_argument("--adopted-only", action="store_true", help="only the adopted settings, not every lever")
    parser.add_argument("--coverage-sets", nargs="*", default=["fit", "report"], choices=("fit", "report"),
                        help="benchmarks.la_split sets (DROID schema) to measure boundary coverage on, "
                             "besides the committed sample (generated on first use)")
    args = parser.parse_args()
    sample = sample_items(args.source, args.episodes)
    truth = sample_truth(args.source, sample)
    coverage = {}
    for name in args.coverage_sets:
        try:
            coverage[name] = state_items(name)
        except ImportError as e:  # generating the split's sets needs the `sim` extra (pybullet)
            print(f"boundary coverage on the {name} generations skipped: {e}")
    if truth is not None:
        coverage["sample"] = (sample, truth)
    if args.synthetic:
        items, origin = synthetic_items(args.synthetic), "synthetic DROID-like episodes"
    else:
        items, origin = sample, f"source card {args.source!r}"

    la = LaParams()
    counters = [QwenTokenCounter(QWEN3_VL), QwenTokenCounter(QWEN25_VL)]
    levers = LEVERS[-1:] if args.adopted_only else LEVERS
    table = lever_table(items, coverage, counters, tuple(la.vlm_frame_size), la.vlm_fps, levers)
    names = [c.settings.name for c in counters]
    adopted = VlmConfig(base_urls=("http://counting.invalid/v1",), api_key="unused")
    print("VLM prompt tokens per episode, by Qwen's tokenizer and image processor (no endpoint called)")
    print(f"episodes: {len(items)} from {origin}; mean {table[0]['frames']:.0f} frames, {len(items[0].frames)} cameras; "
          f"boundary coverage on {len(sample)} episodes of {args.source!r}")
    print(f"adopted: uniform_fps={adopted.uniform_fps}, skip_static={adopted.skip_static}, patch_px={adopted.patch_px}, "
          f"tile ×{adopted.tile_scale}, sheets ≤{adopted.sheet_columns}×{adopted.sheet_rows}, "
          f"kinematic_cue={adopted.kinematic_cue}, prefix_first={adopted.prefix_first}")
    n0, n1 = names
    print(f"{'lever':<60}{'in ' + n0:>13}{'prefix':>8}{'in-prefix':>10}{'in ' + n1:>15}{'out':>5}"
          f"{'frames':>8}{'images':>8}" + "".join(f"{'±0.5s ' + k:>14}{'max s':>7}" for k in coverage))
    for row in table:
        cov = "".join(f"{share:>14.3f}{far:>7.2f}" for share, far in row["coverage"].values())
        print(f"{row['name'][:59]:<60}{row['ours ' + n0]:>13.0f}{row['prefix ' + n0]:>8.0f}"
              f"{row['ours ' + n0] - row['prefix ' + n0]:>10.0f}{row['ours ' + n1]:>15.0f}{row['output']:>5.0f}"
              f"{row['shown']:>8.0f}{row['images']:>8.1f}" + cov)
    print(f"{'per-frame baseline at vlm_fps (first row text)':<60}{table[0]['base ' + n0]:>13.0f}{'':>8}{'':>10}"
          f"{table[0]['base ' + n1]:>15.0f}{table[0]['output']:>5.0f}{table[0]['base_images']:>8.0f}")
    print(f"{'LA4VLA reported (Qwen3-VL-Plus)':<60}{PAPER_INPUT:>13}{'':>8}{'':>10}{'':>15}{PAPER_OUTPUT:>5}")
    print("in-prefix: input a prefix-caching server bills anew per request; frames: frames sent per episode, all "
          "cameras; ±0.5s SET: share of the ground truth's segment boundaries with a frame sent within 0.5 s "
          "(DROID schema; fit and report: benchmarks.la_split's generations); max s: the farthest one from a frame sent")


if __name__ == "__main__":
    main()
