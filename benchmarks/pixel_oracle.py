"""The pixel pipeline end to end with oracle models: every model answers from the sample's ground truth.

Detector, SAM and SAM 2 are replaced by backends that recognise a frame by its pixels and answer what the
ground truth says (the gripper's box and mask, the target's box and mask at G and through the episode; a
target the truth does not see is "lost"). Everything else is the real flow: stages, proposals, the
detector's crop and its offset, filters, propagation bookkeeping, prompts, rows, card and montage. So this
measures the plumbing, not the models: with perfect models the output must equal the truth.

    .venv/bin/python -m benchmarks.pixel_oracle --schema fractal --out /tmp/pixel-oracle

prints the mask IoU against the truth at G and over all frames, the share of frames whose object_lost
flag agrees with the truth's visibility, and where the card and montage are.
"""

from __future__ import annotations

import argparse
import hashlib
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any

import cv2
import fsspec
import numpy as np
import pyarrow.parquet as pq

from annotators.detection import DETECTORS, Detections, DetectorConfig
from annotators.pixel import mask_box
from annotators.segmentation import SEGMENTERS, TRACKERS, MaskResult, SegmenterConfig
from datasets_cards import load_source_card
from datasets_cards.codecs import rle_to_mask
from pipelines.formats import open_reader
from pipelines.pixel.first_close import pixel_camera
from pipelines.sample.ground_truth import load_ground_truth

ORACLE = "oracle"


def _key(image: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(image).tobytes()).hexdigest()


class Truth:
    """Every frame of the sample's pixel camera, keyed by its pixels, with the truth's masks."""

    def __init__(self, schema: str):
        card = load_source_card(f"sample-{schema}")
        camera = pixel_camera(card, card.params.pixel)
        gt = load_ground_truth(schema)
        views = gt.views[gt.views.camera == camera].set_index(["episode_id", "frame_index"])
        self.frames: dict[str, tuple[str, int]] = {}  # pixels → (episode, frame)
        self.images: dict[str, np.ndarray] = {}  # episode → frames
        self.masks: dict[tuple[str, int, str], np.ndarray | None] = {}
        self.nouns: dict[str, list[str]] = {}  # target noun → its episodes (a noun may repeat)
        reader = open_reader(card, None)
        for episode in reader.read(0, reader.num_episodes()):
            frames = episode.frames[camera].load() if episode.frames[camera].encoded is None else \
                np.stack([episode.frames[camera][t] for t in range(episode.num_frames)])
            self.images[episode.episode_id] = frames
            for t, frame in enumerate(frames):
                self.frames[_key(frame)] = (episode.episode_id, t)
                view = views.loc[(episode.episode_id, t)] if (episode.episode_id, t) in views.index else None
                for kind in ("gripper", "target"):
                    rle = None if view is None else view[f"{kind}_rle"]
                    self.masks[(episode.episode_id, t, kind)] = rle_to_mask(
                        {"size": [int(view["height"]), int(view["width"])], "counts": rle}) \
                        if isinstance(rle, str) else None  # pandas gives NaN where the truth sees nothing
            self.nouns.setdefault(gt.episode(episode.episode_id).target, []).append(episode.episode_id)

    def where(self, image: np.ndarray) -> tuple[str, int]:
        return self.frames[_key(image)]

    def mask(self, image: np.ndarray, kind: str) -> np.ndarray | None:
        episode, t = self.where(image)
        return self.masks[(episode, t, kind)]


class OracleDetector:
    """The gripper's box on a full frame; the target's box on a crop of frame G (found by its pixels)."""

    def __init__(self, truth: Truth, gripper_phrase: str, config: DetectorConfig | None = None):
        self.truth, self.gripper_phrase, self.config = truth, gripper_phrase, config or DetectorConfig()

    def detect(self, images: Sequence[np.ndarray], phrases: Sequence[str]) -> list[Detections]:
        return [self._one(image, phrase) for image, phrase in zip(images, phrases, strict=True)]

    def _one(self, image: np.ndarray, phrase: str) -> Detections:
        if phrase == self.gripper_phrase:
            box = mask_box(self.truth.mask(image, "gripper")) if self.truth.mask(image, "gripper") is not None else None
            return Detections.empty() if box is None else Detections(box[None], [1.0], [0])
        crop = np.ascontiguousarray(image)
        candidates = [(e, t, frame) for e in self.truth.nouns.get(phrase.rstrip("."), [])
                      for t, frame in enumerate(self.truth.images[e])]
        for episode, t, frame in candidates:  # where this crop was cut from
            _, _, (x, y), _ = cv2.minMaxLoc(cv2.matchTemplate(frame, crop, cv2.TM_SQDIFF))
            h, w = crop.shape[:2]
            if np.array_equal(frame[y:y + h, x:x + w], crop):
                target = self.truth.masks[(episode, t, "target")]
                box = None if target is None else mask_box(target) - np.array([x, y, x, y], np.float32)
                return Detections.empty() if box is None else Detections(box[None], [1.0], [0])
        return Detections.empty()


