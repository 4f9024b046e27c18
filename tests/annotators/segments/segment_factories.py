"""Synthetic pick-and-place trajectories with known phases (shared by segment tests)."""

from __future__ import annotations

import numpy as np

from annotators.segments.base import SegmentationInput

FPS = 15.0


def phase_trajectory(phases, fps: float = FPS, noise: float = 1e-4, seed: int = 0, yaw_rate=None):
    """phases: (primitive, frames, xyz velocity m/s, gripper at the end of the phase).

    The gripper ramps linearly inside a phase from the previous phase's value; the
    orientation stays fixed except for `yaw_rate` rad/s in phases named in it.
    Returns (SegmentationInput, [(start, end, primitive)]).
    """
    rng = np.random.default_rng(seed)
    yaw_rate = yaw_rate or {}
    xyz, rpy, grip, truth = [np.array([0.45, 0.0, 0.35])], [np.array([np.pi, 0.0, 0.0])], [0.0], []
    for name, n, velocity, g_end in phases:
        start = len(xyz) - 1
        g0 = grip[-1]
        for i in range(n):
            xyz.append(xyz[-1] + np.asarray(velocity) / fps)
            rpy.append(rpy[-1] + np.array([0.0, 0.0, yaw_rate.get(name, 0.0) / fps]))
            grip.append(g0 + (g_end - g0) * (i + 1) / n)
        truth.append((start, start + n, name))
    xyz, rpy, grip = np.array(xyz[1:]), np.array(rpy[1:]), np.array(grip[1:])
    truth = [(s, e, p) for s, e, p in truth]
    state = np.concatenate([xyz + rng.normal(0, noise, xyz.shape), rpy], axis=1)
    item = SegmentationInput("ep0", "put the cup in the bowl", fps, state.astype(np.float32), grip.astype(np.float32))
    return item, truth


HELD = 0.5  # the fingers stop on the object half-way (a closed gripper on nothing reads 1.0)

PICK_AND_PLACE = [
    ("move", 30, (0.08, 0.0, -0.05), 0.0),
    ("grasp", 10, (0.0, 0.0, 0.0), HELD),
    ("lift", 20, (0.0, 0.0, 0.1), HELD),
    ("transport", 30, (0.0, 0.1, 0.0), HELD),
    ("lower", 15, (0.0, 0.0, -0.08), HELD),
    ("place", 10, (0.0, 0.0, 0.0), 0.0),
    ("move", 20, (0.0, 0.0, 0.1), 0.0),
]
