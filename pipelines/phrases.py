"""The phrase extractor a run uses (gaze, pixel): rules, or an LLM whose replies are cached on fsspec storage."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any

from annotators.phrases import PhraseExtractor, make_phrase_extractor

ENV_BASE_URL = "OPENAI_BASE_URL"  # the endpoint the openai client reads when no base_url is given
ENV_API_KEY = "OPENAI_API_KEY"
# A local OpenAI-compatible server (vLLM, llama.cpp, Ollama) takes any key, but the openai client refuses to
# start without one: this is what it gets when a base URL is set and OPENAI_API_KEY is not.
LOCAL_SERVER_KEY = "no-key-needed"


class LlmEndpointError(ValueError):
    """`phrase_extractor: llm` without an endpoint: neither a base URL nor an API key."""


def llm_settings(card_extra: Mapping[str, Any], options: Mapping[str, Any]) -> dict[str, Any]:
    """The card's `extra.llm` overlaid by the `llm` option (model, base_url)."""
    return dict(card_extra.get("llm", {}), **dict(options.get("llm") or {}))


def check_llm_endpoint(settings: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> None:
    """LlmEndpointError, in one line, when the LLM extractor has nowhere to ask: no base URL (option or
    $OPENAI_BASE_URL, a local server needs no key) and no $OPENAI_API_KEY (for OpenAI itself)."""
    env = os.environ if environ is None else environ
    if settings.get("base_url") or env.get(ENV_BASE_URL) or settings.get("api_key") or env.get(ENV_API_KEY):
        return
    raise LlmEndpointError(
        f"phrase_extractor=llm needs an OpenAI-compatible endpoint: set {ENV_BASE_URL} (a local server, e.g. "
        f"http://localhost:8000/v1, needs no key) or {ENV_API_KEY} (OpenAI), or pass "
        "-o 'llm={\"base_url\": \"http://...\"}'; or use -o phrase_extractor=rules (no model, no endpoint)")


def check_phrase_endpoint(params: Any, options: Mapping[str, Any]) -> None:
    """A pipeline's preflight: with `phrase_extractor: llm`, the endpoint check of its settings (card and option)."""
    if params.phrase_extractor == "llm":
        check_llm_endpoint(llm_settings(params.extra, options))


def run_phrase_extractor(kind: str, card_extra: Mapping[str, Any], options: Mapping[str, Any],
                         cache_env: str) -> PhraseExtractor:
    """The extractor `kind` (rules | llm). For llm: `llm_settings`, checked by `check_llm_endpoint`, and a reply
    cache at the `llm_cache` option or `$cache_env`."""
    if kind != "llm":
        return make_phrase_extractor(kind)
    settings = llm_settings(card_extra, options)
    check_llm_endpoint(settings)
    # OPENAI_BASE_URL may list several endpoints for the VLM segmenter (round-robin): the extractor asks the first.
    settings["base_url"] = settings.get("base_url") or os.environ.get(ENV_BASE_URL, "").split(",")[0].strip() or None
    if settings["base_url"] and not (settings.get("api_key") or os.environ.get(ENV_API_KEY)):
        settings["api_key"] = LOCAL_SERVER_KEY
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
