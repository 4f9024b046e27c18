"""Instruction-following metrics of LA4VLA (la4vla.txt §3.1, Appendix 9), as pure numpy functions.

Every function takes N endpoint displacements (N×3, base frame, the sum of the
translational increments over the prediction horizon) and returns a float.
Our copy of the paper lost its formulas; these follow the text of Appendix 9:

- DAR: fraction of trials whose predicted displacement lies in the instruction's
  half-space, i.e. `pred · u > 0` with u the canonical unit vector of the direction.
- DCS: mean cosine between predicted and ground-truth displacements; a trial whose
  predicted or ground-truth norm is below `eps` counts as cosine 0.
- SR: mean between-direction distance / (mean within-direction distance + eps),
  each averaged first over pairs of trials, then over labels (label pairs counted once);
  labels with a single trial have no within pair; NaN when no label has two.
- SS: mean silhouette value of the trials, clusters = instruction directions
  (a trial alone in its cluster gets 0, as in the usual silhouette definition).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

EPS = 1e-8  # near-zero norm / denominator guard, the paper's small positive constant


def _as_points(x: np.ndarray | Sequence) -> np.ndarray:
    points = np.asarray(x, dtype=np.float64)
    if points.ndim != 2:
        raise ValueError(f"expected N×D displacements, got shape {points.shape}")
    return points


def directional_alignment_rate(pred: np.ndarray, directions: np.ndarray) -> float:
    """DAR: share of trials with pred_i · u_i > 0 (u_i = unit vector of the instructed direction)."""
    pred, directions = _as_points(pred), _as_points(directions)
    if pred.shape != directions.shape:
        raise ValueError(f"pred {pred.shape} and directions {directions.shape} differ")
    if len(pred) == 0:
        return float("nan")
    return float(np.mean(np.einsum("nd,nd->n", pred, directions) > 0))


def direction_consistency_score(pred: np.ndarray, truth: np.ndarray, eps: float = EPS) -> float:
    """DCS: mean cos(pred_i, truth_i); trials with a near-zero norm count as 0."""
    pred, truth = _as_points(pred), _as_points(truth)
    if pred.shape != truth.shape:
        raise ValueError(f"pred {pred.shape} and truth {truth.shape} differ")
    if len(pred) == 0:
        return float("nan")
    norms = np.linalg.norm(pred, axis=1) * np.linalg.norm(truth, axis=1)
    valid = (np.linalg.norm(pred, axis=1) > eps) & (np.linalg.norm(truth, axis=1) > eps)
    cos = np.where(valid, np.einsum("nd,nd->n", pred, truth) / np.where(valid, norms, 1.0), 0.0)
    return float(cos.mean())


def _pairwise(points: np.ndarray) -> np.ndarray:
    return np.linalg.norm(points[:, None, :] - points[None, :, :], axis=-1)


def separability_ratio(pred: np.ndarray, labels: Sequence, eps: float = EPS) -> float:
    """SR = D_between / (D_within + eps); NaN when fewer than two labels exist."""
    pred, labels = _as_points(pred), np.asarray(labels)
    classes = list(dict.fromkeys(labels.tolist()))
    if len(classes) < 2:
        return float("nan")
    dist = _pairwise(pred)
    within = []
    for c in classes:
        idx = np.flatnonzero(labels == c)
        if len(idx) >= 2:  # a single trial has no within-direction pair
            block = dist[np.ix_(idx, idx)]
            within.append(block[np.triu_indices(len(idx), k=1)].mean())
    between = [
        dist[np.ix_(np.flatnonzero(labels == a), np.flatnonzero(labels == b))].mean()
        for i, a in enumerate(classes)
        for b in classes[i + 1 :]
    ]
    if not within:
        return float("nan")  # no label has two trials: within-direction distance undefined
    return float(np.mean(between) / (float(np.mean(within)) + eps))


def silhouette_score(pred: np.ndarray, labels: Sequence) -> float:
    """SS: mean over trials of (b - a) / max(a, b); NaN when fewer than two labels exist."""
    pred, labels = _as_points(pred), np.asarray(labels)
    classes = list(dict.fromkeys(labels.tolist()))
    if len(classes) < 2:
        return float("nan")
    dist = _pairwise(pred)
    values = np.zeros(len(pred))
    for i in range(len(pred)):
        own = np.flatnonzero(labels == labels[i])
        if len(own) < 2:
            continue  # singleton cluster: silhouette 0 by convention
        a = dist[i, own[own != i]].mean()
        b = min(dist[i, labels == c].mean() for c in classes if c != labels[i])
        denom = max(a, b)
        values[i] = (b - a) / denom if denom > 0 else 0.0
    return float(values.mean())


def instruction_following_metrics(
    pred: np.ndarray, truth: np.ndarray, directions: np.ndarray, labels: Sequence
) -> dict[str, float]:
    """The four metrics of Appendix 9 on one evaluation set."""
    return {
        "DAR": directional_alignment_rate(pred, directions),
        "DCS": direction_consistency_score(pred, truth),
        "SR": separability_ratio(pred, labels),
        "SS": silhouette_score(pred, labels),
    }
