"""Score pipeline outputs against the sample's ground truth (pipelines/sample/ground_truth.py).

Every metric takes plain dicts keyed by episode id, so any pipeline can plug its
predictions in. Episodes are those of the truth: an episode the prediction
lacks counts as all wrong (missed), an episode only the prediction has adds
false positives to keyframes and is otherwise ignored.

Metrics
- keyframes: precision / recall / F1 of predicted keyframe frames, matched one
  to one to true ones within ±`tolerance` frames (closest pairs first). Frames
  are ints, or (frame, kind) pairs, in which case only equal kinds match.
- boundary error: for every true segment boundary, the distance in frames to
  the nearest predicted boundary (median and 90th percentile; an episode with
  no predicted boundary scores its frame count for each true one).
- primitive accuracy: frame-wise; the share of true frames whose predicted
  label equals the true phase (missing frames count as wrong). Segment
  predictions turn into frame labels with `segments_to_labels`.
- first gripper-close: the share of episodes whose predicted first-close frame
  equals the true one exactly (None = "no close" matches None).
- box IoU: mean IoU over frames where the truth has a box (a missing or NaN
  prediction scores 0); boxes are pixel xyxy.
- mask IoU: the same for masks, given as COCO RLE dicts/strings or boolean arrays.

CLI: ``python -m benchmarks.fidelity --schema droid`` scores the ground truth
against itself and against a copy shifted by `--shift` frames (a sanity table:
1.0 and lower); ``--predictions preds.json`` scores a pipeline's output
(keys: keyframes, boundaries, labels, first_close, boxes/<camera>/<kind>,
masks/<camera>/<kind>, each mapping episode id → values).
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

Keyframe = int | tuple[int, str]


@dataclass(frozen=True)
class PRF:
    precision: float
    recall: float
    f1: float
    true_positives: int
    predicted: int
    actual: int


def _split(frame: Keyframe) -> tuple[int, str | None]:
    if isinstance(frame, (tuple, list)):
        return int(frame[0]), str(frame[1])
    return int(frame), None


def match_count(predicted: Sequence[Keyframe], actual: Sequence[Keyframe], tolerance: int) -> int:
    """One-to-one matches within ±tolerance (closest pairs first; kinds must agree when given)."""
    pred, true = [_split(p) for p in predicted], [_split(t) for t in actual]
    pairs = sorted(
        (abs(p[0] - t[0]), i, j)
        for i, p in enumerate(pred)
        for j, t in enumerate(true)
        if abs(p[0] - t[0]) <= tolerance and p[1] == t[1]
    )
    used_p, used_t = set(), set()
    for _, i, j in pairs:
        if i not in used_p and j not in used_t:
            used_p.add(i)
            used_t.add(j)
    return len(used_p)


def keyframe_scores(
    predicted: Mapping[str, Sequence[Keyframe]], actual: Mapping[str, Sequence[Keyframe]], tolerance: int = 2
) -> PRF:
    """Precision / recall / F1 over all episodes (micro-averaged). Empty on both sides scores 1.0."""
    tp = n_pred = n_true = 0
    for eid in set(actual) | set(predicted):
        p, t = predicted.get(eid, []), actual.get(eid, [])
        tp += match_count(p, t, tolerance)
        n_pred += len(p)
        n_true += len(t)
    precision = tp / n_pred if n_pred else float(n_true == 0)
    recall = tp / n_true if n_true else float(n_pred == 0)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return PRF(precision, recall, f1, tp, n_pred, n_true)


def boundary_errors(
    predicted: Mapping[str, Sequence[int]], actual: Mapping[str, Sequence[int]], num_frames: Mapping[str, int]
) -> np.ndarray:
    """Per true boundary: frames to the nearest predicted boundary of the same episode."""
    errors: list[float] = []
    for eid, bounds in actual.items():
        pred = np.asarray(predicted.get(eid, []), dtype=float)
        for b in bounds:
            errors.append(float(np.abs(pred - b).min()) if pred.size else float(num_frames.get(eid, 0)))
    return np.asarray(errors, dtype=float)


def error_summary(errors: np.ndarray) -> tuple[float, float]:
    """(median, 90th percentile) of boundary errors; (0, 0) when there is no true boundary."""
    if errors.size == 0:
        return 0.0, 0.0
    return float(np.median(errors)), float(np.quantile(errors, 0.9, method="inverted_cdf"))


def segments_to_labels(segments: Sequence[tuple[str, int, int]], num_frames: int, fill: str = "") -> list[str]:
    """(label, start, end inclusive) segments → one label per frame (`fill` where none covers)."""
    labels = [fill] * num_frames
    for label, start, end in segments:
        for i in range(max(0, start), min(num_frames, end + 1)):
            labels[i] = label
    return labels


def label_accuracy(predicted: Mapping[str, Sequence[str]], actual: Mapping[str, Sequence[str]]) -> float:
    """Frame-wise accuracy over all true frames (1.0 when there are none)."""
    correct = total = 0
    for eid, truth in actual.items():
        pred = list(predicted.get(eid, []))
        total += len(truth)
        correct += sum(1 for p, t in zip(pred, truth) if p == t)
    return correct / total if total else 1.0


def first_close_match_rate(predicted: Mapping[str, int | None], actual: Mapping[str, int | None]) -> float:
    """Share of true episodes whose predicted first gripper-close frame is exactly right."""
    if not actual:
        return 1.0
    hits = sum(1 for eid, frame in actual.items() if _as_frame(predicted.get(eid, -1)) == _as_frame(frame))
    return hits / len(actual)


def _as_frame(value: Any) -> int | None | str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, (int, np.integer, float)):
        return int(value)
    return "missing"


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """IoU of two xyxy boxes (0 when either is degenerate)."""
    ax0, ay0, ax1, ay1 = a
    bx0, by0, bx1, by1 = b
    inter = max(0.0, min(ax1, bx1) - max(ax0, bx0)) * max(0.0, min(ay1, by1) - max(ay0, by0))
    union = (ax1 - ax0) * (ay1 - ay0) + (bx1 - bx0) * (by1 - by0) - inter
    return inter / union if union > 0 else 0.0


def _valid_box(box: Any) -> bool:
    return box is not None and len(box) == 4 and not np.any(np.isnan(np.asarray(box, dtype=float)))


def mean_box_iou(predicted: Mapping[str, Sequence[Any]], actual: Mapping[str, Sequence[Any]]) -> float:
    """Mean IoU over frames with a true box; NaN when the truth has none."""
    scores = []
    for eid, boxes in actual.items():
        pred = list(predicted.get(eid, []))
        for i, truth in enumerate(boxes):
            if not _valid_box(truth):
                continue
            guess = pred[i] if i < len(pred) else None
            scores.append(box_iou(guess, truth) if _valid_box(guess) else 0.0)
    return float(np.mean(scores)) if scores else float("nan")


def _rle(mask: Any, size: tuple[int, int] | None) -> dict | None:
    if mask is None or (isinstance(mask, float) and math.isnan(mask)):  # pandas reads a missing RLE as NaN
        return None
    if isinstance(mask, np.ndarray):
        return mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    if isinstance(mask, str):
        if size is None:
            raise ValueError("an RLE counts string needs the image size (height, width)")
        return {"size": list(size), "counts": mask.encode("ascii")}
    return mask


def mean_mask_iou(
    predicted: Mapping[str, Sequence[Any]], actual: Mapping[str, Sequence[Any]], size: tuple[int, int] | None = None
) -> float:
    """Mean mask IoU over frames with a true mask; masks are RLE dicts, RLE strings (+ size) or bool arrays."""
    scores = []
    for eid, masks in actual.items():
        pred = list(predicted.get(eid, []))
        for i, truth in enumerate(masks):
            t = _rle(truth, size)
            if t is None:
                continue
            p = _rle(pred[i], size) if i < len(pred) else None
            scores.append(float(mask_utils.iou([p], [t], [0])[0][0]) if p is not None else 0.0)
    return float(np.mean(scores)) if scores else float("nan")


# -- ground truth → the dicts the metrics take ------------------------------------------------
def truth_predictions(gt) -> dict[str, Any]:
    """The ground truth of a `GroundTruth` in prediction format (what a perfect pipeline outputs)."""
    episodes = [gt.episode(eid) for eid in gt.episode_ids]
    out: dict[str, Any] = {
        "keyframes": {
            e.episode_id: sorted(
                [(k, "static") for k in e.static_keyframes]
                + [(k, "gripper_close") for k in e.gripper_close_frames]
                + [(k, "gripper_open") for k in e.gripper_open_frames]
            )
            for e in episodes
        },
        "boundaries": {e.episode_id: list(e.boundaries) for e in episodes},
        "labels": {e.episode_id: list(e.phases) for e in episodes},
        "first_close": {e.episode_id: e.first_close_frame for e in episodes},
        "num_frames": {e.episode_id: e.num_frames for e in episodes},
        "boxes": {},
        "masks": {},
    }
    for camera in sorted(gt.views["camera"].unique()):
        views = gt.views[gt.views["camera"] == camera].sort_values(["episode_id", "frame_index"])
        grouped = {eid: group for eid, group in views.groupby("episode_id", sort=False)}
        out["boxes"][camera] = {
            kind: {eid: [None if b is None else list(b) for b in g[f"{kind}_box"]] for eid, g in grouped.items()}
            for kind in ("target", "gripper", "destination")
        }
        out["masks"][camera] = {
            kind: {eid: list(g[f"{kind}_rle"]) for eid, g in grouped.items()} for kind in ("target", "gripper")
        }
        out.setdefault("image_size", {})[camera] = (int(views["height"].iloc[0]), int(views["width"].iloc[0]))
    return out


def shifted(truth: Mapping[str, Any], shift: int) -> dict[str, Any]:
    """The truth with every temporal prediction `shift` frames late (a degraded prediction)."""
    out = dict(truth)
    out["keyframes"] = {e: [(f + shift, k) for f, k in v] for e, v in truth["keyframes"].items()}
    out["boundaries"] = {e: [b + shift for b in v] for e, v in truth["boundaries"].items()}
    out["labels"] = {e: [v[0]] * shift + list(v[:-shift] if shift else v) for e, v in truth["labels"].items()}
    out["first_close"] = {e: None if f is None else f + shift for e, f in truth["first_close"].items()}
    for media in ("boxes", "masks"):
        out[media] = {
            cam: {kind: {e: [v[0]] * shift + list(v[:-shift] if shift else v) for e, v in per.items()} for kind, per in kinds.items()}
            for cam, kinds in truth[media].items()
        }
    return out


def score(predicted: Mapping[str, Any], truth: Mapping[str, Any], tolerance: int = 2) -> dict[str, float]:
    """Every metric the prediction has inputs for, as one flat dict (name → value)."""
    row: dict[str, float] = {}
    if "keyframes" in predicted:
        prf = keyframe_scores(predicted["keyframes"], truth["keyframes"], tolerance)
        row.update({"keyframe_precision": prf.precision, "keyframe_recall": prf.recall, "keyframe_f1": prf.f1})
    if "boundaries" in predicted:
        median, p90 = error_summary(boundary_errors(predicted["boundaries"], truth["boundaries"], truth["num_frames"]))
        row.update({"boundary_error_median": median, "boundary_error_p90": p90})
    if "labels" in predicted:
        row["primitive_accuracy"] = label_accuracy(predicted["labels"], truth["labels"])
    if "first_close" in predicted:
        row["first_close_exact"] = first_close_match_rate(predicted["first_close"], truth["first_close"])
    for camera, kinds in predicted.get("boxes", {}).items():
        for kind, boxes in kinds.items():
            row[f"box_iou/{camera}/{kind}"] = mean_box_iou(boxes, truth["boxes"][camera][kind])
    for camera, kinds in predicted.get("masks", {}).items():
        for kind, masks in kinds.items():
            size = truth.get("image_size", {}).get(camera)
            row[f"mask_iou/{camera}/{kind}"] = mean_mask_iou(masks, truth["masks"][camera][kind], size)
    return row


def print_table(rows: Mapping[str, Mapping[str, float]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="fidelity against the sample's ground truth")
    table.add_column("metric")
    for name in rows:
        table.add_column(name, justify="right")
    metrics = list(dict.fromkeys(m for row in rows.values() for m in row))
    for metric in metrics:
        table.add_row(metric, *(f"{row.get(metric, float('nan')):.3f}" for row in rows.values()))
    Console().print(table)


def main(argv: Sequence[str] | None = None) -> dict[str, dict[str, float]]:
    from pipelines.sample.ground_truth import SCHEMAS, load_ground_truth

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--schema", choices=SCHEMAS, default="droid")
    parser.add_argument("--data-dir", default=None, help="sample folder (default: pipelines/sample/data)")
    parser.add_argument("--predictions", default=None, help="JSON of predictions (see module docstring)")
    parser.add_argument("--tolerance", type=int, default=2, help="keyframe match window, ± frames")
    parser.add_argument("--shift", type=int, default=3, help="frames the degraded baseline is late by")
    args = parser.parse_args(argv)
    truth = truth_predictions(load_ground_truth(args.schema, args.data_dir))
    rows = {"truth": score(truth, truth, args.tolerance), f"shifted +{args.shift}": score(shifted(truth, args.shift), truth, args.tolerance)}
    if args.predictions:
        with open(args.predictions) as f:
            rows["predictions"] = score(json.load(f), truth, args.tolerance)
    print_table(rows)
    return rows


if __name__ == "__main__":
    main()
