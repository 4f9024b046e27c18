"""The phrase extractor a run uses (gaze, pixel): rules, or an LLM whose replies are cached on fsspec storage."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Mapping, MutableMapping
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
        settings["cache"] = ReplyCache(str(cache_path))
    return make_phrase_extractor("llm", **settings)


class ReplyCache(MutableMapping[str, str]):
    """LLM replies on fsspec storage, one file per prompt: the file is named by the prompt's sha256 (a prompt
    holds newlines and slashes, which a path must not), the reply stored as UTF-8 text."""

    def __init__(self, url: str):
        import fsspec

        self.store = fsspec.get_mapper(url, create=True)

    @staticmethod
    def _name(key: str) -> str:
        return hashlib.sha256(key.encode()).hexdigest() + ".txt"

    def __getitem__(self, key: str) -> str:
        return self.store[self._name(key)].decode()

    def __setitem__(self, key: str, value: str) -> None:
        self.store[self._name(key)] = value.encode()

    def __delitem__(self, key: str) -> None:
        del self.store[self._name(key)]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self._name(key) in self.store

    def __iter__(self) -> Iterator[str]:  # names only: the prompts are not kept
        return iter(self.store)

    def __len__(self) -> int:
        return len(self.store)
