"""Why a segmentation mask is unusable (PixelVLA §4.2: discard failed or invalid masks).

`mask_problem` returns None for a usable mask, else one reason "code: numbers";
the code (one of MASK_REJECTIONS) is what statistics and quarantine count.
"""

from __future__ import annotations

import math

import numpy as np

from annotators.pixel.geometry import box_area

EMPTY_MASK = "empty_mask"
SMALL_MASK = "small_mask"
MASK_FILLS_PROPOSAL = "mask_fills_proposal"
MASK_FILLS_IMAGE = "mask_fills_image"
MASK_OUTSIDE_PROPOSAL = "mask_outside_proposal"
MASK_REJECTIONS = (EMPTY_MASK, SMALL_MASK, MASK_FILLS_PROPOSAL, MASK_FILLS_IMAGE, MASK_OUTSIDE_PROPOSAL)


def _pixels_inside(mask: np.ndarray, box: np.ndarray) -> int:
    """Mask pixels whose centre (c + 0.5, r + 0.5) lies in the xyxy box (exclusive max edges)."""
    h, w = mask.shape
    x0, y0, x1, y1 = (float(v) for v in box)
    c0, c1 = (min(max(math.ceil(v - 0.5), 0), w) for v in (x0, x1))
    r0, r1 = (min(max(math.ceil(v - 0.5), 0), h) for v in (y0, y1))
    return int(mask[r0:r1, c0:c1].sum()) if c1 > c0 and r1 > r0 else 0


def mask_problem(
    mask: np.ndarray,
    proposal_box: np.ndarray | None,
    *,
    min_pixels: int,
    max_of_proposal: float,
    max_of_image: float,
    min_inside_proposal: float,
) -> str | None:
    """None when the mask is usable, else the first failed check as "code: numbers".

    Checks in order: empty, small, fills the image, fills the proposal (the share of the proposal's
    pixels it covers: a background mask swallows the proposal whole), lies outside the proposal.
    A None `proposal_box` skips the two proposal checks.
    """
    mask = np.asarray(mask, dtype=bool)
    area = int(mask.sum())
    if area == 0:
        return f"{EMPTY_MASK}: 0 pixels"
    if area < min_pixels:
        return f"{SMALL_MASK}: {area} pixels < {min_pixels}"
    image_area = mask.size
    if area > max_of_image * image_area:
        return f"{MASK_FILLS_IMAGE}: {area} pixels > {max_of_image:g} × image {image_area}"
    if proposal_box is not None:
        proposal_area = box_area(proposal_box)
        covered = _pixels_inside(mask, proposal_box)
        if covered > max_of_proposal * proposal_area:
            return f"{MASK_FILLS_PROPOSAL}: covers {covered} of the proposal's {proposal_area:g} pixels > {max_of_proposal:g}"
        inside = covered / area
        if inside < min_inside_proposal:
            return f"{MASK_OUTSIDE_PROPOSAL}: {inside:.3f} of pixels inside proposal < {min_inside_proposal:g}"
    return None


def rejection_code(reason: str) -> str:
    """The code part of a `mask_problem` reason ("small_mask: 12 pixels < 30" → "small_mask")."""
    return reason.split(":", 1)[0].strip()
