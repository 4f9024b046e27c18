"""Frame choice, windows and contact sheets of the VLM segmenter."""

from __future__ import annotations

import base64

import cv2
import numpy as np
import pytest

from annotators.segments.vlm.config import VlmConfig
from annotators.segments.vlm.frames import (
    episode_to_windows,
    frame_to_tile,
    image_to_data_url,
    keyframes_to_frame_indices,
    patch_aligned_tile_size,
    sheet_layout,
    tiles_to_sheet,
)


@pytest.mark.parametrize(("num_frames", "keyframes", "expected"), [
    (0, (), []),
    (1, (), [0]),
    # no keyframes: uniform every 15 frames (1 fps) plus the last frame
    (46, (), [0, 15, 30, 45]),
    # a keyframe at 22 takes its neighbours at ±8 (0.5 s); uniform 15 is too close to 14 (< 8 frames)
    (46, (22,), [0, 14, 22, 30, 45]),
])
def test_keyframes_and_their_neighbours_come_first_then_sparse_uniform(
        num_frames: int, keyframes: tuple[int, ...], expected: list[int]) -> None:
    got = keyframes_to_frame_indices(num_frames, 15.0, keyframes, vlm_fps=2.0, uniform_fps=1.0,
                                     keyframe_offset_s=0.5)
    assert got.tolist() == expected


def test_chosen_frames_are_never_closer_than_one_over_vlm_fps() -> None:
    got = keyframes_to_frame_indices(300, 15.0, (10, 12, 90, 200), vlm_fps=2.0, uniform_fps=1.0,
                                     keyframe_offset_s=0.5)
    assert np.diff(got).min() >= 8 and got[0] == 0 and got[-1] == 299


def test_a_default_window_fits_five_sheets_per_camera() -> None:
    # README: vLLM needs --limit-mm-per-prompt '{"image": 16}' for 3 cameras at the defaults
    config = VlmConfig(base_urls=("http://x.invalid/v1",), api_key="k")
    window = int(config.window_s * 15)
    got = keyframes_to_frame_indices(window, 15.0, tuple(range(0, window, 3)), vlm_fps=config.vlm_fps,
                                     uniform_fps=config.uniform_fps, keyframe_offset_s=config.keyframe_offset_s)
    assert len(got) <= 5 * config.sheet_columns * config.sheet_rows


def test_frame_choice_stays_inside_the_window() -> None:
    got = keyframes_to_frame_indices(300, 15.0, (10, 150), vlm_fps=2.0, uniform_fps=1.0,
                                     keyframe_offset_s=0.5, start=100, end=200)
    assert got.min() >= 100 and got.max() <= 199 and 150 in got.tolist()


@pytest.mark.parametrize(("num_frames", "expected"), [
    (0, []),
    (100, [(0, 100)]),
    (150, [(0, 150)]),
    (151, [(0, 150), (120, 151)]),
    (400, [(0, 150), (120, 270), (240, 390), (360, 400)]),
])
def test_windows_overlap_and_cover_the_episode(num_frames: int, expected: list[tuple[int, int]]) -> None:
    assert episode_to_windows(num_frames, 15.0, window_s=10.0, overlap_s=2.0) == expected


def test_tile_is_resized_stamped_and_leaves_the_frame_untouched() -> None:
    frame = np.full((36, 64, 3), 200, dtype=np.uint8)
    tile = frame_to_tile(frame, (32, 18), "1.20s")
    assert tile.shape == (18, 32, 3) and (frame == 200).all()
    assert tile[:4, :4].max() < 200  # the dark label box


@pytest.mark.parametrize("bad", [np.zeros((4, 4), np.uint8), np.zeros((4, 4, 3), np.float32)])
def test_tile_rejects_frames_that_are_not_rgb_uint8(bad: np.ndarray) -> None:
    with pytest.raises(ValueError, match="H×W×3 uint8"):
        frame_to_tile(bad, (8, 8), "0.00s")


@pytest.mark.parametrize(("count", "columns", "shape"), [
    (1, 4, (18, 32, 3)),
    (3, 4, (18, 96, 3)),
    (5, 4, (36, 128, 3)),
])
def test_sheet_packs_tiles_row_by_row(count: int, columns: int, shape: tuple[int, int, int]) -> None:
    tiles = [np.full((18, 32, 3), i + 1, dtype=np.uint8) for i in range(count)]
    sheet = tiles_to_sheet(tiles, columns)
    assert sheet.shape == shape
    assert sheet[0, 0, 0] == 1 and sheet[shape[0] - 1, (count - 1) % columns * 32, 0] == count


