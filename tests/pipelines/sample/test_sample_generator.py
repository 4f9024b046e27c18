"""The simulated sample: deterministic generation, consistent ground truth, pure helpers."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pybullet", reason="the sample generator needs pybullet (the `sim` extra)")

from pipelines.sample.generator.plan import TASK_KINDS, sample_task  # noqa: E402
from pipelines.sample.generator.simulate import SchemaRender, simulate_episode  # noqa: E402
from pipelines.sample.generator.tables import build_tables  # noqa: E402
from pipelines.sample.ground_truth import intervals_from_flags, segments_from_labels  # noqa: E402

LA_VOCABULARY = {"move", "grasp", "lift", "lower", "transport", "place", "push", "pull", "press", "wrist_rotate", "rotate", "wait"}
TINY = {"droid": SchemaRender(1, (18, 32)), "bridge": SchemaRender(3, (16, 16)), "fractal": SchemaRender(5, (16, 20))}


@pytest.fixture(scope="module")
def scene():
    from pipelines.sample.generator.scene import Scene

    world = Scene()
    yield world
    world.close()


@pytest.fixture(scope="module")
def tiny_episode(scene):
    return simulate_episode(scene, 1, 0, TINY)


def test_same_seed_and_index_give_identical_frames_and_trajectory(scene, tiny_episode):
    again = simulate_episode(scene, 1, 0, TINY)
    assert again.task == tiny_episode.task
    np.testing.assert_array_equal(again.tool_position, tiny_episode.tool_position)
    np.testing.assert_array_equal(again.closure, tiny_episode.closure)
    for schema, frames in tiny_episode.schemas.items():
        assert again.schemas[schema].images == frames.images


def test_another_seed_gives_another_episode(tiny_episode):
    other = sample_task(1, np.random.default_rng([1, 1]))
    assert (other.instruction, other.target.xy) != (tiny_episode.task.instruction, tiny_episode.task.target.xy)


def test_every_task_kind_is_sampled_within_a_dozen_episodes():
    kinds = {sample_task(i, np.random.default_rng([0, i])).kind for i in range(12)}
    assert kinds == set(TASK_KINDS)


def test_schemas_sample_every_stride_th_frame_with_one_image_per_camera(tiny_episode):
    n = len(tiny_episode.motion)
    for schema, spec in TINY.items():
        frames = tiny_episode.schemas[schema]
        assert list(frames.frame_indices) == list(range(0, n, spec.stride))
        for images in frames.images.values():
            assert len(images) == len(frames.frame_indices)


@pytest.mark.parametrize("schema", ["droid", "bridge", "fractal"])
def test_ground_truth_segments_tile_the_episode_with_la_labels(tiny_episode, schema):
    tables = build_tables(tiny_episode, schema, TINY[schema].stride, 1)
    episode, frames = tables["episodes"][0], tables["frames"]
    assert episode["num_frames"] == len(frames) == len(tiny_episode.schemas[schema].frame_indices)
    assert {f["phase"] for f in frames} <= LA_VOCABULARY
    segments = episode["segments"]
    assert segments[0]["start"] == 0 and segments[-1]["end"] == len(frames) - 1
    assert all(a["end"] + 1 == b["start"] for a, b in zip(segments, segments[1:]))
    assert episode["boundaries"] == [s["start"] for s in segments[1:]]


def test_first_close_is_where_the_closure_passes_half_way_and_the_object_is_then_held(tiny_episode):
    tables = build_tables(tiny_episode, "droid", 1, 1)
    episode, frames = tables["episodes"][0], tables["frames"]
    first = episode["first_close_frame"]
    assert first == episode["gripper_close_frames"][0]
    closure = np.array([f["gripper_closure"] for f in frames])
    start, end, before, after = tiny_episode.motion.gripper_events[0]
    midpoint = 1 - (before + after) / 2 / 0.08
    assert closure[first] >= midpoint > closure[first - 1]
    held = [f["held"] for f in frames]
    assert any(held) and held.index(True) > first


def test_a_second_world_in_one_process_is_refused_not_silently_mixed_into_the_first(scene):
    from pipelines.sample.generator.scene import Scene

    with pytest.raises(RuntimeError, match="another pybullet world is open"):
        Scene()


def test_views_have_a_visible_gripper_in_the_wrist_camera(tiny_episode):
    views = tiny_episode.schemas["droid"].views["wrist_left"]
    assert sum(v.gripper_box is not None for v in views) > 0.9 * len(views)


@pytest.mark.parametrize(
    "labels, expected",
    [
        ([], []),
        (["move"], [("move", 0, 0)]),
        (["move", "move", "grasp", "lift", "lift"], [("move", 0, 1), ("grasp", 2, 2), ("lift", 3, 4)]),
        (["wait", "move", "wait"], [("wait", 0, 0), ("move", 1, 1), ("wait", 2, 2)]),
    ],
)
def test_segments_from_labels_are_maximal_runs(labels, expected):
    assert segments_from_labels(labels) == expected


@pytest.mark.parametrize(
    "flags, min_length, expected",
    [
        ([], 1, []),
        ([False, False], 1, []),
        ([True, True, False, True], 1, [(0, 1), (3, 3)]),
        ([True, True, False, True], 2, [(0, 1)]),
        ([False, True, True, True], 3, [(1, 3)]),
    ],
)
def test_intervals_from_flags_keep_runs_at_least_min_length(flags, min_length, expected):
    assert intervals_from_flags(np.array(flags, dtype=bool), min_length) == expected
