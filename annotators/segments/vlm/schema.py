"""Parse, validate and stitch VLM answers into a contiguous cover of Segments (pure, no I/O)."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from annotators.segments.base import VOCABULARY, Segment

# Names from la4vla.txt Table 8 that map onto the shared vocabulary.
SUBACTION_ALIASES = {"release": "place", "rotate_free": "rotate", "reorient_free": "reorient"}
_THINKING = re.compile(r"<think>.*?</think>", re.DOTALL)  # reasoning models (Qwen3 thinking) emit it first
_FENCED = re.compile(r"```[a-zA-Z]*\s*(.*?)\s*```", re.DOTALL)


class InvalidOutput(ValueError):
    """A VLM answer that cannot become segments; `reason` becomes the fallback flag."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason  # vlm_invalid_json | vlm_invalid_schema | vlm_out_of_range | vlm_gap | vlm_truncated
        self.detail = detail


class SegmentProposal(BaseModel):
    """One element of the answer: [{subaction, instruction, start, end}] with times in seconds."""

    # allow_inf_nan=False: a NaN end passes every comparison (NaN <= start is False) and would
    # become one segment covering the episode; 1e400 parses to inf without any NaN in the text.
    model_config = ConfigDict(extra="ignore", frozen=True, allow_inf_nan=False)

    subaction: str
    instruction: str = Field(min_length=1)
    start: float = Field(ge=0, allow_inf_nan=False)
    end: float = Field(allow_inf_nan=False)

    @field_validator("subaction")
    @classmethod
    def _in_vocabulary(cls, value: str) -> str:
        name = value.strip().lower().replace(" ", "_")
        name = SUBACTION_ALIASES.get(name, name)
        if name not in VOCABULARY:
            raise ValueError(f"subaction {value!r} is not in the vocabulary {VOCABULARY}")
        return name

    @model_validator(mode="after")
    def _ordered(self) -> SegmentProposal:
        if self.end <= self.start:
            raise ValueError(f"end {self.end} must be after start {self.start}")
        return self


_PROPOSALS = TypeAdapter(list[SegmentProposal])


def text_to_proposals(text: str) -> list[SegmentProposal]:
    """JSON text (a list, or an object holding one under 'segments') → validated proposals in time order."""
    data = _json_payload(text)
    if isinstance(data, dict) and isinstance(data.get("segments"), list):
        data = data["segments"]
    if not isinstance(data, list) or not data:
        raise InvalidOutput("vlm_invalid_schema", "expected a non-empty JSON list of segments")
    try:
        proposals = _PROPOSALS.validate_python(data)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InvalidOutput("vlm_invalid_schema", f"{where}: {first['msg']}") from e
    return sorted(proposals, key=lambda p: (p.start, p.end))


def _reject_constant(name: str) -> object:
    """json's hook for NaN, Infinity and -Infinity, which Python accepts and JSON does not."""
    raise InvalidOutput("vlm_invalid_json", f"non-finite number {name} is not JSON; give times as finite seconds")


def _json_payload(text: str) -> object:
    """The JSON an answer carries: after any <think> block, inside a ``` fence if there is one,
    else the first JSON value in the text (models often say a sentence before it)."""
    body = _THINKING.sub("", text).strip()
    fenced = _FENCED.search(body)
    if fenced:
        body = fenced.group(1)
    starts = [i for i in (body.find("["), body.find("{")) if i >= 0]
    try:
        decoder = json.JSONDecoder(parse_constant=_reject_constant)
        if not starts:
            return decoder.decode(body)  # raises with the position of the problem
        data, _ = decoder.raw_decode(body, min(starts))  # trailing prose is ignored
        return data
    except json.JSONDecodeError as e:
        raise InvalidOutput("vlm_invalid_json", f"not JSON ({e.msg} at char {e.pos})") from e