def test_sheet_gutters_separate_tiles_and_the_empty_end_stays_black() -> None:
    tiles = [np.full((18, 32, 3), 7, dtype=np.uint8) for _ in range(3)]
    sheet = tiles_to_sheet(tiles, 2, gutter=2)
    assert sheet.shape == (38, 66, 3)
    assert (sheet[:18, 32:34] == 255).all() and (sheet[18:20, :32] == 255).all()
    assert (sheet[20:, 34:] == 0).all() and (sheet[20:, :32] == 7).all()


def test_sheet_needs_a_tile() -> None:
    with pytest.raises(ValueError):
        tiles_to_sheet([], 4)


def test_data_url_round_trips_as_jpeg() -> None:
    image = np.zeros((20, 30, 3), dtype=np.uint8)
    image[..., 0] = 255
    url = image_to_data_url(image, quality=90)
    assert url.startswith("data:image/jpeg;base64,")
    decoded = cv2.imdecode(np.frombuffer(base64.b64decode(url.split(",", 1)[1]), np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape == (20, 30, 3) and decoded[..., 2].mean() > 240  # red survives (BGR order)


def test_uniform_frames_skip_the_inside_of_resting_stretches_but_not_their_ends() -> None:
    got = keyframes_to_frame_indices(91, 15.0, (), vlm_fps=2.0, uniform_fps=1.0, keyframe_offset_s=0.5,
                                     skip=[(15, 76)])
    assert got.tolist() == [0, 15, 75, 90]
    keyframe_inside = keyframes_to_frame_indices(91, 15.0, (45,), vlm_fps=2.0, uniform_fps=1.0,
                                                 keyframe_offset_s=0.0, skip=[(15, 76)])
    assert 45 in keyframe_inside.tolist()  # keyframes are never skipped, only the grid


@pytest.mark.parametrize(("frame", "scale", "gutter", "patch", "expected"), [
    ((320, 180), 0.5, 2, 32, (158, 94)),  # 160 × 96 cells: 5 × 3 patches
    ((320, 180), 0.75, 2, 32, (254, 126)),  # 256 × 128: 8 × 4
    ((320, 180), 0.5, 0, 28, (168, 84)),  # Qwen2.5-VL's 28 px: 6 × 3
    ((64, 36), 0.1, 2, 32, (30, 30)),  # never less than one patch
])
def test_tile_and_gutter_make_whole_patches(frame, scale, gutter, patch, expected) -> None:
    tile = patch_aligned_tile_size(frame, scale, gutter, patch)
    assert tile == expected and all((side + gutter) % patch == 0 for side in tile)


@pytest.mark.parametrize(("count", "expected"), [
    (0, []),
    (5, [(0, 5)]),
    (12, [(0, 12)]),
    (13, [(0, 7), (7, 6)]),  # not 12 + 1
    (25, [(0, 9), (9, 8), (17, 8)]),
])
def test_frames_are_spread_evenly_over_the_sheets(count, expected) -> None:
    assert sheet_layout(count, columns=4, rows=3) == expected


def test_letterboxed_tile_keeps_the_aspect_and_pads_with_black() -> None:
    frame = np.full((180, 320, 3), 200, dtype=np.uint8)
    tile = frame_to_tile(frame, (158, 94), "0.00s", keep_aspect=True)
    assert tile.shape == (94, 158, 3)
    rows = np.flatnonzero((tile[:, 100] > 150).all(axis=1))  # a column right of the label
    assert len(rows) == 89 and tile[0, 100].max() == 0 and tile[-1, 100].max() == 0  # 158 × 89 inside, centred


def test_sheet_with_trailing_gutter_is_a_whole_number_of_cells() -> None:
    tiles = [np.zeros((94, 158, 3), np.uint8)] * 6
    sheet = tiles_to_sheet(tiles, columns=3, gutter=2, trailing_gutter=True)
    assert sheet.shape[:2] == (2 * 96, 3 * 160)
