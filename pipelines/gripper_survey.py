"""A look at the gripper before the units run: calibrate it from the data when the card asks, warn when it never moves.

A card's open/closed values can be wrong for a real robot (an SO-101 whose jaw opens to about
35 of 100 reads as at least 61 % closed all the time). The first `SURVEY_EPISODES` episodes of the
run are read once (frames stay encoded); their raw gripper channel sets open/closed at robust
percentiles when `gripper.calibrate` is true, and the normalised range is reported either way.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from datasets_cards import CardError, SourceCard

SURVEY_EPISODES = 16
PERCENTILES = (2.0, 98.0)
NARROW_SPAN = 0.5  # a normalised gripper spanning less than this never really opens and closes


def survey_gripper(card: SourceCard, reader, episodes: int) -> tuple[SourceCard, dict[str, Any]]:
    """(the card to run, with a calibrated gripper if it asked; a report for the manifest, {} if nothing to see)."""
    read_raw = getattr(reader, "raw_gripper", None)  # a SourceReader method; readers built elsewhere may lack it
    if card.gripper is None or episodes == 0 or read_raw is None:
        return card, {}
    raw = read_raw(0, min(episodes, SURVEY_EPISODES))
    values = np.concatenate(raw) if raw else np.zeros(0)
    values = values[np.isfinite(values)]
    if not values.size:
        if card.gripper.calibrate:
            raise CardError(f"gripper.calibrate: the first {min(episodes, SURVEY_EPISODES)} episodes of "
                            f"{card.name!r} give no finite gripper values to calibrate from")
        return card, {}
    spec = card.gripper.calibrated(values, PERCENTILES) if card.gripper.calibrate else card.gripper
    normalised = spec.normalise(values)
    low, high = (float(v) for v in np.percentile(values, PERCENTILES))
    report: dict[str, Any] = {
        "episodes": len(raw), "calibrated": spec.calibrate, "open_value": spec.open_value,
        "closed_value": spec.closed_value, "raw_percentiles": [round(low, 6), round(high, 6)],
        "normalised_range": [round(float(normalised.min()), 4), round(float(normalised.max()), 4)],
    }
    span = float(normalised.max() - normalised.min())
    if span < NARROW_SPAN:
        report["warning"] = (
            f"the normalised gripper spans only {report['normalised_range']} over the first {len(raw)} episodes "
            f"(raw {PERCENTILES[0]:g}-{PERCENTILES[1]:g}th percentiles {low:g}..{high:g}, card open "
            f"{spec.open_value:g} / closed {spec.closed_value:g}): check the card's values or set gripper.calibrate: true"
        )
    return card.model_copy(update={"gripper": spec}), report
