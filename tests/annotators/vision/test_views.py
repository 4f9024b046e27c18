"""What the encoder sees of a frame: DIAL's bands and crops, the resize, the colour jitter, the seeded draws."""

from __future__ import annotations

import numpy as np
import pytest

from annotators.vision.views import (
    Jitter,
    ViewBox,
    draw_augmentation,
    image_to_view,
    jitter_image,
    view_box,
    view_rng,
)


@pytest.mark.parametrize(("shape", "rows", "cols", "crop", "offset", "box"), [
    ((256, 256), (0.0, 1.0), (0.0, 1.0), 1.0, (0.5, 0.5), ViewBox(0, 256, 0, 256)),
    # DIAL on 256² robot frames: rows 17–83 % (44 .. 212), then 0.95 of each side, centred
    ((256, 256), (0.17, 0.83), (0.0, 1.0), 0.95, (0.5, 0.5), ViewBox(48, 208, 6, 249)),
    # EgoDex 1080×1920: the top 30 % dropped (324 ..), then the 0.95 centre crop
    ((1080, 1920), (0.3, 1.0), (0.0, 1.0), 0.95, (0.5, 0.5), ViewBox(343, 1061, 48, 1872)),
    # an augmented view takes the crop at its drawn place: top-left and bottom-right corners of the room
    ((180, 320), (0.0, 1.0), (0.0, 1.0), 0.95, (0.0, 0.0), ViewBox(0, 171, 0, 304)),
    ((180, 320), (0.0, 1.0), (0.0, 1.0), 0.95, (1.0, 1.0), ViewBox(9, 180, 16, 320)),
])
def test_view_box(shape, rows, cols, crop, offset, box):
    assert view_box(*shape, rows, cols, crop, offset) == box


def test_an_empty_band_is_refused():
    with pytest.raises(ValueError, match="empty"):
        view_box(10, 10, (0.5, 0.52), (0.0, 1.0), 1.0)


@pytest.mark.parametrize("size", [(224, 224), (56, 84), (400, 400)])
def test_image_to_view_resizes_the_window_and_keeps_uniform_colour(size):
    image = np.full((180, 320, 3), (10, 200, 90), np.uint8)
    view = image_to_view(image, view_box(180, 320, (0.0, 1.0), (0.0, 1.0), 0.95), size)
    assert view.shape == (*size, 3) and view.dtype == np.uint8
    assert (view == (10, 200, 90)).all()


def test_the_window_is_what_is_resized():
    image = np.zeros((100, 100, 3), np.uint8)
    image[50:, :] = 255  # bottom half white
    view = image_to_view(image, ViewBox(50, 100, 0, 100), (10, 10))
    assert (view == 255).all()


def test_neutral_jitter_is_the_identity_and_brightness_scales():
    image = np.random.default_rng(0).integers(0, 200, (8, 8, 3), dtype=np.uint8)
    assert np.array_equal(jitter_image(image, Jitter()), image)
    brighter = jitter_image(image, Jitter(brightness=1.25)).astype(int)
    assert np.abs(brighter - np.clip(np.rint(image * 1.25), 0, 255)).max() <= 1


def test_draws_are_seeded_by_episode_camera_and_view_and_stay_in_their_ranges():
    a = draw_augmentation(view_rng("ep", "cam", 1), 0.3, 0.4, 0.5, 0.08)
    assert a == draw_augmentation(view_rng("ep", "cam", 1), 0.3, 0.4, 0.5, 0.08)
    assert a != draw_augmentation(view_rng("ep", "cam", 2), 0.3, 0.4, 0.5, 0.08)
    for view in range(20):
        (oy, ox), j = draw_augmentation(view_rng("ep", "cam", view), 0.3, 0.4, 0.5, 0.08)
        assert 0 <= oy <= 1 and 0 <= ox <= 1 and 0.7 <= j.brightness <= 1.3 and abs(j.hue) <= 0.08
