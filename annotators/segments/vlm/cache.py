"""Response cache keyed by the request hash, so a re-run pays nothing.

The cache is any MutableMapping[str, bytes] the caller injects (annotators do no file I/O):
a dict (the default, one process), or `fsspec.get_mapper("OUT/la/droid/vlm_cache")`, which
stores one JSON file per request under a local path or s3:// / gs:// and survives re-runs.
Only answers that passed validation are stored, so retries never replay a bad answer.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import MutableMapping
from dataclasses import asdict, dataclass

ResponseCache = MutableMapping[str, bytes]


@dataclass(frozen=True)
class CachedResponse:
    text: str
    input_tokens: int
    output_tokens: int


def request_to_key(request: dict) -> str:
    """Stable file-name-safe key: sha256 of the canonical JSON of everything sent."""
    canonical = json.dumps(request, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest() + ".json"


def cache_get(cache: ResponseCache, key: str) -> CachedResponse | None:
    """The stored answer, or None when absent or unreadable (a file cut short by a killed run)."""
    try:
        raw = cache[key]
    except KeyError:
        return None
    try:
        return CachedResponse(**json.loads(raw))
    except (ValueError, TypeError):
        return None


def cache_put(cache: ResponseCache, key: str, response: CachedResponse) -> None:
    cache[key] = json.dumps(asdict(response)).encode("utf-8")
