"""LLM extractor: target phrases from any OpenAI-compatible chat endpoint answering JSON.

Memoised in a mapping the caller owns (annotators do no file I/O; the pipeline may
pass a persistent mapping), so a re-run asks nothing.
"""

from __future__ import annotations

import json
from collections.abc import MutableMapping
from typing import Any

from annotators.phrases.base import PHRASE_EXTRACTORS, TargetPhrases

LLM_SYSTEM_PROMPT = (
    "You extract grounding targets from robot task instructions for an open-vocabulary object detector. "
    'Answer with a JSON object {"object": <the thing the robot manipulates>, "destination": <the object it is '
    "put on, in or near, or null>}. Each is a short lower-case noun phrase without articles that keeps colour, "
    "material and kind and drops position and ordinal words (\"the top drawer\" -> \"drawer\"); a part is "
    "named with its whole (\"the handle of the drawer\" -> \"drawer handle\"); pronouns are replaced by what "
    "they refer to; directions (\"to the left\") and sources (\"from the table\") are not destinations."
)


class LlmExtractor:
    """Target phrases from an OpenAI-compatible chat endpoint, JSON output, memoised per instruction.

    `client` is an `openai.OpenAI` (or anything with `chat.completions.create`);
    `cache` is any mutable mapping (a dict, a shelve) owned by the caller.
    """

    def __init__(self, client: Any, model: str, cache: MutableMapping[str, Any] | None = None, temperature: float = 0.0):
        self.client = client
        self.model = model
        self.cache = cache if cache is not None else {}
        self.temperature = temperature  # 0: the same instruction always gives the same phrase

    def __call__(self, instruction: str) -> TargetPhrases:
        key = f"{self.model}\n{instruction}"
        if key not in self.cache:
            reply = self.client.chat.completions.create(
                model=self.model,
                temperature=self.temperature,
                response_format={"type": "json_object"},
                messages=[{"role": "system", "content": LLM_SYSTEM_PROMPT}, {"role": "user", "content": instruction}],
            )
            self.cache[key] = reply.choices[0].message.content
        return parse_llm_reply(self.cache[key], instruction)


def parse_llm_reply(content: str, instruction: str) -> TargetPhrases:
    """Validate the model's JSON answer. Raises ValueError naming the instruction and the reply."""
    try:
        data = json.loads(content)
        obj = str(data["object"]).strip()
        dest = data.get("destination")
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise ValueError(f"LLM reply for {instruction!r} is not the expected JSON: {content!r}") from e
    if not obj:
        raise ValueError(f"LLM reply for {instruction!r} names no object: {content!r}")
    dest = str(dest).strip() if dest else None
    return TargetPhrases(object=obj.lower(), destination=dest.lower() if dest else None)


@PHRASE_EXTRACTORS.register("llm")
def _make_llm(model: str = "gpt-4o-mini", base_url: str | None = None, api_key: str | None = None,
              cache: MutableMapping[str, Any] | None = None, client: Any = None) -> LlmExtractor:
    if client is None:
        import openai  # local: only the llm extractor needs it

        # api_key None: the client reads OPENAI_API_KEY (local OpenAI-compatible servers accept any key)
        client = openai.OpenAI(base_url=base_url, api_key=api_key)
    return LlmExtractor(client, model, cache)
