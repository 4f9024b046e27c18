"""Fidelity of the pixel pipeline's geometry against the sample's ground truth (no model involved).

Three measurements on sample-fractal and sample-bridge, read through their cards like a run reads them:
- first close: the share of episodes whose first gripper-close frame G (stage 1 of the pipeline, with
  the card's close_threshold and min_close_frames) equals the truth's, "never closes" included
  (benchmarks/fidelity.py first_close_match_rate);
- proposal: fed the ground-truth gripper mask at the true G, the share of episodes whose region
  proposal (the mask's box scaled by s, clipped) contains the true target box, and the mean share of
  the target box's area inside it, for each scale s; this is what `proposal_scale` was chosen from;
- prompts: visual prompts drawn from the ground-truth target masks at G: the share of points and line
  pixels inside their mask, and whether the box prompt equals the mask's box (must be 100 %).

    .venv/bin/python -m benchmarks.pixel_fidelity [--scales 1 1.5 2 2.5 3]
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from annotators.pixel import (
    box_contains,
    mask_box,
    scale_box,
    seed_from,
    visual_prompts,
)
from benchmarks.fidelity import first_close_match_rate
from datasets_cards import load_source_card
from datasets_cards.codecs import rle_to_mask
from pipelines.formats import open_reader
from pipelines.pixel.first_close import first_close_row, pixel_camera
from pipelines.sample.ground_truth import load_ground_truth

SCHEMAS = ("fractal", "bridge")
DEFAULT_SCALES = (1.0, 1.25, 1.5, 2.0, 2.5, 3.0)


def first_close_predictions(schema: str) -> dict[str, int | None]:
    """episode id → G as the pipeline's stage 1 finds it (None: never closes)."""
    card = load_source_card(f"sample-{schema}")
    params = card.params.pixel
    reader = open_reader(card, None)
    rows = [first_close_row(e, pixel_camera(card, params), params, None)
            for e in reader.read(0, reader.num_episodes()) if not isinstance(e, Exception) and hasattr(e, "gripper")]
    return {r["episode_id"]: r["first_close_frame"] for r in rows}


def truth_at_g(schema: str) -> list[dict[str, Any]]:
    """Ground-truth gripper and target masks of each closing episode's camera view at its true G."""
    gt = load_ground_truth(schema)
    camera = pixel_camera(load_source_card(f"sample-{schema}"), load_source_card(f"sample-{schema}").params.pixel)
    views = gt.views.set_index(["episode_id", "frame_index", "camera"])
    out = []
    for episode_id in gt.episode_ids:
        g = gt.episode(episode_id).first_close_frame
        if g is None or (episode_id, g, camera) not in views.index:
            continue
        view = views.loc[(episode_id, g, camera)]
        if view["gripper_rle"] is None or view["target_rle"] is None:
            continue
        size = [int(view["height"]), int(view["width"])]
        out.append({"episode_id": episode_id, "g": g,
                    "gripper": rle_to_mask({"size": size, "counts": view["gripper_rle"]}),
                    "target": rle_to_mask({"size": size, "counts": view["target_rle"]}),
                    "target_box": np.asarray(view["target_box"], np.float32)})
    return out


def proposal_containment(truth: list[dict[str, Any]], scales: Sequence[float]) -> dict[float, tuple[float, float]]:
    """scale → (share of episodes whose proposal contains the target box, mean share of its area inside)."""
    result = {}
    for s in scales:
        contained, inside = [], []
        for t in truth:
            height, width = t["gripper"].shape
            proposal = scale_box(mask_box(t["gripper"]), s, width, height)
            box = t["target_box"]
            contained.append(box_contains(proposal, box))
            ix = max(0.0, min(proposal[2], box[2]) - max(proposal[0], box[0]))
            iy = max(0.0, min(proposal[3], box[3]) - max(proposal[1], box[1]))
            inside.append(ix * iy / max(1e-9, (box[2] - box[0]) * (box[3] - box[1])))
        result[s] = (float(np.mean(contained)) if contained else float("nan"),
                     float(np.mean(inside)) if inside else float("nan"))
    return result


def prompts_inside(truth: list[dict[str, Any]], num_points: int = 8, num_lines: int = 3) -> dict[str, float]:
    """Shares of prompt points / line pixels inside their mask, and of box prompts equal to the mask's box."""
    points_in, line_pixels_in, boxes_equal = [], [], []
    for t in truth:
        mask = t["target"]
        prompts = visual_prompts(mask, num_points, num_lines, seed_from(t["episode_id"], t["g"]))
        points_in += [bool(mask[int(y), int(x)]) for x, y in prompts.points]
        for x0, y0, x1, y1 in prompts.lines:
            canvas = np.zeros(mask.shape, np.uint8)
            cv2.line(canvas, (int(x0), int(y0)), (int(x1), int(y1)), 1, 1)
            line_pixels_in += mask[canvas.astype(bool)].tolist()
        boxes_equal.append(np.array_equal(prompts.box, mask_box(mask)))
    return {"points": float(np.mean(points_in)), "line_pixels": float(np.mean(line_pixels_in)),
            "box_prompt": float(np.mean(boxes_equal))}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", type=float, nargs="+", default=list(DEFAULT_SCALES))
    args = parser.parse_args(argv)
    results: dict[str, Any] = {}
    for schema in SCHEMAS:
        gt = load_ground_truth(schema)
        truth_g = {e: gt.episode(e).first_close_frame for e in gt.episode_ids}
        truth = truth_at_g(schema)
        results[schema] = {
            "first_close": first_close_match_rate(first_close_predictions(schema), truth_g),
            "episodes": len(truth_g), "closing": len(truth),
            "proposal": proposal_containment(truth, args.scales), "prompts": prompts_inside(truth),
        }
    print("pixel fidelity against the sample's ground truth (benchmarks/pixel_fidelity.py)\n")
    print("| schema | episodes | first close exact | prompts: points / line pixels / box inside |")
    print("|---|---:|---:|---|")
    for schema, r in results.items():
        p = r["prompts"]
        print(f"| sample-{schema} | {r['episodes']} | {100 * r['first_close']:.1f} % | "
              f"{100 * p['points']:.0f} % / {100 * p['line_pixels']:.0f} % / {100 * p['box_prompt']:.0f} % |")
    print("\nproposal from the true gripper mask at the true G: target box contained (mean area inside), "
          "episodes that close")
    print("| scale | " + " | ".join(f"sample-{s} ({results[s]['closing']})" for s in results) + " |")
    print("|---:|" + "---:|" * len(results))
    for s in args.scales:
        cells = [f"{100 * results[k]['proposal'][s][0]:.0f} % ({100 * results[k]['proposal'][s][1]:.0f} %)"
                 for k in results]
        print(f"| {s:g} | " + " | ".join(cells) + " |")
    return results


if __name__ == "__main__":
    main()
