"""Token ledger: input/output tokens per episode and in total, from the API's usage field,
how many of the input tokens the provider served from its own prefix cache, and how many
requests the endpoint throttled (HTTP 429)."""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass


@dataclass
class EpisodeTokens:
    input_tokens: int = 0  # paid in this run
    # ... of which the provider answered from its prefix cache (usage.prompt_tokens_details.cached_tokens:
    # vLLM with --enable-prefix-caching, DashScope, OpenAI); billed at a discount or not at all
    provider_cached_input_tokens: int = 0
    output_tokens: int = 0
    requests: int = 0  # sent in this run (retries included)
    cache_hits: int = 0  # answers replayed from the cache, at no cost
    cached_input_tokens: int = 0  # what the suite's cached answers cost when they were first paid
    cached_output_tokens: int = 0
    throttled: int = 0  # 429 answers (rate limited) received while segmenting the episode


class TokenLedger:
    """Thread-safe counts; `as_dict()` goes to the manifest and the card."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._episodes: dict[str, EpisodeTokens] = {}

    def record(self, episode_id: str, input_tokens: int, output_tokens: int, *, cached: bool,
               provider_cached: int = 0) -> None:
        """One answer: paid now (`cached=False`; `provider_cached` of its input tokens came from the
        provider's prefix cache) or replayed from the suite's response cache (`cached=True`)."""
        with self._lock:
            e = self._episodes.setdefault(episode_id, EpisodeTokens())
            if cached:
                e.cache_hits += 1
                e.cached_input_tokens += input_tokens
                e.cached_output_tokens += output_tokens
            else:
                e.requests += 1
                e.input_tokens += input_tokens
                e.provider_cached_input_tokens += min(max(provider_cached, 0), input_tokens)
                e.output_tokens += output_tokens

    def record_throttled(self, episode_id: str, count: int = 1) -> None:
        """The endpoint answered 429 (rate limited) to a request of this episode."""
        with self._lock:
            self._episodes.setdefault(episode_id, EpisodeTokens()).throttled += count

    def episode(self, episode_id: str) -> EpisodeTokens:
        with self._lock:
            return EpisodeTokens(**asdict(self._episodes.get(episode_id, EpisodeTokens())))

    def take(self, episode_id: str) -> EpisodeTokens:
        """The episode's counts, removed from the ledger: the next time the episode is segmented
        (another run in the same worker process) counts from zero."""
        with self._lock:
            return self._episodes.pop(episode_id, EpisodeTokens())

    def total(self) -> EpisodeTokens:
        with self._lock:
            out = EpisodeTokens()
            for e in self._episodes.values():
                for name, value in asdict(e).items():
                    setattr(out, name, getattr(out, name) + value)
            return out

    def as_dict(self) -> dict[str, object]:
        """{"total": {...}, "episodes": n, "per_episode_mean": {...}, "by_episode": {id: {...}}}."""
        total = self.total()
        with self._lock:
            by_episode = {k: asdict(v) for k, v in self._episodes.items()}
        n = len(by_episode)
        mean = {k: (v / n if n else 0.0) for k, v in asdict(total).items()}
        return {"total": asdict(total), "episodes": n, "per_episode_mean": mean, "by_episode": by_episode}
