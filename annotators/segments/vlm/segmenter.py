"""VlmSegmenter: LA4VLA's VLM temporal segmentation through any OpenAI-compatible endpoint.

Phases for one episode: split into windows → per window, choose frames (keyframes and their
neighbours, sparse uniform) and pack them per camera into timestamped contact sheets →
(optional) describe-first pass → segmentation request (cache first) → validate, re-asking
with the error a bounded number of times → stitch windows into one contiguous cover →
cross-check against the kinematic fallback. Output that stays invalid, or an endpoint that
stays down, yields the fallback's segments marked segmenter="vlm_fallback" with the reason.
An answer that is not a chat completion (an HTML page, no choices) makes the episode an
EpisodeError (quarantined, the other episodes go on); a rejected key or request raises
RunAbortError, which segment_many lets through: it would fail every episode the same way.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from typing import Any

from annotators.segments.base import SEGMENTERS, Segment, SegmentationInput, Segmenter
from annotators.segments.vlm.cache import (
    CachedResponse,
    ResponseCache,
    cache_get,
    cache_put,
    request_to_key,
)
from annotators.segments.vlm.client import (
    ChatBackend,
    Completion,
    VlmBadResponse,
    VlmUnavailable,
)
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
from annotators.segments.vlm.ledger import TokenLedger
from annotators.segments.vlm.prompt import (
    SheetImage,
    description_messages,
    hints_in_range,
    retry_messages,
    segmentation_messages,
)
from annotators.segments.vlm.schema import (
    InvalidOutput,
    TimedLabel,
    cover_to_segments,
    proposals_to_cover,
    stitch_covers,
    text_to_proposals,
)
from datasets_cards import EpisodeError

API_ERROR_FLAG = "vlm_api_error"
BAD_RESPONSE_REASON = "vlm_bad_response"  # quarantine reason prefix: the endpoint sent no chat completion
DISAGREE_FLAG = "kinematic_disagrees"  # flag "kinematic_disagrees:<kinematic label>", reviewed first


def _result_or_error(future: Future[list[Segment]]) -> list[Segment] | EpisodeError:
    try:
        return future.result()
    except EpisodeError as e:
        return e


class VlmSegmenter:
    """Segmenter Protocol over a chat-completions VLM, with cache, ledger and kinematic fallback."""

    name = "vlm"

    def __init__(
        self,
        config: VlmConfig,
        fallback: Segmenter,
        *,
        cache: ResponseCache | None = None,
        ledger: TokenLedger | None = None,
    ) -> None:
        self.config = config
        self.fallback = fallback
        self.cache: ResponseCache = {} if cache is None else cache
        self.ledger = TokenLedger() if ledger is None else ledger
        self._backend = ChatBackend(
            config.base_urls, config.api_key, timeout_s=config.timeout_s, max_retries=config.max_api_retries,
            backoff_base_s=config.backoff_base_s, backoff_max_s=config.backoff_max_s)

    @classmethod
    def from_env(
        cls,
        fallback: Segmenter,
        *,
        cache: ResponseCache | None = None,
        ledger: TokenLedger | None = None,
        environ: Mapping[str, str] | None = None,
        **settings: object,
    ) -> VlmSegmenter:
        """Endpoint from OPENAI_BASE_URL / OPENAI_API_KEY / LA_VLM_MODEL; `settings` are VlmConfig fields."""
        return cls(VlmConfig.from_env(environ, **settings), fallback, cache=cache, ledger=ledger)

    # --- public API ---

    def segment(self, item: SegmentationInput) -> list[Segment]:
        """A contiguous cover of [0, T) frames; the fallback's segments, flagged, when the VLM fails."""
        n = item.num_frames
        if n == 0:
            return []
        c = self.config
        proposal = self._proposal(item)
        try:
            covers = [self._window_cover(item, s, e, proposal)
                      for s, e in episode_to_windows(n, item.fps, c.window_s, c.window_overlap_s)]
        except InvalidOutput as e:
            return self._fall_back(item, e.reason)
        except VlmUnavailable:
            return self._fall_back(item, API_ERROR_FLAG)
        except VlmBadResponse as e:
            raise EpisodeError(f"{BAD_RESPONSE_REASON}: {e.reason}", item.episode_id) from e
        segments = cover_to_segments(stitch_covers(covers), n, item.fps, c.min_segment_frames)
        return self._cross_checked(item, segments, proposal) if c.cross_check else segments

    def segment_many(
        self, items: Iterable[SegmentationInput], max_in_flight: int | None = None
    ) -> Iterator[list[Segment] | EpisodeError]:
        """Segments of each item, in input order, with at most `max_in_flight` episodes in progress
        (default: the config's). An episode that cannot be segmented (undecodable frames, an
        answer that is not a chat completion) yields its EpisodeError in its place, so one bad
        episode does not stop the others. Any other error (RunAbortError) propagates, and the
        episodes not yet started are cancelled."""
        max_in_flight = self.config.max_in_flight if max_in_flight is None else max_in_flight
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be ≥ 1, got {max_in_flight}")
        with ThreadPoolExecutor(max_workers=max_in_flight, thread_name_prefix="vlm") as pool:
            pending: deque[Future[list[Segment]]] = deque()
            try:
                for item in items:
                    if len(pending) == max_in_flight:
                        yield _result_or_error(pending.popleft())
                    pending.append(pool.submit(self.segment, item))
                while pending:
                    yield _result_or_error(pending.popleft())
            finally:  # an error, or the consumer stopped: do not start what is still queued
                for future in pending:
                    future.cancel()

    # --- one window ---

    def window_requests(self, item: SegmentationInput) -> list[dict]:
        """The segmentation requests `segment` sends first, one per window (describe-first aside); sends nothing.

        For cost estimates (benchmarks/vlm_tokens.py) and for inspecting the prompt.
        """
        c = self.config
        proposal = self._proposal(item)
        return [self._request(self._segmentation_messages(item, s, e, self._sheets(item, s, e, proposal), None, proposal))
                for s, e in episode_to_windows(item.num_frames, item.fps, c.window_s, c.window_overlap_s)]

    def frame_indices(self, item: SegmentationInput, start: int = 0, end: int | None = None,
                      proposal: list[Segment] | None = None) -> list[int]:
        """The frames of [start, end) that go into the contact sheets (every camera shows the same ones)."""
        c = self.config
        end = item.num_frames if end is None else end
        if proposal is None:
            proposal = self._proposal(item)
        anchors: list[int] = list(item.keyframes)
        if c.kinematic_cue and proposal:
            # the proposal's boundaries, and the gripper events (exact), instead of every keyframe
            gripper = {int(k) for k, h in zip(item.keyframes, item.keyframe_hints) if "gripper" in h} \
                if len(item.keyframe_hints) == len(item.keyframes) else set()
            anchors = sorted({s.start for s in proposal[1:]} | gripper)
        skip = [(s.start, s.end) for s in proposal if s.subaction == "wait"] if c.skip_static and proposal else []
        return keyframes_to_frame_indices(
            item.num_frames, item.fps, anchors, vlm_fps=c.vlm_fps, uniform_fps=c.uniform_fps,
            keyframe_offset_s=c.keyframe_offset_s, start=start, end=end, skip=skip).tolist()

    def _proposal(self, item: SegmentationInput) -> list[Segment]:
        """The fallback's segments when a setting needs them (cue, static skipping), else []."""
        c = self.config
        if self.fallback is None or not (c.kinematic_cue or c.skip_static):
            return []
        return list(self.fallback.segment(item))

    def _segmentation_messages(self, item: SegmentationInput, start: int, end: int, sheets: list[SheetImage],
                               description: str | None, proposal: list[Segment]) -> list[dict]:
        t0, t1 = start / item.fps, end / item.fps
        c = self.config
        hints = hints_in_range(item.keyframe_hints, t0, t1, c.boundary_tolerance_s)
        cue = None
        if c.kinematic_cue:
            hints = [h for h in hints if "gripper" in h]  # static events are the proposal's boundaries now
            cue = [(max(s.start, start) / item.fps, min(s.end, end) / item.fps, s.subaction)
                   for s in proposal if s.end > start and s.start < end]
        return segmentation_messages(
            task=item.task, sheets=sheets, t0=t0, t1=t1, duration_s=item.num_frames / item.fps,
            hints=hints, description=description, prefix_first=c.prefix_first, proposal=cue)

    def _window_cover(self, item: SegmentationInput, start: int, end: int, proposal: list[Segment]) -> list[TimedLabel]:
        c = self.config
        t0, t1 = start / item.fps, end / item.fps
        sheets = self._sheets(item, start, end, proposal)
        description = self._describe(item, sheets, t0, t1) if c.describe_first else None
        messages = self._segmentation_messages(item, start, end, sheets, description, proposal)
        request = self._request(messages)
        key = request_to_key(request)
        cached = cache_get(self.cache, key)
        if cached is not None:
            try:
                cover = proposals_to_cover(text_to_proposals(cached.text), t0, t1, c.boundary_tolerance_s)
            except InvalidOutput:
                cached = None  # settings changed what counts as valid: ask again
            else:
                self.ledger.record(item.episode_id, cached.input_tokens, cached.output_tokens, cached=True)
                return cover
        problem: InvalidOutput | None = None
        for _ in range(c.max_output_retries + 1):
            answer = self._complete(item, request)
            self.ledger.record(item.episode_id, answer.input_tokens, answer.output_tokens, cached=False,
                               provider_cached=answer.provider_cached_input_tokens)
            try:
                if answer.finish_reason == "length":
                    raise InvalidOutput("vlm_truncated", f"the answer hit max_tokens={c.max_tokens}")
                cover = proposals_to_cover(text_to_proposals(answer.text), t0, t1, c.boundary_tolerance_s)
            except InvalidOutput as e:
                problem = e
                request = self._request(retry_messages(messages, answer.text, str(e), t0, t1))
                continue
            cache_put(self.cache, key, CachedResponse(answer.text, answer.input_tokens, answer.output_tokens))
            return cover
        assert problem is not None
        raise problem

    def _describe(self, item: SegmentationInput, sheets: list[SheetImage], t0: float, t1: float) -> str:
        """Describe-first grounding pass; its answer is cached like any other."""
        request = self._request(description_messages(task=item.task, sheets=sheets, t0=t0, t1=t1))
        key = request_to_key(request)
        cached = cache_get(self.cache, key)
        if cached is not None:
            self.ledger.record(item.episode_id, cached.input_tokens, cached.output_tokens, cached=True)
            return cached.text
        answer = self._complete(item, request)
        self.ledger.record(item.episode_id, answer.input_tokens, answer.output_tokens, cached=False,
                           provider_cached=answer.provider_cached_input_tokens)
        cache_put(self.cache, key, CachedResponse(answer.text, answer.input_tokens, answer.output_tokens))
        return answer.text

    def _complete(self, item: SegmentationInput, request: dict) -> Completion:
        """One request to the endpoint; 429 answers are counted on the episode's ledger entry."""
        return self._backend.complete(request, on_throttled=lambda: self.ledger.record_throttled(item.episode_id))

    def _sheets(self, item: SegmentationInput, start: int, end: int, proposal: list[Segment]) -> list[SheetImage]:
        c = self.config
        indices = self.frame_indices(item, start, end, proposal)
        aligned = c.patch_px > 0
        if aligned:
            tile_size = patch_aligned_tile_size(c.frame_size, c.tile_scale, c.sheet_gutter, c.patch_px)
        else:
            tile_size = (max(1, round(c.frame_size[0] * c.tile_scale)), max(1, round(c.frame_size[1] * c.tile_scale)))
        per_sheet = c.sheet_columns * c.sheet_rows
        if aligned:
            layout = sheet_layout(len(indices), c.sheet_columns, c.sheet_rows)
        else:
            layout = [(first, min(per_sheet, len(indices) - first)) for first in range(0, len(indices), per_sheet)]
        sheets = []
        for camera, (view, frames) in item.frames.items():
            if len(frames) < item.num_frames:
                raise ValueError(f"episode {item.episode_id}: camera {camera} has {len(frames)} frames, "
                                 f"the state has {item.num_frames}")
            for first, count in layout:
                chunk = indices[first:first + count]
                tiles = [frame_to_tile(frames[int(i)], tile_size, f"{i / item.fps:.2f}s", keep_aspect=aligned)
                         for i in chunk]
                # balanced sheets: as few columns as fill the rows this sheet needs
                columns = -(-count // -(-count // c.sheet_columns)) if aligned else c.sheet_columns
                sheet = tiles_to_sheet(tiles, columns, c.sheet_gutter, trailing_gutter=aligned)
                sheets.append(SheetImage(
                    camera=camera, view=view, data_url=image_to_data_url(sheet, c.jpeg_quality),
                    times_s=tuple(float(i) / item.fps for i in chunk), width=sheet.shape[1], height=sheet.shape[0]))
        return sheets

    def _request(self, messages: list[dict]) -> dict:
        c = self.config
        request: dict = {"model": c.model, "messages": messages, "temperature": c.temperature,
                         "max_tokens": c.max_tokens}
        if c.extra_body:
            request["extra_body"] = dict(c.extra_body)
        return request

    # --- fallback and cross-check ---

    def _fall_back(self, item: SegmentationInput, reason: str) -> list[Segment]:
        return [replace(s, segmenter="vlm_fallback", flags=(*s.flags, reason)) for s in self.fallback.segment(item)]

    def _cross_checked(self, item: SegmentationInput, segments: list[Segment],
                       proposal: list[Segment] | None = None) -> list[Segment]:
        """Flag VLM segments whose label differs from the fallback segment they overlap most."""
        reference = proposal or self.fallback.segment(item)
        out = []
        for s in segments:
            best = max(reference, key=lambda r: min(r.end, s.end) - max(r.start, s.start), default=None)
            if best is not None and min(best.end, s.end) > max(best.start, s.start) and best.subaction != s.subaction:
                s = replace(s, flags=(*s.flags, f"{DISAGREE_FLAG}:{best.subaction}"))
            out.append(s)
        return out


@SEGMENTERS.register("vlm")
def vlm_segmenter(kinematic: Segmenter, *, cache: MutableMapping[str, Any] | None = None, **settings: Any) -> VlmSegmenter:
    """The VLM segmenter on the endpoint the environment names (OPENAI_BASE_URL, ...), falling back to `kinematic`."""
    return VlmSegmenter.from_env(kinematic, cache=cache, **settings)
