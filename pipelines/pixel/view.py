"""pixel rows of one episode in Rerun: every frame with the region proposal, the target mask (and the
gripper's at the first-close frame G, COCO RLE decoded with pycocotools), the target box and the visual
prompts (points, lines, box) drawn on it; the mask score and gripper over time; a log line at G and at
every frame whose flags say something (object lost, gripper re-seeded)."""

from __future__ import annotations

from typing import Any

import numpy as np
import rerun as rr
import rerun.blueprint as rrb

from datasets_cards.codecs import rle_to_mask
from pipelines.view import VIEWERS, Scene, box, encoded_image

TARGET, GRIPPER = 1, 2  # class ids of the segmentation images
CLASSES = rr.AnnotationContext([(TARGET, "target", (0, 200, 255)), (GRIPPER, "gripper", (255, 0, 200))])
PROPOSAL_COLOR, BOX_COLOR, PROMPT_COLOR = (255, 200, 0), (0, 200, 255), (0, 255, 0)
QUIET_FLAGS = {"propagated"}  # the common case: no log line


@VIEWERS.register("pixel")
def log_pixel(scene: Scene, rows: list[dict[str, Any]]) -> rrb.Blueprint:
    rec = scene.rec
    first = rows[0]
    rec.log("instruction", rr.TextDocument(f"{first['instruction']}\n\ntarget: {first['target_noun']}, first close "
                                           f"G = frame {first['first_close_frame']}"), static=True)
    cameras = sorted({r["camera"] for r in rows})
    rec.log("plot/gripper", rr.SeriesLines(names=["gripper (0 open, 1 closed)"]), static=True)
    for camera in cameras:
        rec.log(f"camera/{camera}", CLASSES, static=True)
        rec.log(f"plot/mask_score/{camera}", rr.SeriesLines(names=[f"mask score, {camera}"]), static=True)
    for row in rows:
        scene.at(row["frame_index"])
        cam = f"camera/{row['camera']}"
        score = f" {row['mask_score']:.2f}" if row["mask_score"] is not None else ""
        rec.log(cam, encoded_image(row["image"]))
        scene.show(f"{cam}/proposal", box(row["proposal_box"], "proposal", PROPOSAL_COLOR))
        scene.show(f"{cam}/mask", _mask(row["mask"], TARGET))
        scene.show(f"{cam}/gripper_mask", _mask(row["gripper_mask"], GRIPPER))
        scene.show(f"{cam}/box", box(row["box"], f"{row['target_noun']}{score}", BOX_COLOR))
        scene.show(f"{cam}/prompts/points",
                   rr.Points2D(row["points"], colors=[PROMPT_COLOR], radii=[2.0]) if row["points"] else None)
        scene.show(f"{cam}/prompts/lines",
                   rr.LineStrips2D([[(x0, y0), (x1, y1)] for x0, y0, x1, y1 in row["lines"]], colors=[PROMPT_COLOR])
                   if row["lines"] else None)
        scene.show(f"{cam}/prompts/box", box(row["box_prompt"], "box prompt", PROMPT_COLOR))
        if row["camera"] == cameras[0]:
            rec.log("plot/gripper", rr.Scalars(row["gripper"]))
        if row["mask_score"] is not None:
            rec.log(f"plot/mask_score/{row['camera']}", rr.Scalars(row["mask_score"]))
        said = [f for f in row["flags"] if f not in QUIET_FLAGS]
        if said:
            lost = "object_lost" in said
            rec.log("events", rr.TextLog(f"{row['camera']} frame {row['frame_index']}: {', '.join(said)}",
                                         level=rr.TextLogLevel.WARN if lost else rr.TextLogLevel.INFO))
    return rrb.Blueprint(rrb.Vertical(
        rrb.Horizontal(*(rrb.Spatial2DView(origin=f"camera/{c}", name=c) for c in cameras)),
        rrb.Horizontal(rrb.TimeSeriesView(origin="plot", name="gripper, mask score"),
                       rrb.Vertical(rrb.TextDocumentView(origin="instruction"), rrb.TextLogView(origin="events"))),
        row_shares=[2, 1]), collapse_panels=True)


def _mask(rle: dict[str, Any] | None, class_id: int):
    if rle is None:
        return None
    return rr.SegmentationImage(rle_to_mask(rle).astype(np.uint8) * class_id, opacity=0.5, draw_order=1.0)