@dataclass(frozen=True)
class TimedLabel:
    """A proposal snapped into a contiguous cover: [start_s, end_s)."""

    start_s: float
    end_s: float
    subaction: str
    instruction: str


def proposals_to_cover(
    proposals: Sequence[SegmentProposal], t0: float, t1: float, tolerance_s: float
) -> list[TimedLabel]:
    """Check proposals against the window [t0, t1] and snap them into a gap-free cover of it.

    Ends may miss the window and neighbours may leave gaps or overlap by up to `tolerance_s`
    (boundaries move to the midpoint); anything worse is out of range and worth a retry.
    """
    first, last = proposals[0], proposals[-1]
    if first.start > t0 + tolerance_s or last.end < t1 - tolerance_s:
        raise InvalidOutput("vlm_out_of_range",
                            f"segments cover {first.start:.2f}-{last.end:.2f}s, expected {t0:.2f}-{t1:.2f}s")
    outside = [p for p in proposals if p.start < t0 - tolerance_s or p.end > t1 + tolerance_s]
    if outside:
        raise InvalidOutput("vlm_out_of_range",
                            f"segment {outside[0].start:.2f}-{outside[0].end:.2f}s lies outside "
                            f"{t0:.2f}-{t1:.2f}s")
    for prev, nxt in zip(proposals, proposals[1:]):
        if abs(nxt.start - prev.end) > tolerance_s:
            raise InvalidOutput("vlm_gap", f"{prev.end:.2f}s → {nxt.start:.2f}s leaves a gap or overlap "
                                           f"larger than {tolerance_s:.2f}s")
    cuts = [t0] + [(a.end + b.start) / 2 for a, b in zip(proposals, proposals[1:])] + [t1]
    return [TimedLabel(lo, hi, p.subaction, p.instruction)
            for p, lo, hi in zip(proposals, cuts, cuts[1:]) if hi > lo]


def stitch_covers(covers: Sequence[Sequence[TimedLabel]]) -> list[TimedLabel]:
    """Join covers of overlapping windows into one cover, cutting each overlap at a boundary near its middle."""
    if not covers:
        return []
    out = list(covers[0])
    for nxt in covers[1:]:
        lo, hi = nxt[0].start_s, out[-1].end_s
        middle = (lo + hi) / 2
        inner = [s.end_s for s in out[:-1] if lo <= s.end_s <= hi]
        cut = min(inner, key=lambda b: abs(b - middle)) if inner else middle
        head = [TimedLabel(s.start_s, min(s.end_s, cut), s.subaction, s.instruction) for s in out if s.start_s < cut]
        tail = [TimedLabel(max(s.start_s, cut), s.end_s, s.subaction, s.instruction) for s in nxt if s.end_s > cut]
        out = head + tail
    return out


def cover_to_segments(
    cover: Sequence[TimedLabel], num_frames: int, fps: float, min_segment_frames: int
) -> list[Segment]:
    """Seconds → frames [start, end) covering 0..num_frames; segments shorter than the minimum merge away.

    A short segment is absorbed by its predecessor (the next one for the first segment), so the
    cover stays contiguous and the label of the longer neighbour wins.
    """
    if not cover or num_frames <= 0:
        return []
    bounds = [0] + [min(max(int(round(s.start_s * fps)), 0), num_frames) for s in cover[1:]] + [num_frames]
    pieces = [[lo, hi, s] for s, lo, hi in zip(cover, bounds, bounds[1:]) if hi > lo]
    merged: list[list] = []
    for piece in pieces:
        if merged and piece[1] - piece[0] < min_segment_frames:
            merged[-1][1] = piece[1]
        elif merged and merged[-1][1] - merged[-1][0] < min_segment_frames and len(merged) == 1:
            merged[-1] = [merged[-1][0], piece[1], piece[2]]
        else:
            merged.append(piece)
    return [Segment(start=lo, end=hi, subaction=s.subaction, instruction=s.instruction, segmenter="vlm")
            for lo, hi, s in merged]
