"""A small OpenAI-compatible chat-completions server for tests (stdlib http.server in a thread).

Each model name is a scenario: `script(model, replies)` sets the replies its requests get in turn
(the last one repeats). A reply's content may be a callable of the request body, so answers can
depend on the time range the prompt asks for. The server counts and keeps every request.
A reply can also misbehave: extra headers (Retry-After), a raw body instead of a chat
completion (an HTML page from a proxy), or its own `choices` list (empty, without a message).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_RANGE = re.compile(r"Time range to cover: start (\d+(?:\.\d+)?), end (\d+(?:\.\d+)?)")


@dataclass(frozen=True)
class Reply:
    content: str | Callable[[dict], str] = ""
    status: int = 200
    finish_reason: str = "stop"
    prompt_tokens: int = 1000
    completion_tokens: int = 100
    cached_prompt_tokens: int | None = None  # usage.prompt_tokens_details.cached_tokens (None: no details)
    delay_s: float = 0.0  # answer this much later (to see requests overlap)
    headers: Mapping[str, str] = field(default_factory=dict)  # sent with the reply, e.g. {"Retry-After": "2"}
    raw: str | None = None  # send this body verbatim (with `content_type`) instead of the JSON reply
    content_type: str = "text/html; charset=utf-8"  # of a raw body
    choices: list | None = None  # replaces the generated choices of a 200 reply, e.g. [] or [{"index": 0}]


def requested_range(request: dict) -> tuple[float, float]:
    """The [start, end] seconds the segmentation prompt of `request` asks to cover."""
    text = json.dumps(request["messages"][-1]["content"])
    m = _RANGE.findall(text)
    if not m:
        raise ValueError("no time range in the last message")
    return float(m[-1][0]), float(m[-1][1])


def halves_answer(first: str = "move", second: str = "grasp") -> Callable[[dict], str]:
    """A valid answer: the requested range split into two segments."""
    def answer(request: dict) -> str:
        t0, t1 = requested_range(request)
        mid = (t0 + t1) / 2
        return json.dumps([
            {"subaction": first, "instruction": f"{first} the gripper", "start": t0, "end": mid},
            {"subaction": second, "instruction": f"{second} the object", "start": mid, "end": t1},
        ])
    return answer


class FakeOpenAI:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._scripts: dict[str, list[Reply]] = {}
        self.counts: Counter[str] = Counter()
        self.requests: dict[str, list[dict]] = {}
        self.hosts: Counter[str] = Counter()
        self.in_flight = 0
        self.peak_in_flight = 0  # most requests being answered at once since the last script()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def script(self, model: str, replies: list[Reply]) -> None:
        with self._lock:
            self._scripts[model] = list(replies)
            self.counts[model] = 0
            self.requests[model] = []
            self.peak_in_flight = 0

    def start(self) -> FakeOpenAI:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _next(self, request: dict, host: str) -> Reply:
        model = request.get("model", "")
        with self._lock:
            replies = self._scripts.get(model) or [Reply(status=404, content=f"unknown scenario {model}")]
            reply = replies[min(self.counts[model], len(replies) - 1)]
            self.counts[model] += 1
            self.requests.setdefault(model, []).append(request)
            self.hosts[host] += 1
        return reply

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # quiet test output
                pass

            def _send(self, status: int, body: dict | str, headers: Mapping[str, str] | None = None,
                      content_type: str = "application/json") -> None:
                data = (body if isinstance(body, str) else json.dumps(body)).encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                if not self.path.endswith("/chat/completions"):
                    self._send(404, {"error": {"message": f"no route {self.path}"}})
                    return
                request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                reply = fake._next(request, self.headers.get("Host", ""))
                with fake._lock:
                    fake.in_flight += 1
                    fake.peak_in_flight = max(fake.peak_in_flight, fake.in_flight)
                try:
                    time.sleep(reply.delay_s)
                    self._answer(request, reply)
                finally:
                    with fake._lock:
                        fake.in_flight -= 1

            def _answer(self, request: dict, reply: Reply) -> None:
                content = reply.content(request) if callable(reply.content) else reply.content
                if reply.raw is not None:
                    self._send(reply.status, reply.raw, reply.headers, reply.content_type)
                    return
                if reply.status != 200:
                    self._send(reply.status, {"error": {"message": content or "scripted error", "type": "test"}},
                               reply.headers)
                    return
                choices = reply.choices if reply.choices is not None else [
                    {"index": 0, "finish_reason": reply.finish_reason,
                     "message": {"role": "assistant", "content": content}}]
                usage: dict = {"prompt_tokens": reply.prompt_tokens, "completion_tokens": reply.completion_tokens,
                               "total_tokens": reply.prompt_tokens + reply.completion_tokens}
                if reply.cached_prompt_tokens is not None:
                    usage["prompt_tokens_details"] = {"cached_tokens": reply.cached_prompt_tokens}
                self._send(200, {
                    "id": "chatcmpl-test", "object": "chat.completion", "created": 0, "model": request["model"],
                    "choices": choices, "usage": usage,
                }, reply.headers)

        return Handler
