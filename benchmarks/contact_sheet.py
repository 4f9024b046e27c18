"""Contact sheet of the sample: frames of a few episodes, every camera, ground-truth boxes and masks drawn.

    .venv/bin/python benchmarks/contact_sheet.py [--schema droid] [--episodes 0 3 5] [--out docs/sample_contact_sheet.png]

Target: green box + tinted mask; gripper: red box + tinted mask; destination: blue box.
Frames come through the real RLDS reader (the sample card), so the sheet also
shows what the pipelines see.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from datasets_cards.constants import PROJECT_ROOT

COLOURS = {"target": (40, 200, 40), "gripper": (230, 40, 40), "destination": (40, 90, 240)}  # RGB


def draw_truth(image: np.ndarray, view) -> np.ndarray:
    """A copy of `image` with the view's masks tinted and boxes outlined."""
    out = image.astype(np.float32)
    height, width = image.shape[:2]
    for kind in ("target", "gripper"):
        rle = view[f"{kind}_rle"]
        if isinstance(rle, str):  # missing masks read back as None/NaN
            mask = mask_utils.decode({"size": [height, width], "counts": rle.encode("ascii")}).astype(bool)
            out[mask] = 0.55 * out[mask] + 0.45 * np.array(COLOURS[kind])
    out = out.astype(np.uint8)
    for kind, colour in COLOURS.items():
        box = view[f"{kind}_box"]
        if box is not None:
            x0, y0, x1, y1 = (int(round(v)) for v in box)
            cv2.rectangle(out, (x0, y0), (x1 - 1, y1 - 1), colour, 1)
    return out


def contact_sheet(schema: str, episode_indices: Sequence[int], frames_per_episode: int = 4) -> np.ndarray:
    from datasets_cards import load_source_card
    from pipelines.formats import open_reader
    from pipelines.sample.ground_truth import CARD_NAMES, load_ground_truth

    truth = load_ground_truth(schema)
    reader = open_reader(load_source_card(CARD_NAMES[schema]))
    rows = []
    for index in episode_indices:
        episode = next(iter(reader.read(index, index + 1)))
        views = truth.views[truth.views["episode_id"] == episode.episode_id]
        phases = truth.episode(episode.episode_id).phases
        for f in np.linspace(0, episode.num_frames - 1, frames_per_episode).round().astype(int):
            tiles = []
            for camera in episode.cameras:
                view = views[(views["camera"] == camera) & (views["frame_index"] == f)].iloc[0]
                tile = draw_truth(episode.frames[camera][int(f)], view)
                cv2.putText(tile, f"{index}:{f} {phases[f]}", (3, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1)
                tiles.append(tile)
            rows.append(np.concatenate(tiles, axis=1))
    return np.concatenate(rows, axis=0)


def main(argv: Sequence[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--schema", default="droid")
    parser.add_argument("--episodes", type=int, nargs="+", default=[0, 3, 5])
    parser.add_argument("--frames", type=int, default=4, help="frames per episode")
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "docs" / "sample_contact_sheet.png")
    args = parser.parse_args(argv)
    sheet = contact_sheet(args.schema, args.episodes, args.frames)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), sheet[..., ::-1])
    print(args.out)
    return args.out


if __name__ == "__main__":
    main()
