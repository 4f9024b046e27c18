"""la rows: one row of the la output card per atomic segment (all unverified when annotated)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from annotators.keyframes import Keyframe
from annotators.segments.base import Segment
from datasets_cards import Episode, SourceCard

BOUNDARY_CORRECTED = "boundary_corrected"  # flag of a row re-cut to the verifiers' start/end
BOUNDARY_REJECTED = "boundary_correction_rejected"  # flag "...:<why>" when the correction did not fit

def segments_to_rows(
    episode: Episode,
    card: SourceCard,
    segments: Sequence[Segment],
    kinematic: Sequence[Segment],
    keyframes: Sequence[Keyframe],
    source_location: str,
) -> list[dict[str, Any]]:
    """One row of the la output card per segment (all unverified)."""
    rows = []
    frames = [k.frame for k in keyframes]
    for index, seg in enumerate(segments):
        reference = _most_overlapping(kinematic, seg)
        kinematic_label = reference.subaction if reference is not None else seg.subaction
        rows.append({
            "episode_id": f"{episode.episode_id}#{index}",
            "source": card.name,
            "source_episode_id": episode.episode_id,
            "segment_index": index,
            "subaction": seg.subaction,
            "instruction": seg.instruction,
            "task": episode.instruction,
            "start": seg.start,
            "end": seg.end,
            "fps": float(episode.fps),
            "state": episode.arm_state[seg.start:seg.end].tolist(),
            "state_names": list(card.state.names),
            "gripper": episode.gripper[seg.start:seg.end].tolist(),
            "actions": episode.actions[seg.start:seg.end].tolist(),
            "action_names": list(card.action.names),
            "segmenter": seg.segmenter,
            "kinematic_subaction": kinematic_label,
            "agreement": kinematic_label == seg.subaction,
            "verified": False,
            "quality": None,
            "confidence": None,
            "num_annotators": 0,
            "cameras": list(episode.frames),
            "source_location": source_location,
            "flags": list(seg.flags),
            "keyframes": [f for f in frames if seg.start <= f < seg.end],
        })
    return rows


def _most_overlapping(reference: Sequence[Segment], seg: Segment) -> Segment | None:
    """The reference segment overlapping `seg` most (the VLM segmenter's cross-check rule)."""
    best = max(reference, key=lambda r: min(r.end, seg.end) - max(r.start, seg.start), default=None)
    if best is None or min(best.end, seg.end) <= max(best.start, seg.start):
        return None
    return best
