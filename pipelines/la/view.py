"""la rows of one source episode in Rerun: the arm state and gripper plotted over the episode's frames, the
keyframes as points on both plots, each segment as a bar under the gripper curve (named by its subaction),
the segment in force as a text panel and one log line per segment."""

from __future__ import annotations

from typing import Any

import numpy as np
import rerun as rr
import rerun.blueprint as rrb

from pipelines.view import VIEWERS, Scene, color

SEGMENT_BAR = -0.1  # height of the segment bars under the gripper's 0..1, alternating with the next
KEYFRAME_COLOR = (214, 39, 40)


@VIEWERS.register("la")
def log_la(scene: Scene, rows: list[dict[str, Any]]) -> rrb.Blueprint:
    rec = scene.rec
    first = rows[0]
    rec.log("task", rr.TextDocument(f"**{first['task']}**\n\n{len(rows)} segments, source {first['source']}",
                                    media_type="text/markdown"), static=True)
    rec.log("plot/state", rr.SeriesLines(names=first["state_names"]), static=True)
    rec.log("plot/state/keyframes", rr.SeriesPoints(names=["keyframe"] * len(first["state_names"]),
                                                    colors=[KEYFRAME_COLOR] * len(first["state_names"]),
                                                    marker_sizes=[4.0] * len(first["state_names"])), static=True)
    rec.log("plot/gripper", rr.SeriesLines(names=["gripper (0 open, 1 closed)"], colors=[(0, 0, 0)]), static=True)
    rec.log("plot/gripper/keyframes", rr.SeriesPoints(names=["keyframe"], colors=[KEYFRAME_COLOR],
                                                      marker_sizes=[4.0]), static=True)
    for row in rows:  # the state of every frame a segment covers (a verified set may leave gaps)
        for t, (state, gripper) in enumerate(zip(row["state"], row["gripper"]), start=row["start"]):
            scene.at(t)
            rec.log("plot/state", rr.Scalars(state))
            rec.log("plot/gripper", rr.Scalars(gripper))
            if t in row["keyframes"]:
                rec.log("plot/state/keyframes", rr.Scalars(state))
                rec.log("plot/gripper/keyframes", rr.Scalars(gripper))
    starts, last = {r["start"] for r in rows}, max(r["end"] for r in rows)
    for row in rows:
        index, name = row["segment_index"], row["subaction"]
        path = f"plot/gripper/segments/{index:03d}"
        rec.log(path, rr.SeriesLines(names=[f"{index} {name}"], colors=[color(name)], widths=[6.0]), static=True)
        for t in range(row["start"], row["end"]):
            scene.at(t)
            rec.log(path, rr.Scalars(SEGMENT_BAR * (1 + index % 2)))
        scene.at(row["start"])
        rec.log("segments", rr.TextLog(_line(row), level=_level(row), color=color(name)))
        scene.show("segment", rr.TextDocument(_text(row), media_type="text/markdown"))
        if row["end"] not in starts and row["end"] < last:  # a gap (a verified set drops segments): no segment
            scene.at(row["end"])
            scene.show("segment", None)
    return rrb.Blueprint(rrb.Horizontal(
        rrb.Vertical(rrb.TimeSeriesView(origin="plot/state", name="arm state"),
                     rrb.TimeSeriesView(origin="plot/gripper", name="gripper, keyframes, segments")),
        rrb.Vertical(rrb.TextDocumentView(origin="task"), rrb.TextDocumentView(origin="segment"),
                     rrb.TextLogView(origin="segments")),
        column_shares=[3, 2]), collapse_panels=True)


def _line(row: dict[str, Any]) -> str:
    verdict = f"verified, quality {row['quality']:.1f}" if row["verified"] else "unverified"
    flags = f" [{', '.join(row['flags'])}]" if row["flags"] else ""
    return (f"#{row['segment_index']} {row['subaction']} [{row['start']}, {row['end']}): {row['instruction']} "
            f"({row['segmenter']}, {verdict}){flags}")


def _level(row: dict[str, Any]) -> str:
    return rr.TextLogLevel.INFO if row["agreement"] and not row["flags"] else rr.TextLogLevel.WARN


def _text(row: dict[str, Any]) -> str:
    keyframes = ", ".join(map(str, row["keyframes"])) or "none"
    check = "agrees" if row["agreement"] else f"says {row['kinematic_subaction']}"
    quality = (f"quality {row['quality']:.2f}, confidence {row['confidence']:.2f}, {row['num_annotators']} "
               "annotators" if row["quality"] is not None else "not reviewed")
    return (f"### #{row['segment_index']} {row['subaction']}\n\n{row['instruction']}\n\n"
            f"- frames [{row['start']}, {row['end']}), {np.round((row['end'] - row['start']) / row['fps'], 2)} s\n"
            f"- segmenter: {row['segmenter']}; the kinematic cross-check {check}\n- keyframes: {keyframes}\n"
            f"- {quality}; {'verified' if row['verified'] else 'unverified'}\n"
            + (f"- flags: {', '.join(row['flags'])}\n" if row["flags"] else ""))
