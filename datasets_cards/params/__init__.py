"""Per-pipeline parameters: one module per pipeline, found by name (see base.py)."""

from datasets_cards.params.base import PIPELINE_PARAMS, Params, deep_merge, with_overrides

__all__ = ["PIPELINE_PARAMS", "Params", "deep_merge", "with_overrides"]
