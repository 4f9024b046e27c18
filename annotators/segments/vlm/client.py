"""Chat completions over one or more OpenAI-compatible endpoints: round-robin, bounded backoff.

Three kinds of failure, three outcomes:
- transient (429, 5xx, connection, timeout): retried after a delay (the server's Retry-After when
  it sends one, capped by the configured maximum), then VlmUnavailable;
- an answer that is not a chat completion (an HTML page with status 200, `choices: []`, a choice
  without a message): VlmBadResponse, a fault of that one request, not of the run;
- a rejected key or a malformed request (401, 403, 400, 404, 422): RunAbortError, since every
  other request of the run will be rejected the same way.
"""

from __future__ import annotations

import email.utils
import itertools
import json
import math
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import openai

from datasets_cards.errors import RunAbortError

# Worth waiting for: rate limits, server errors, dropped connections and timeouts.
_TRANSIENT = (openai.RateLimitError, openai.InternalServerError, openai.APIConnectionError)


class VlmUnavailable(RuntimeError):
    """The endpoint kept failing with transient errors after every retry."""


class VlmBadResponse(ValueError):
    """The endpoint answered, but not with a chat completion; `reason` names what it sent."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _snippet(text: object, limit: int = 80) -> str:
    """The start of a body on one line, for messages."""
    flat = " ".join(str(text).split())
    return repr(flat[:limit] + ("…" if len(flat) > limit else ""))


def retry_after_s(headers: Mapping[str, str] | None, now: float | None = None) -> float | None:
    """Seconds a server asks us to wait: `retry-after-ms`, else `retry-after` as seconds or an HTTP date."""
    if not headers:
        return None
    for name, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) / divisor
        except ValueError:
            if divisor != 1.0:
                continue
            try:
                parsed = email.utils.parsedate_to_datetime(value)
            except (TypeError, ValueError):
                continue
            if parsed.tzinfo is None:
                continue
            seconds = parsed.timestamp() - (time.time() if now is None else now)
        if math.isfinite(seconds):
            return max(0.0, seconds)
    return None


def _abort_message(e: openai.APIStatusError, endpoint: str, model: object) -> str:
    """One line: the endpoint, the status, what the server said, and what to fix."""
    body = e.body if isinstance(e.body, Mapping) else {}
    said = _snippet(body.get("message") or e.message, 160)
    status = e.status_code
    if status == 401:
        fix = "set OPENAI_API_KEY to a key this endpoint accepts"
        what = "rejected the API key"
    elif status == 403:
        fix = f"check that the API key's account may use model {model!r} (OPENAI_API_KEY, LA_VLM_MODEL)"
        what = "refused the API key"
    elif status == 404:
        fix = (f"set LA_VLM_MODEL to a model this endpoint serves (model {model!r} is unknown there), "
               "or fix OPENAI_BASE_URL")
        what = "does not know the model or route"
    else:  # 400, 422
        fix = (f"fix the request settings (model {model!r}, max_tokens, temperature, extra_body, frame_size) "
               "so the endpoint accepts them")
        what = "rejected the request"
    return f"VLM endpoint {endpoint} {what} (HTTP {status}: {said}): {fix}"


# Faults of the run, not of the request: every other request will fail the same way.
_FATAL = (openai.AuthenticationError, openai.PermissionDeniedError, openai.BadRequestError,
          openai.NotFoundError, openai.UnprocessableEntityError)


@dataclass(frozen=True)
class Completion:
    text: str
    finish_reason: str  # "stop", or "length" when the answer was cut off
    input_tokens: int
    output_tokens: int
    provider_cached_input_tokens: int = 0  # of input_tokens, served from the provider's prefix cache


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
        sleep: Callable[[float], None] | None = None,
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
        self.sleep = sleep or time.sleep  # how the backoff waits (tests record it instead)

    def _client(self) -> openai.OpenAI:
        with self._lock:
            return self._clients[next(self._next)]

    def complete(self, request: Mapping[str, object], *,
                 on_throttled: Callable[[], None] | None = None) -> Completion:
        """One chat completion; transient failures are retried on the next endpoint after a delay.

        The delay is the server's Retry-After when it sends one (at most backoff_max_s), else our
        exponential backoff; `on_throttled` is called for every 429 answer.
        Raises VlmUnavailable (retries spent), VlmBadResponse (not a chat completion) or
        RunAbortError (401/403/400/404/422: the run cannot succeed as configured).
        """
        attempt = 0
        while True:
            client = self._client()
            try:
                response = client.chat.completions.create(**request)
            except _TRANSIENT as e:
                if isinstance(e, openai.RateLimitError) and on_throttled is not None:
                    on_throttled()
                if attempt == self.max_retries:
                    raise VlmUnavailable(f"{type(e).__name__} after {attempt + 1} attempts: {e}") from e
                asked = retry_after_s(e.response.headers) if isinstance(e, openai.APIStatusError) else None
                if asked is not None:
                    delay = min(asked, self.backoff_max_s)
                else:
                    with self._lock:
                        delay = backoff_delay(attempt, self.backoff_base_s, self.backoff_max_s, self._rng)
                self.sleep(delay)
                attempt += 1
                continue
            except _FATAL as e:
                raise RunAbortError(_abort_message(e, str(client.base_url), request.get("model"))) from e
            except json.JSONDecodeError as e:  # a JSON content type over a body that is not JSON
                raise VlmBadResponse(f"the VLM endpoint {client.base_url} answered with a body that is not "
                                     f"JSON: {_snippet(e.doc)}") from e
            return _to_completion(response, str(client.base_url))


def _to_completion(response: object, endpoint: str) -> Completion:
    """The first choice of a chat completion, or VlmBadResponse naming what came instead."""
    if isinstance(response, (str, bytes)):  # the client hands back non-JSON bodies as text
        raise VlmBadResponse(f"the VLM endpoint {endpoint} answered with a non-JSON body, not a chat "
                             f"completion: {_snippet(response)}")
    choices = getattr(response, "choices", None)
    if not isinstance(choices, list) or not choices:
        raise VlmBadResponse(f"the VLM endpoint {endpoint} answered a chat completion with no choices "
                             f"(choices: {choices!r})")
    choice = choices[0]
    message = getattr(choice, "message", None)
    if message is None:
        raise VlmBadResponse(f"the VLM endpoint {endpoint} answered a choice without a message "
                             f"(finish_reason {getattr(choice, 'finish_reason', None)!r})")
    usage = getattr(response, "usage", None)
    return Completion(
        text=getattr(message, "content", None) or "",
        finish_reason=getattr(choice, "finish_reason", None) or "stop",
        input_tokens=(getattr(usage, "prompt_tokens", 0) or 0) if usage else 0,
        output_tokens=(getattr(usage, "completion_tokens", 0) or 0) if usage else 0,
        provider_cached_input_tokens=_cached_prompt_tokens(usage),
    )


def _cached_prompt_tokens(usage: object) -> int:
    """usage.prompt_tokens_details.cached_tokens (OpenAI's field, also sent by vLLM and DashScope), or 0."""
    details = getattr(usage, "prompt_tokens_details", None) if usage else None
    if isinstance(details, dict):
        value = details.get("cached_tokens")
    else:
        value = getattr(details, "cached_tokens", None)
    return int(value) if isinstance(value, (int, float)) and value > 0 else 0
