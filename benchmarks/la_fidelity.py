"""Fidelity of the la pipeline's state-only stages: keyframes and the kinematic segmenter.

Scores with benchmarks/fidelity.py against the sample's ground truth
(pipelines/sample/ground_truth.py): keyframe precision / recall / F1 (static,
gripper_close, gripper_open matched by kind within ±tolerance frames), boundary
error (median, p90) and frame-wise primitive accuracy. Two columns: the untuned
starting point (the skeleton's KeyframeParams and first segmenter thresholds) and
the card defaults (datasets_cards/source.py KeyframeParams / KinematicParams).

Sources
- sample-droid (default): the generated sample (`make sample-data`), read through its card;
  `--data-dir` scores another generation; benchmarks/la_split.py scores the fixed fit / report
  split in all three schemas (what the parameters were fitted on, and what they are reported on);
- synthetic: the sample's scripted episodes without the simulator (pose = script + noise),
  truth built with the sample's own definitions; needs no generated data;
- resting: episodes that rest 30-95 % of the time around one smooth move, the case where a
  purely adaptive threshold falls into sensor noise (keyframes only; no segment truth).

    .venv/bin/python -m benchmarks.la_fidelity [--source sample-droid|synthetic|resting] [--episodes N]
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from annotators.keyframes import episode_to_keyframes
from annotators.segments.base import SegmentationInput
from annotators.segments.kinematic import KinematicSegmenter
from benchmarks.fidelity import print_table, score
from datasets_cards.params.la import KeyframeParams, KinematicParams

# The untuned starting point (the skeleton's defaults, before any tuning) for the BEFORE column.
UNTUNED_KEYFRAMES = KeyframeParams(
    savgol_window=9, savgol_order=2, savgol_mode="interp", position_floor=0.0, rotation_floor=0.0,
    rotation_weight=1.0, threshold_quantile=0.25, threshold_scale=1.0, rest_scale=0.0, window=5,
    min_static_proportion=0.6, merge_gap=0, min_static_frames=3,
    gripper_minmax=True, gripper_threshold=0.5, gripper_window=3, gripper_min_separation=5,
)
UNTUNED_KINEMATIC = KinematicParams(
    smoothing_s=0.6, gripper_rate=0.8, holding_threshold=0.5, contact_closed_level=None, wait_min_s=1.0,
)


def predict_keyframes(episodes: Iterable[tuple[str, float, np.ndarray, np.ndarray]], kp: KeyframeParams) -> dict[str, list]:
    """episode id → [(frame, kind)] keyframes, the format benchmarks.fidelity scores."""
    return {eid: [(k.frame, k.kind) for k in episode_to_keyframes(state, gripper, fps, kp)]
            for eid, fps, state, gripper in episodes}


def predict(episodes: Iterable[tuple[str, float, np.ndarray, np.ndarray]], kp: KeyframeParams, sp: KinematicParams) -> dict[str, Any]:
    """(episode id, fps, arm state, gripper) → the prediction dicts benchmarks.fidelity scores."""
    segmenter = KinematicSegmenter(sp)
    out: dict[str, Any] = {"keyframes": {}, "boundaries": {}, "labels": {}}
    for eid, fps, state, gripper in episodes:
        keyframes = episode_to_keyframes(state, gripper, fps, kp)
        item = SegmentationInput(eid, "", fps, state, gripper, keyframes=[k.frame for k in keyframes])
        segments = segmenter.segment(item)
        out["keyframes"][eid] = [(k.frame, k.kind) for k in keyframes]
        out["boundaries"][eid] = [s.start for s in segments[1:]]
        labels = [""] * len(state)
        for s in segments:
            labels[s.start:s.end] = [s.subaction] * (s.end - s.start)
        out["labels"][eid] = labels
    return out


def sample_source(limit: int | None, data_dir: str | None = None, schema: str = "droid") -> tuple[list, dict[str, Any]]:
    """Episodes of one schema of the generated sample (the card's location, or `data_dir`) and its ground truth."""
    from annotators.kinematics import pose_from_state
    from benchmarks.fidelity import truth_predictions
    from datasets_cards import load_source_card
    from pipelines.formats import open_reader
    from pipelines.sample.ground_truth import CARD_NAMES, load_ground_truth

    truth = truth_predictions(load_ground_truth(schema, data_dir))
    card = load_source_card(CARD_NAMES[schema])
    location = f"{data_dir}/{schema}/{card.location.rstrip('/').rsplit('/', 1)[-1]}" if data_dir else None
    reader = open_reader(card, location)
    n = reader.num_episodes() if limit is None else min(limit, reader.num_episodes())
    pose = pose_from_state(card.state, card.name)  # what la reads: the card's state as the canonical pose
    episodes = [(e.episode_id, e.fps, pose(e.arm_state), e.gripper) for e in reader.read(0, n) if hasattr(e, "arm_state")]
    ids = {e[0] for e in episodes}
    truth = {k: ({e: v for e, v in d.items() if e in ids} if isinstance(d, dict) and k != "boxes" and k != "masks" else d)
             for k, d in truth.items()}
    return episodes, truth


def synthetic_source(n: int, seed: int, fps: float, noise_scale: float = 1.0) -> tuple[list, dict[str, Any]]:
    """The sample's scripted episodes without rendering (pose = script exactly, plus the sample's
    sensor noise × `noise_scale`); truth by the sample's own definitions."""
    from pipelines.sample.generator.export import SensorNoise
    from pipelines.sample.generator.motion import OPEN_GAP, TOOL_ROLL, script_motion
    from pipelines.sample.generator.plan import sample_task
    from pipelines.sample.ground_truth import StaticRule, gripper_transitions, intervals_from_flags, tool_speeds

    rule, sensor = StaticRule(), SensorNoise()
    episodes, truth = [], {"keyframes": {}, "boundaries": {}, "labels": {}, "num_frames": {}}
    for index in range(n):
        rng = np.random.default_rng([seed, index])
        task = sample_task(index, rng)
        start = np.array([0.4, 0.0, 0.35]) + rng.uniform(-0.04, 0.04, 3)
        motion = script_motion(task, rng, fps, start, float(rng.uniform(-0.3, 0.3)))
        m = motion.arrays()
        t = len(motion)
        eid = f"synthetic-{index:04d}-{task.kind}"
        noise = np.random.default_rng([seed, index, 1])
        euler = np.stack([np.full(t, TOOL_ROLL), np.zeros(t), m["yaw"]], axis=1)
        state = np.concatenate([m["position"] + noise.normal(0, sensor.position * noise_scale, (t, 3)),
                                euler + noise.normal(0, sensor.rotation * noise_scale, (t, 3))], axis=1)
        state[:, 3:] = (state[:, 3:] + np.pi) % (2 * np.pi) - np.pi  # roll near π flips sign, as in DROID
        closure = 1.0 - m["gap"] / OPEN_GAP
        noisy_closure = np.clip(closure + noise.normal(0, sensor.gripper * noise_scale, t), 0.0, 1.0)
        episodes.append((eid, fps, state, noisy_closure))
        linear, angular = tool_speeds(m["position"], m["yaw"], fps)
        static = (linear < rule.static_speed) & (angular < rule.static_rate)
        intervals = intervals_from_flags(static, max(rule.min_frames, math.ceil(rule.static_seconds * fps)))
        closes, opens = gripper_transitions(closure, motion.gripper_events, 1)
        truth["keyframes"][eid] = sorted([((a + b) // 2, "static") for a, b in intervals]
                                         + [(f, "gripper_close") for f in closes] + [(f, "gripper_open") for f in opens])
        phases = list(motion.phase)
        truth["labels"][eid] = phases
        truth["boundaries"][eid] = [i for i in range(1, t) if phases[i] != phases[i - 1]]
        truth["num_frames"][eid] = t
    return episodes, truth


def resting_source(n: int, seed: int, fps: float) -> tuple[list, dict[str, Any]]:
    """Mostly resting episodes (rest, one min-jerk move, rest) with the sample's sensor noise;
    static truth by the sample's StaticRule on the noise-free pose."""
    from pipelines.sample.generator.export import SensorNoise
    from pipelines.sample.generator.motion import TOOL_ROLL, min_jerk
    from pipelines.sample.ground_truth import StaticRule, intervals_from_flags, tool_speeds

    rule, sensor = StaticRule(), SensorNoise()
    rng = np.random.default_rng(seed)
    episodes, truth = [], {"keyframes": {}}
    for index in range(n):
        t = int(rng.integers(150, 400))
        moving = max(8, int(t * (1 - rng.uniform(0.3, 0.95))))
        start = int(rng.integers(2, t - moving - 2))
        origin, goal = rng.uniform(-0.1, 0.1, 3), rng.uniform(-0.25, 0.25, 3)
        position = np.tile(origin, (t, 1))
        position[start:start + moving] += min_jerk(moving)[:, None] * goal
        position[start + moving:] += goal
        yaw = np.zeros(t)
        euler = np.stack([np.full(t, TOOL_ROLL), np.zeros(t), yaw], axis=1)
        state = np.concatenate([position + rng.normal(0, sensor.position, (t, 3)),
                                euler + rng.normal(0, sensor.rotation, (t, 3))], axis=1)
        linear, angular = tool_speeds(position, yaw, fps)
        intervals = intervals_from_flags((linear < rule.static_speed) & (angular < rule.static_rate),
                                         max(rule.min_frames, math.ceil(rule.static_seconds * fps)))
        eid = f"resting-{index:04d}"
        episodes.append((eid, fps, state, np.zeros(t)))
        truth["keyframes"][eid] = [((a + b) // 2, "static") for a, b in intervals]
    return episodes, truth


def per_primitive_recall(predicted: dict[str, Any], truth: dict[str, Any]) -> dict[str, tuple[int, int]]:
    """True primitive → (frames predicted as it, frames it has), largest first."""
    counts: dict[str, list[int]] = {}
    for eid, labels in truth["labels"].items():
        for true, pred in zip(labels, predicted["labels"].get(eid, [])):
            c = counts.setdefault(true, [0, 0])
            c[0] += int(true == pred)
            c[1] += 1
    return {k: (v[0], v[1]) for k, v in sorted(counts.items(), key=lambda kv: -kv[1][1])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", choices=("sample-droid", "synthetic", "resting"), default="sample-droid")
    parser.add_argument("--data-dir", default=None, help="sample-droid: a generated sample folder other than the card's")
    parser.add_argument("--schema", choices=("droid", "bridge", "fractal"), default="droid",
                        help="sample-droid: score the sample's Bridge (5 Hz) or Fractal (3 Hz) schema instead")
    parser.add_argument("--episodes", type=int, default=None, help="at most this many (synthetic, resting: default 60)")
    parser.add_argument("--seed", type=int, default=7, help="synthetic and resting only")
    parser.add_argument("--noise", type=float, default=1.0, help="synthetic only: × the sample's sensor noise")
    parser.add_argument("--tolerance", type=int, default=2, help="± frames for a keyframe match")
    args = parser.parse_args()
    if args.source == "resting":
        episodes, truth = resting_source(args.episodes or 60, args.seed, 15.0)
        rows = {"before (untuned)": score({"keyframes": predict_keyframes(episodes, UNTUNED_KEYFRAMES)}, truth, args.tolerance),
                "after (defaults)": score({"keyframes": predict_keyframes(episodes, KeyframeParams())}, truth, args.tolerance)}
        print(f"resting: {len(episodes)} episodes, keyframes matched within ±{args.tolerance} frames")
        print_table(rows)
        return
    if args.source == "synthetic":
        episodes, truth = synthetic_source(args.episodes or 60, args.seed, 15.0, args.noise)
    else:
        episodes, truth = sample_source(args.episodes, args.data_dir, args.schema)
    rows = {
        "before (untuned)": score(predict(episodes, UNTUNED_KEYFRAMES, UNTUNED_KINEMATIC), truth, args.tolerance),
        "after (defaults)": score(predict(episodes, KeyframeParams(), KinematicParams()), truth, args.tolerance),
    }
    name = args.source if args.source != "sample-droid" else f"sample ({args.schema} schema)"
    print(f"{name}: {len(episodes)} episodes, keyframes matched within ±{args.tolerance} frames")
    print_table(rows)
    print("frame recall per true primitive (defaults):")
    for name, (hit, total) in per_primitive_recall(predict(episodes, KeyframeParams(), KinematicParams()), truth).items():
        print(f"  {name:<13} {hit / total:.3f}  ({total} frames)")


if __name__ == "__main__":
    main()
