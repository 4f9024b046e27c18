"""gaze rows of one episode in Rerun: every frame per camera with the gaze box (labelled with the target
phrase and score) and the crop window drawn on it, the gaze crop beside it, the detector score and the
gripper plotted over time, and a log line for each frame whose box is not a plain detection."""

from __future__ import annotations

from typing import Any

import rerun as rr
import rerun.blueprint as rrb

from pipelines.view import VIEWERS, Scene, box, encoded_image

BOX_COLOR, WINDOW_COLOR = (255, 64, 64), (255, 200, 0)


@VIEWERS.register("gaze")
def log_gaze(scene: Scene, rows: list[dict[str, Any]]) -> rrb.Blueprint:
    rec = scene.rec
    rec.log("instruction", rr.TextDocument(rows[0]["instruction"]), static=True)
    rec.log("plot/gripper", rr.SeriesLines(names=["gripper (0 open, 1 closed)"]), static=True)
    cameras = sorted({r["camera"] for r in rows})
    for camera in cameras:
        rec.log(f"plot/score/{camera}", rr.SeriesPoints(names=[f"detector score, {camera}"]), static=True)
    for row in rows:
        scene.at(row["frame_index"])
        cam = row["camera"]
        score = f" {row['score']:.2f}" if row["score"] is not None else ""
        rec.log(f"camera/{cam}", encoded_image(row["image"]))
        scene.show(f"camera/{cam}/gaze_box", box(row["box"], f"{row['target_phrase']}{score}", BOX_COLOR))
        scene.show(f"camera/{cam}/crop_window", box(row["crop_box"], "crop", WINDOW_COLOR))
        scene.show(f"crop/{cam}", encoded_image(row["crop"]) if row["crop"] is not None else None)
        if cam == cameras[0]:
            rec.log("plot/gripper", rr.Scalars(row["gripper"]))
        if row["score"] is not None:
            rec.log(f"plot/score/{cam}", rr.Scalars(row["score"]))
        unusual = [f for f in row["flags"] if f != "detected"]
        if unusual:
            rec.log("events", rr.TextLog(f"{cam} frame {row['frame_index']}: {', '.join(unusual)} "
                                         f"({row['phase']}: {row['target_phrase']})", level=rr.TextLogLevel.WARN))
    images = [rrb.Horizontal(rrb.Spatial2DView(origin=f"camera/{c}", name=f"{c}"),
                             rrb.Spatial2DView(origin=f"crop/{c}", name=f"{c} gaze crop"), column_shares=[2, 1])
              for c in cameras]
    return rrb.Blueprint(rrb.Vertical(
        *images,
        rrb.Horizontal(rrb.TimeSeriesView(origin="plot", name="gripper, detector score"),
                       rrb.Vertical(rrb.TextDocumentView(origin="instruction"), rrb.TextLogView(origin="events"))),
    ), collapse_panels=True)
