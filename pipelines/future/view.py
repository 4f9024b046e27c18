"""future rows of one episode in Rerun: per camera and view, the mean norm of the frame's stored tokens over
time; for the centre view, the token norms on the encoder's token grid at each frame, and how far the
foresight target moves away: the cosine distance between the tokens of frame t and of t+H (H = 16, DIAL's
horizon, rounded down to a stored frame as the trainer pairs them)."""

from __future__ import annotations

import bisect
from typing import Any

import numpy as np
import rerun as rr
import rerun.blueprint as rrb

from pipelines.view import VIEWERS, Scene

HORIZON = 16  # dial.txt §4.1; the trainer's --horizon may differ, the recording shows this one


@VIEWERS.register("future")
def log_future(scene: Scene, rows: list[dict[str, Any]]) -> rrb.Blueprint:
    rec, feature = scene.rec, scene.manifest.stats.get("feature", {})
    tokens = int(feature.get("tokens") or 1)
    grid = feature.get("grid")
    rec.log("instruction", rr.TextDocument(rows[0]["instruction"]), static=True)
    cameras = sorted({r["camera"] for r in rows})
    for cam, view in sorted({(r["camera"], r["view"]) for r in rows}):
        rec.log(f"plot/feature_norm/{cam}/view_{view}", rr.SeriesLines(names=[f"{cam}, view {view}"]), static=True)
    for row in rows:
        scene.at(row["frame_index"])
        cam, view = row["camera"], row["view"]
        norms = np.linalg.norm(_tokens(row, tokens), axis=1)
        rec.log(f"plot/feature_norm/{cam}/view_{view}", rr.Scalars(float(norms.mean())))
        if view == 0 and grid and int(np.prod(grid)) == tokens:
            rec.log(f"{cam}/token_norms", rr.Tensor(norms.reshape(grid), dim_names=["row", "col"]))
    for cam in cameras:  # the foresight target of t: frame t+H, rounded down to a stored frame
        centre = {r["frame_index"]: _tokens(r, tokens).reshape(-1)
                  for r in rows if r["camera"] == cam and r["view"] == 0}
        stored = sorted(centre)
        if not stored:
            continue
        last = next(r["num_frames"] for r in rows if r["camera"] == cam) - 1
        rec.log(f"plot/foresight/{cam}", rr.SeriesLines(names=[f"cosine distance t → t+{HORIZON}, {cam}"]),
                static=True)
        for t in stored:
            target = stored[bisect.bisect_right(stored, min(t + HORIZON, last)) - 1]
            a, b = centre[t], centre[target]
            scene.at(t)
            cosine = float(a @ b) / max(float(np.linalg.norm(a) * np.linalg.norm(b)), 1e-12)
            rec.log(f"plot/foresight/{cam}", rr.Scalars(1.0 - cosine))
    return rrb.Blueprint(rrb.Horizontal(
        rrb.Vertical(rrb.TimeSeriesView(origin="plot/feature_norm", name="mean token norm"),
                     rrb.TimeSeriesView(origin="plot/foresight", name=f"cosine distance to t+{HORIZON}")),
        rrb.Vertical(*(rrb.TensorView(origin=f"{c}/token_norms", name=f"{c} token norms") for c in cameras),
                     rrb.TextDocumentView(origin="instruction")),
        column_shares=[3, 2]), collapse_panels=True)


def _tokens(row: dict[str, Any], tokens: int) -> np.ndarray:
    return np.asarray(row["feature"], dtype=np.float32).reshape(tokens, -1)
