"""`python -m pipelines.prefect_server URL`: exit 1 with one line unless a Prefect server answers at URL.

`make deploy` and `make worker` ask first: without it `prefect deploy` quietly starts a temporary server of
its own, and the worker stops later with `PREFECT_API_URL must be set`.
"""

from __future__ import annotations

import sys

import httpx

TIMEOUT_S = 5.0
HINT = "start one with `make prefect-server` (PREFECT_PORT=... for another port) or set PREFECT_API_URL to yours"


def server_problem(url: str, timeout: float = TIMEOUT_S) -> str | None:
    """None when a Prefect API answers at `url` (any reply but 404 and 5xx: Prefect Cloud asks for a key)."""
    try:
        reply = httpx.get(f"{url.rstrip('/')}/health", timeout=timeout)
    except httpx.HTTPError as e:
        return f"no Prefect server answers at PREFECT_API_URL={url} ({type(e).__name__}): {HINT}"
    # The server's UI answers every path without /api with its page (200, HTML): only the API says JSON there.
    html = reply.status_code == 200 and not reply.headers.get("content-type", "").startswith("application/json")
    if reply.status_code == 404 or reply.status_code >= 500 or html:
        what = "its web page" if html else reply.status_code
        return (f"PREFECT_API_URL={url} answers {what} to /health: not a Prefect API "
                f"(it ends in /api, e.g. http://127.0.0.1:4200/api); {HINT}")
    return None


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not argv[0]:
        print("error: PREFECT_API_URL is not set; " + HINT, file=sys.stderr)
        return 1
    problem = server_problem(argv[0])
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
