import io

import numpy as np
import pytest
import torch

from annotators.segmentation import SegmenterConfig, StreamingTracker
from annotators.segmentation.base import box_mask
from annotators.segmentation.video import Retention
from annotators.weights import MissingWeightsError

HEIGHT, WIDTH = 48, 80


def stream(count, seed=0, size=12):
    """Noisy frames with a bright square drifting right and down (a gripper stand-in), and its boxes."""
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 70, (count, HEIGHT, WIDTH, 3), dtype=np.uint8)
    boxes = []
    for t in range(count):
        x, y = (5 + 2 * t) % (WIDTH - size), (3 + t) % (HEIGHT - size)
        frames[t, y : y + size, x : x + size] = (230, 200, 60)
        boxes.append(np.array([x, y, x + size, y + size], dtype=np.float32))
    return frames, boxes


@pytest.fixture(scope="module")
def config(tiny_sam2_video_path):
    return SegmenterConfig(model=tiny_sam2_video_path, device="cpu")


@pytest.fixture(scope="module")
def tracker_from_path(config):
    return StreamingTracker(config)


@pytest.fixture
def make(config, tracker_from_path):
    """Trackers sharing one loaded model (fresh sessions)."""

    def build(prune=True):
        return StreamingTracker(config, model=tracker_from_path.model, prune=prune)

    return build


def run(tracker, frames, box):
    results = [tracker.seed(frames[0], box=box)]
    results += [tracker.step(frame) for frame in frames[1:]]
    return results


def same(a, b):
    return all(np.array_equal(x.mask, y.mask) and x.score == y.score for x, y in zip(a, b, strict=True))


def test_seed_and_step(tracker_from_path):
    tracker = tracker_from_path
    frames, boxes = stream(6)
    assert tracker.frames_seen == 0
    results = run(tracker, frames, boxes[0])
    assert tracker.frames_seen == 6
    for result in results:
        assert result.mask.dtype == bool and result.mask.shape == (HEIGHT, WIDTH)
        assert 0.0 <= result.score <= 1.0
    assert any(r.mask.any() for r in results)
    assert type(tracker.model).__name__ == "Sam2VideoModel"


def test_pruning_does_not_change_masks(make):
    frames, boxes = stream(20)
    pruned, full = make(prune=True), make(prune=False)
    a, b = run(pruned, frames, boxes[0]), run(full, frames, boxes[0])
    assert same(a, b)
    assert len({r.mask.tobytes() for r in a}) > 10  # the masks do change from frame to frame
    assert full.session_size()["outputs"] == 20 and full.session_size()["pixels"] == 20
    assert pruned.session_size()["outputs"] == pruned.retention.max_frames
    # the windows are exactly what SAM 2 reads: one frame less of pointers changes the masks, and
    # one frame less of memory features leaves the model a frame without them (it would read them)
    r = pruned.retention
    fewer_pointers = make()
    fewer_pointers.retention = Retention(r.memory, r.pointers - 1)
    assert not same(run(fewer_pointers, frames, boxes[0]), b)
    fewer_memories = make()
    fewer_memories.retention = Retention(r.memory - 1, r.pointers)
    with pytest.raises(KeyError, match="maskmem_features"):
        run(fewer_memories, frames, boxes[0])


def test_state_stays_bounded(make):
    tracker = make()
    frames, boxes = stream(40)
    config = tracker.model.config
    bound = 1 + max(config.num_maskmem - 1, config.max_object_pointers_in_encoder - 1)
    assert tracker.retention.max_frames == bound
    tracker.seed(frames[0], box=boxes[0])
    sizes = []
    for t in range(1, 201):
        tracker.step(frames[t % len(frames)])
        size = tracker.session_size()
        assert size["outputs"] <= bound and size["conditioning"] == 1
        assert size["pixels"] == size["features"] == size["prompts"] == 0
        sizes.append(size["bytes"])
    assert tracker.frames_seen == 201
    assert sizes[-1] == sizes[50] == max(sizes)  # memory does not grow once the window is full


def test_reseed_discards_memory(make):
    frames, boxes = stream(12)
    tracker = make()
    run(tracker, frames[:8], boxes[0])
    mask = box_mask((HEIGHT, WIDTH), boxes[8])
    reseeded = [tracker.seed(frames[8], mask=mask)] + [tracker.step(f) for f in frames[9:]]
    assert tracker.session_size()["outputs"] <= tracker.retention.max_frames
    fresh = make()
    assert same(reseeded, [fresh.seed(frames[8], mask=mask)] + [fresh.step(f) for f in frames[9:]])
    assert reseeded[0].score > 0.99  # a mask prompt marks the object present
    assert tracker.frames_seen == 12
    with pytest.raises(ValueError):
        tracker.seed(frames[0])
    with pytest.raises(ValueError):
        tracker.seed(frames[0], box=boxes[0], mask=mask)


def test_checkpoint_round_trip_is_exact(make):
    frames, boxes = stream(20)
    original = make()
    run(original, frames[:8], boxes[0])
    buffer = io.BytesIO()
    torch.save(original.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values()) and state["meta"].dtype == torch.uint8
    restored = make()
    restored.load_state_dict(state)
    assert restored.frames_seen == 8 and restored.session_size() == original.session_size()
    assert same([original.step(f) for f in frames[8:]], [restored.step(f) for f in frames[8:]])


def test_checkpoint_before_seed_and_misuse(make):
    tracker = make()
    with pytest.raises(RuntimeError, match="seed"):
        tracker.step(np.zeros((HEIGHT, WIDTH, 3), np.uint8))
    restored = make()
    restored.load_state_dict(tracker.state_dict())
    assert restored.session is None and restored.frames_seen == 0
    frames, boxes = stream(2)
    tracker.seed(frames[0], box=boxes[0])
    with pytest.raises(ValueError, match="re-seed"):
        tracker.step(np.zeros((HEIGHT + 1, WIDTH, 3), np.uint8))


@pytest.mark.parametrize("start", [0, 4, 9])
def test_propagate_covers_the_episode(make, start):
    frames, boxes = stream(10, seed=start)
    mask = box_mask((HEIGHT, WIDTH), boxes[start])
    masks, scores = make().propagate(frames, start, mask)
    assert masks.shape == (10, HEIGHT, WIDTH) and masks.dtype == bool
    assert scores.shape == (10,) and scores.dtype == np.float32
    assert scores[start] == 1.0 and np.array_equal(masks[start], mask)
    assert ((scores >= 0) & (scores <= 1)).all()
    assert masks.any(axis=(1, 2)).sum() >= 5
    if start == 4:  # pruned and unpruned sessions give the same masks in both directions
        full_masks, full_scores = make(prune=False).propagate(frames, start, mask)
        assert np.array_equal(masks, full_masks) and np.array_equal(scores, full_scores)


def test_propagate_leaves_the_stream_alone(make):
    frames, boxes = stream(14)
    a, b = make(), make()
    run(a, frames[:6], boxes[0])
    run(b, frames[:6], boxes[0])
    a.propagate(frames[6:10], 1, box_mask((HEIGHT, WIDTH), boxes[7]))
    assert same([a.step(f) for f in frames[10:]], [b.step(f) for f in frames[10:]])


def test_missing_video_weights(tmp_path):
    with pytest.raises(MissingWeightsError, match="SAM 2 video"):
        StreamingTracker(SegmenterConfig(model="nobody/no-such-sam2-video", device="cpu"))
    (tmp_path / "config.json").write_text('{"model_type": "sam"}')
    with pytest.raises(ValueError, match="sam2_video"):
        StreamingTracker(SegmenterConfig(model=str(tmp_path), device="cpu"))
