"""Chat completions over one or more OpenAI-compatible endpoints: round-robin, bounded backoff."""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import openai

# Worth waiting for: rate limits, server errors, dropped connections and timeouts.
_TRANSIENT = (openai.RateLimitError, openai.InternalServerError, openai.APIConnectionError)


class VlmUnavailable(RuntimeError):
    """The endpoint kept failing with transient errors after every retry."""


@dataclass(frozen=True)
class Completion:
    text: str
    finish_reason: str  # "stop", or "length" when the answer was cut off
    input_tokens: int
    output_tokens: int


def backoff_delay(attempt: int, base_s: float, max_s: float, rng: random.Random) -> float:
    """Exponential backoff with jitter: min(max, base·2^attempt) scaled by uniform(0.5, 1)."""
    return min(max_s, base_s * 2 ** attempt) * rng.uniform(0.5, 1.0)


class ChatBackend:
    """Sends chat requests, rotating over base URLs; our own backoff replaces the client's."""

    def __init__(
        self,
        base_urls: Sequence[str],
        api_key: str,
        *,
        timeout_s: float,
        max_retries: int,
        backoff_base_s: float,
        backoff_max_s: float,
        seed: int | None = None,
    ) -> None:
        # max_retries=0: the openai client would otherwise retry on its own with fixed delays.
        self._clients = [openai.OpenAI(base_url=u, api_key=api_key, timeout=timeout_s, max_retries=0)
                         for u in base_urls]
        self._next = itertools.cycle(range(len(self._clients)))
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self.max_retries = max_retries
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s

    def _client(self) -> openai.OpenAI:
        with self._lock:
            return self._clients[next(self._next)]

    def complete(self, request: Mapping[str, object]) -> Completion:
        """One chat completion; transient failures are retried on the next endpoint after a delay."""
        attempt = 0
        while True:
            try:
                response = self._client().chat.completions.create(**request)
            except _TRANSIENT as e:
                if attempt == self.max_retries:
                    raise VlmUnavailable(f"{type(e).__name__} after {attempt + 1} attempts: {e}") from e
                with self._lock:
                    delay = backoff_delay(attempt, self.backoff_base_s, self.backoff_max_s, self._rng)
                time.sleep(delay)
                attempt += 1
                continue
            choice = response.choices[0]
            usage = response.usage
            return Completion(
                text=choice.message.content or "",
                finish_reason=choice.finish_reason or "stop",
                input_tokens=usage.prompt_tokens if usage else 0,
                output_tokens=usage.completion_tokens if usage else 0,
            )
