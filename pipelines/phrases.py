"""The phrase extractor a run uses (gaze, pixel): rules, or an LLM whose replies are cached on fsspec storage."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from annotators.phrases import PhraseExtractor, make_phrase_extractor


def run_phrase_extractor(kind: str, card_extra: Mapping[str, Any], options: Mapping[str, Any],
                         cache_env: str) -> PhraseExtractor:
    """The extractor `kind` (rules | llm). For llm: settings from the card's `extra.llm` overlaid by the `llm`
    option (model, base_url, api_key), and a reply cache at the `llm_cache` option or `$cache_env`."""
    if kind != "llm":
        return make_phrase_extractor(kind)
    settings = dict(card_extra.get("llm", {}), **dict(options.get("llm") or {}))
    cache_path = options.get("llm_cache") or os.environ.get(cache_env)
    if cache_path:
        import fsspec

        settings["cache"] = fsspec.get_mapper(str(cache_path), create=True)
    return make_phrase_extractor("llm", **settings)