class OracleSegmenter:
    def __init__(self, truth: Truth, config: SegmenterConfig | None = None):
        self.truth, self.config = truth, config or SegmenterConfig()

    def segment(self, images: Sequence[np.ndarray], boxes: Sequence[np.ndarray]) -> list[MaskResult]:
        out = []
        for image in images:
            mask = self.truth.mask(image, "target")
            out.append(MaskResult(np.zeros(image.shape[:2], bool) if mask is None else mask, 1.0))
        return out


class OracleTracker:
    """The truth's gripper mask on the stream; the truth's target masks through an episode (lost: score 0)."""

    def __init__(self, truth: Truth, config: SegmenterConfig | None = None):
        self.truth = truth

    def _gripper(self, frame: np.ndarray) -> MaskResult:
        mask = self.truth.mask(frame, "gripper")
        return MaskResult(np.zeros(frame.shape[:2], bool), 0.0) if mask is None else MaskResult(mask, 1.0)

    def seed(self, frame, box=None, mask=None) -> MaskResult:
        return self._gripper(frame)

    def step(self, frame) -> MaskResult:
        return self._gripper(frame)

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state) -> None:
        pass

    def propagate(self, frames: np.ndarray, start: int, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        masks, scores = [], []
        for frame in frames:
            target = self.truth.mask(frame, "target")
            masks.append(np.zeros(frame.shape[:2], bool) if target is None else target)
            scores.append(0.0 if target is None else 1.0)
        return np.stack(masks), np.asarray(scores, np.float32)


@contextmanager
def oracle_backends(schema: str) -> Iterator[Truth]:
    """The oracle registered as backend "oracle" of the detector, segmenter and tracker registries."""
    truth = Truth(schema)
    phrase = load_source_card(f"sample-{schema}").params.pixel.gripper_phrase
    with ExitStack() as stack:
        stack.enter_context(DETECTORS.override(ORACLE, lambda config=None, **_: OracleDetector(truth, phrase, config)))
        stack.enter_context(SEGMENTERS.override(ORACLE, lambda config=None, **_: OracleSegmenter(truth, config)))
        stack.enter_context(TRACKERS.override(ORACLE, lambda config=None, **_: OracleTracker(truth, config)))
        yield truth


def score(truth: Truth, rows: list[dict[str, Any]]) -> dict[str, float]:
    """Mask IoU against the truth at G and over every frame (lost rows score 1 when the truth sees nothing),
    and the share of rows whose object_lost flag agrees with the truth's visibility."""
    iou_g, iou_all, lost_agrees = [], [], []
    for row in rows:
        true = truth.masks[(row["episode_id"], row["frame_index"], "target")]
        mine = None if row["mask"] is None else rle_to_mask(row["mask"])
        lost_agrees.append(("object_lost" in row["flags"]) == (true is None))
        if true is None or mine is None:
            iou = float(true is None and mine is None)
        else:
            iou = float((true & mine).sum() / max(1, (true | mine).sum()))
        iou_all.append(iou)
        if row["frame_index"] == row["first_close_frame"]:
            iou_g.append(iou)
    return {"mask_iou_at_g": float(np.mean(iou_g)), "mask_iou_all_frames": float(np.mean(iou_all)),
            "lost_flag_agrees": float(np.mean(lost_agrees)), "rows": len(rows), "episodes": len(iou_g)}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    from pipelines.flows.annotate import annotate

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--schema", choices=("fractal", "bridge"), default="fractal")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    target = f"{args.out}/pixel/sample-{args.schema}"
    fs, root = fsspec.core.url_to_fs(target)
    if fs.exists(root):  # a fresh run: a resumed one would keep the units of an earlier oracle
        fs.rm(root, recursive=True)
    with oracle_backends(args.schema) as truth:
        manifest = annotate(source=f"sample-{args.schema}", pipeline="pixel", out=args.out,
                            options={"detector": ORACLE, "segmenter": ORACLE, "montage": 6})
    result = score(truth, pq.read_table(f"{target}/shards").to_pylist())
    print(f"pixel with oracle models on sample-{args.schema}: {result}")
    print(f"card: {target}/card.md, montage: {target}/montage.png; discards: {manifest.stats['discards']}")
    return result


if __name__ == "__main__":
    main()
