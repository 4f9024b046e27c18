"""Pure algorithms of the pixel pipeline (PixelVLA §4.2; the first close is annotators/gripper.py): box geometry, mask filters, visual prompts, projection."""

from annotators.pixel.filters import (
    EMPTY_MASK,
    MASK_FILLS_IMAGE,
    MASK_FILLS_PROPOSAL,
    MASK_OUTSIDE_PROPOSAL,
    MASK_REJECTIONS,
    SMALL_MASK,
    mask_problem,
    rejection_code,
)
from annotators.pixel.geometry import (
    box_area,
    box_contains,
    mask_box,
    mask_centroid,
    scale_box,
)
from annotators.pixel.projection import Projection, fit_projection
from annotators.pixel.prompts import VisualPrompts, seed_from, visual_prompts

__all__ = [
    "EMPTY_MASK",
    "MASK_FILLS_IMAGE",
    "MASK_FILLS_PROPOSAL",
    "MASK_OUTSIDE_PROPOSAL",
    "MASK_REJECTIONS",
    "SMALL_MASK",
    "Projection",
    "VisualPrompts",
    "box_area",
    "box_contains",
    "fit_projection",
    "mask_box",
    "mask_centroid",
    "mask_problem",
    "rejection_code",
    "scale_box",
    "seed_from",
    "visual_prompts",
]
