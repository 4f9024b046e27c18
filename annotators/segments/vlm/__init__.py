"""VLM temporal segmentation (LA4VLA Appendix 7.3-7.5) through an OpenAI-compatible endpoint."""

from annotators.segments.vlm.cache import ResponseCache, request_to_key
from annotators.segments.vlm.config import (
    ENV_API_KEY,
    ENV_BASE_URL,
    ENV_MODEL,
    VlmConfig,
    VlmConfigError,
)
from annotators.segments.vlm.ledger import EpisodeTokens, TokenLedger
from annotators.segments.vlm.schema import InvalidOutput, SegmentProposal
from annotators.segments.vlm.segmenter import VlmSegmenter

__all__ = [
    "ENV_API_KEY", "ENV_BASE_URL", "ENV_MODEL", "EpisodeTokens", "InvalidOutput", "ResponseCache",
    "SegmentProposal", "TokenLedger", "VlmConfig", "VlmConfigError", "VlmSegmenter", "request_to_key",
]
