"""Settings of the VLM segmenter: endpoint, frame selection, contact sheets, windows, retries."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields

# Environment variables read by VlmConfig.from_env (documented in the README).
ENV_BASE_URL = "OPENAI_BASE_URL"  # one URL, or several separated by commas (round-robin)
ENV_API_KEY = "OPENAI_API_KEY"
ENV_MODEL = "LA_VLM_MODEL"
DEFAULT_MODEL = "qwen3-vl-plus"  # LA4VLA's model (DashScope compatible mode)


class VlmConfigError(ValueError):
    """The endpoint settings are missing or invalid."""


@dataclass(frozen=True)
class VlmConfig:
    """Everything that shapes a request; all of it is recorded in the manifest via as_dict()."""

    base_urls: tuple[str, ...]  # OpenAI-compatible endpoints, used round-robin
    api_key: str
    model: str = DEFAULT_MODEL
    # --- frames (LaParams.vlm_fps / vlm_frame_size) ---
    vlm_fps: float = 2.0  # densest sampling: no two chosen frames closer than 1/vlm_fps s
    frame_size: tuple[int, int] = (320, 180)  # width, height of each frame before tiling
    # sparse uniform frames, so no phase goes unseen (issue 17: 0.5 with the kinematic cue keeps every
    # true boundary of the fit generations within 0.4 s of a frame sent; 1.0 before)
    uniform_fps: float = 0.5
    keyframe_offset_s: float = 0.5  # also take frames this far before/after each keyframe
    skip_static: bool = True  # no uniform frames inside the kinematic segmenter's `wait` segments
    # --- contact sheets: several timestamped frames per JPEG, fewer images and vision tokens ---
    sheet_columns: int = 4
    sheet_rows: int = 3
    tile_scale: float = 0.5  # tiles are frame_size × this inside a sheet (0.75 before issue 17)
    sheet_gutter: int = 2  # white pixels between tiles, so frames do not blur into each other
    # > 0: every tile plus its gutter is a whole number of patch_px × patch_px patches (Qwen3-VL bills
    # one token per 32 × 32 px, Qwen2.5-VL per 28 × 28), frames are letterboxed into it, and a
    # camera's frames are spread evenly over its sheets (no nearly empty last sheet). 0: off.
    patch_px: int = 32
    jpeg_quality: int = 85
    # --- windows: long episodes are split, answered separately and stitched ---
    window_s: float = 30.0
    window_overlap_s: float = 3.0
    # --- prompt ---
    # The kinematic segmenter's segments (the fallback's) as a short text cue, so the model confirms,
    # corrects and names them rather than discovering every boundary; frames then centre on the
    # proposal's boundaries instead of on every keyframe (gripper events stay cues and centres).
    kinematic_cue: bool = True
    # Everything that is the same for every request (rules, vocabulary, definitions, examples, the
    # answer schema) goes first, in the system message, so a server with prefix caching (vLLM,
    # DashScope) bills it once; the frame times are listed once for all cameras.
    prefix_first: bool = True
    # --- grounding ---
    describe_first: bool = False  # ask for a timestamped description before the segments
    # --- validation ---
    boundary_tolerance_s: float = 1.0  # gaps/overlaps/out-of-range up to this are snapped away
    min_segment_frames: int = 3  # shorter segments merge into a neighbour
    max_output_retries: int = 2  # re-ask after malformed or out-of-range output, then fall back
    cross_check: bool = True  # flag segments whose label disagrees with the fallback's
    # --- transport ---
    max_in_flight: int = 16  # episodes segmented at once by segment_many (per worker process)
    temperature: float = 0.1  # LA4VLA: low temperature for consistent JSON
    max_tokens: int = 2048
    timeout_s: float = 120.0
    max_api_retries: int = 5  # on 429 / 5xx / connection errors
    backoff_base_s: float = 1.0  # delay = min(max, base·2^attempt) · uniform(0.5, 1)
    backoff_max_s: float = 30.0  # also caps how long a server's Retry-After is honoured
    extra_body: Mapping[str, object] = field(default_factory=dict)  # e.g. {"enable_thinking": False}

    def __post_init__(self) -> None:
        if not self.base_urls or not all(self.base_urls):
            raise VlmConfigError(f"base_urls must name at least one endpoint, got {self.base_urls!r}")
        positive = ("vlm_fps", "uniform_fps", "tile_scale", "window_s", "timeout_s")
        for name in positive:
            if getattr(self, name) <= 0:
                raise VlmConfigError(f"{name} must be > 0, got {getattr(self, name)!r}")
        for name in ("max_output_retries", "max_api_retries", "backoff_base_s", "backoff_max_s",
                     "keyframe_offset_s", "boundary_tolerance_s", "window_overlap_s"):
            if getattr(self, name) < 0:
                raise VlmConfigError(f"{name} must be ≥ 0, got {getattr(self, name)!r}")
        if self.window_overlap_s >= self.window_s:
            raise VlmConfigError(
                f"window_overlap_s must be < window_s, got {self.window_overlap_s} ≥ {self.window_s}")
        if self.sheet_columns < 1 or self.sheet_rows < 1:
            raise VlmConfigError(
                f"sheet_columns and sheet_rows must be ≥ 1, got {self.sheet_columns}, {self.sheet_rows}")
        if not 1 <= self.jpeg_quality <= 100:
            raise VlmConfigError(f"jpeg_quality must be in [1, 100], got {self.jpeg_quality}")
        if self.sheet_gutter < 0:
            raise VlmConfigError(f"sheet_gutter must be ≥ 0, got {self.sheet_gutter}")
        if self.max_in_flight < 1:
            raise VlmConfigError(f"max_in_flight must be ≥ 1, got {self.max_in_flight}")
        if self.patch_px < 0:
            raise VlmConfigError(f"patch_px must be ≥ 0 (0 = off), got {self.patch_px}")
        if self.min_segment_frames < 1:
            raise VlmConfigError(f"min_segment_frames must be ≥ 1, got {self.min_segment_frames}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> VlmConfig:
        """Read OPENAI_BASE_URL, OPENAI_API_KEY and LA_VLM_MODEL; keyword overrides win."""
        env = os.environ if environ is None else environ
        urls = overrides.pop("base_urls", None) or tuple(
            u.strip() for u in env.get(ENV_BASE_URL, "").split(",") if u.strip())
        key = overrides.pop("api_key", None) or env.get(ENV_API_KEY, "")
        missing = [name for name, value in ((ENV_BASE_URL, urls), (ENV_API_KEY, key)) if not value]
        if missing:
            raise VlmConfigError(
                f"the VLM segmenter needs {' and '.join(missing)} in the environment "
                f"(an OpenAI-compatible endpoint, e.g. {ENV_BASE_URL}=https://dashscope-intl.aliyuncs.com/"
                f"compatible-mode/v1 or http://localhost:8000/v1 for vLLM; {ENV_MODEL} picks the model, "
                f"default {DEFAULT_MODEL}); or use the kinematic segmenter")
        model = overrides.pop("model", None) or env.get(ENV_MODEL, DEFAULT_MODEL)
        return cls(base_urls=tuple(urls), api_key=str(key), model=str(model), **overrides)

    def as_dict(self) -> dict[str, object]:
        """Settings for the manifest, without the API key."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "api_key"}
        out["extra_body"] = dict(self.extra_body)
        return out
