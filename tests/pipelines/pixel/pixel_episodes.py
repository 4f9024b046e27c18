"""Synthetic episodes for the pixel pipeline's tests: a grey textured scene, a dark gripper square and a red object.

The gripper closes at frame CLOSE_AT (a rise from 0 to 0.4: holding a wide object). Geometry, in pixels:
the gripper's box GRIPPER_BOX, its proposal (×2, clipped) PROPOSAL, the object's box OBJECT_BOX.
"""

from __future__ import annotations

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from annotators.detection import Detections, StubDetector
from datasets_cards import Episode, FrameSequence

T, H, W = 10, 64, 80
CLOSE_AT = 4
GRIPPER_BOX = np.array([30, 10, 50, 30], np.float32)
PROPOSAL = np.array([20, 0, 60, 40], np.float32)
OBJECT_BOX = np.array([36, 24, 44, 32], np.float32)


def jpeg(image: np.ndarray) -> bytes:
    return cv2.imencode(".jpg", image[..., ::-1])[1].tobytes()


def frames(blank_at: int | None = None) -> list[bytes]:
    rng = np.random.default_rng(0)
    out = []
    for t in range(T):
        image = (120 + rng.integers(-20, 20, (H, W, 3))).astype(np.uint8)
        image[10:30, 30:50] = (30, 30, 30)
        image[24:32, 36:44] = (220, 30, 30)
        out.append(jpeg(np.zeros((H, W, 3), np.uint8) if t == blank_at else image))
    return out


def episode(episode_id: str = "ep0", closes: bool = True, blank_at: int | None = None,
            instruction: str = "pick up the red block") -> Episode:
    gripper = np.zeros(T, np.float32)
    if closes:
        gripper[CLOSE_AT:] = 0.4
    return Episode(episode_id=episode_id, source="fractal", instruction=instruction, fps=3.0,
                   frames={"image": FrameSequence(frames(blank_at))},
                   arm_state=np.tile(np.arange(7, dtype=np.float32), (T, 1)) + np.arange(T)[:, None],
                   gripper=gripper, actions=np.ones((T, 7), np.float32))


def detector(find_object: bool = True) -> StubDetector:
    """The gripper box for the gripper phrase; the object's box in the crop of the proposal for any other."""
    def answer(_i: int, phrase: str) -> Detections:
        if phrase == "robot gripper.":
            return Detections(GRIPPER_BOX[None], [0.9], [0])
        if not find_object:
            return Detections.empty()
        return Detections((OBJECT_BOX - PROPOSAL[[0, 1, 0, 1]])[None], [0.8], [0])

    return StubDetector(answer)


def run_stage(pipe, episodes: list[Episode], out_dir) -> dict:
    """What the flow does before the units: collect the stage's part (one unit here), reduce, load."""
    stage = pipe.stages()[0]
    part = out_dir / "_staging" / stage.name / "unit-00000.parquet"
    part.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(stage.collect(episodes), schema=stage.schema), part)
    summary = stage.reduce(str(out_dir), [str(part)])
    pipe.load_stages(str(out_dir))
    return summary
