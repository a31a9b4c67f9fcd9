"""A fake Together chat-completions server over real HTTP, for tests and the benchmark.

The copywriter is tested through the real `together` SDK and a real socket, never a patched
client: retries, timeouts, `retry-after`, connection pooling and response parsing are exactly
what production runs. The server speaks `POST /v1/chat/completions` in the OpenAI/Together
response format and can be scripted per call:

    with FakeTogether(latency_s=0.05) as fake:
        fake.enqueue(rate_limited(retry_after=0.2), malformed_json())  # then happy answers
        ... CopySettings(api_key="test", base_url=fake.base_url) ...
        assert fake.calls == 3 and fake.max_in_flight <= 5

With nothing queued it answers `default` (happy copy built from the brief in the prompt, using
only the offer's label, so its figures always agree with the offer). A whole outage is one
line: `FakeTogether(default=hanging())` or `FakeTogether(default=server_error(503))`.

Answer shapes for the extraction rules (docs/llm-copy.md, "Answer shapes"): happy copy wrapped
in a fence, prose or a reasoning block (`fenced_json`, `prose_around_json`, `think_then_json`),
no JSON at all (`prose_only`), and bodies a proxy sends with HTTP 200 instead of a completion
(`html_page`, `empty_body`, `truncated_body`).
"""

from __future__ import annotations

import contextlib
import json
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

# A hanging request waits this long at most (or until the server stops): a hang guard, far
# beyond any client timeout a test or the benchmark configures.
HANG_S = 600.0
COPY_PLACEHOLDER = "{copy}"


@dataclass(frozen=True)
class Reply:
    """One scripted answer.

    Status 200: `content` is the assistant's text, or None for happy copy from the prompt;
    a `{copy}` inside `content` is replaced by the happy copy's JSON (copy wrapped in prose).
    Other statuses: `content` is the error message in the OpenAI-style error body.
    `raw_body` replaces the whole HTTP body (not a completion at all), sent as `content_type`.
    """

    status: int = 200
    content: str | None = None
    delay_s: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    copy_overrides: dict[str, Any] | None = None
    raw_body: bytes | None = None
    content_type: str = "application/json"


def happy() -> Reply:
    """Valid copy for the brief in the prompt (what an empty script answers)."""
    return Reply()


def rate_limited(retry_after: float | None = 0.1) -> Reply:
    """HTTP 429, optionally with a `retry-after` header in seconds."""
    headers = {} if retry_after is None else {"retry-after": f"{retry_after:g}"}
    return Reply(status=429, headers=headers)


def server_error(status: int = 500) -> Reply:
    return Reply(status=status)


def slow(delay_s: float) -> Reply:
    """A happy answer that arrives after `delay_s` seconds (past a client timeout)."""
    return Reply(delay_s=delay_s)


def hanging() -> Reply:
    """No answer until the client gives up (or the server stops)."""
    return Reply(delay_s=HANG_S)


def malformed_json() -> Reply:
    return Reply(content='{"headline": "Big savings", "email_body": "Hello')


def fenced_json() -> Reply:
    """Happy copy inside a Markdown ```json fence, with a line of prose before it."""
    return Reply(content=f"Here is the copy:\n```json\n{COPY_PLACEHOLDER}\n```")


def prose_around_json() -> Reply:
    """Happy copy with chatty prose before and after (braces in the prose, too)."""
    return Reply(content=f"Sure! I kept to the {{allowed figures}}.\n{COPY_PLACEHOLDER}\n"
                         "Let me know if you want another tone.")


def think_then_json() -> Reply:
    """A reasoning model: a `<think>` block (with a draft object in it), then the copy."""
    draft = json.dumps({
        "headline": "Draft: 30% off in 2023", "email_body": "Draft. Unsubscribe any time.",
        "ctas": ["Go", "Shop", "See"], "subject_lines": ["Draft", "Draft 2"],
        "social_copy": "Draft",
    })  # a complete object that breaks the figures policy: it must not be the one used
    return Reply(content=f"<think>Let me plan. Draft: {draft}. Too many figures; fix it."
                         f"</think>\n{COPY_PLACEHOLDER}")


def empty_answer() -> Reply:
    """A completion whose assistant message is empty."""
    return Reply(content="")


def prose_only() -> Reply:
    """An answer with no JSON object in it."""
    return Reply(content="I am sorry, but I cannot write marketing copy for this campaign.")


def html_page() -> Reply:
    """A proxy's error page with HTTP 200 instead of a completion."""
    page = b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
    return Reply(raw_body=page, content_type="text/html")


def empty_body() -> Reply:
    """HTTP 200 with an empty body."""
    return Reply(raw_body=b"")


def truncated_body() -> Reply:
    """HTTP 200 whose JSON body was cut off (a proxy dropping the connection's tail)."""
    return Reply(raw_body=b'{"id": "fake", "object": "chat.completion", "choices": [{"ind')


def contradicting_numbers() -> Reply:
    """Copy promising 30% off and a year, whatever the offer is."""
    return Reply(
        copy_overrides={
            "headline": "Take 30% off everything this week",
            "subject_lines": ["30% off starts now", "Best deals of 2023"],
        }
    )


def long_subject_line() -> Reply:
    """Happy copy except subject line 2, which is 72 characters."""
    return Reply(
        copy_overrides={
            "subject_lines": [
                "Your offer is waiting",
                "An unusually long subject line that no email client will ever show whole",
            ]
        }
    )


def happy_copy(messages: list[dict[str, Any]]) -> dict[str, Any]:
    """Valid copy for the brief in `messages`, quoting only the offer label."""
    brief: dict[str, Any] = {}
    for message in messages:
        text = str(message.get("content", ""))
        if message.get("role") == "user" and "Brief:" in text:
            try:
                brief = json.loads(text.split("Brief:", 1)[1])
            except ValueError:
                brief = {}
            break
    label = str(brief.get("offer", {}).get("label", "a special offer"))
    subject = ""
    for word in label.split():
        if len(f"{subject} {word}".strip()) > 60:
            break
        subject = f"{subject} {word}".strip()
    return {
        "headline": " ".join(f"{label[:1].upper()}{label[1:]} just for you".split()[:12]),
        "email_body": (
            f"Hello! Enjoy {label} on your next purchases with us. Tap below to claim it "
            "before it ends.\n\nNo longer interested? Unsubscribe in the app settings."
        ),
        "ctas": ["Claim offer", "Shop now", "Learn more"],
        "subject_lines": [subject or "Your offer is waiting", "Your offer is waiting"],
        "social_copy": f"{label[:1].upper()}{label[1:]} in the app today.",
    }


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up mid-request (a cancelled call) is no error of the fake's."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class FakeTogether:
    """The server: start with `with FakeTogether() as fake`, point the SDK at `base_url`."""

    def __init__(self, latency_s: float = 0.0, default: Reply | None = None) -> None:
        self.latency_s = latency_s
        self.default = default or Reply()
        self.calls = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.requests: list[dict[str, Any]] = []
        self.authorization: list[str | None] = []
        self.paths: list[str] = []  # as requested, query string included
        self._script: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        """Root URL without `/v1`, as the SDK's `base_url` expects."""
        if self._server is None:
            raise RuntimeError("the fake server is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def enqueue(self, *replies: Reply) -> None:
        """Script the next calls in order; once the queue is empty, calls get `default`."""
        with self._lock:
            self._script.extend(replies)

    def start(self) -> FakeTogether:
        self._stopping.clear()
        server = _Server(("127.0.0.1", 0), _Handler)
        server.daemon_threads = True
        server.block_on_close = False  # do not wait for handlers still sleeping
        server.fake = self  # type: ignore[attr-defined]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes hanging handlers
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeTogether:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _note_path(self, path: str) -> None:
        with self._lock:
            self.paths.append(path)

    def _begin(self, body: dict[str, Any], authorization: str | None) -> Reply:
        with self._lock:
            self.calls += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self.requests.append(body)
            self.authorization.append(authorization)
            return self._script.popleft() if self._script else self.default

    def _wait(self, seconds: float) -> None:
        """Sleep, but wake up when the server stops (a hanging request must not outlive it)."""
        if seconds > 0:
            self._stopping.wait(seconds)

    def _end(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def respond(self, body: dict[str, Any], reply: Reply) -> tuple[int, dict[str, Any]]:
        """The JSON payload for `reply` to request `body`."""
        if reply.status != 200:
            message = reply.content or f"fake error {reply.status}"
            error = {"message": message, "type": "fake_error"}
            return reply.status, {"error": error}
        messages = body.get("messages", [])
        copy = happy_copy(messages)
        copy.update(reply.copy_overrides or {})
        content = json.dumps(copy)
        if reply.content is not None:
            content = reply.content.replace(COPY_PLACEHOLDER, content)
        prompt_tokens = sum(len(str(m.get("content", ""))) for m in messages) // 4
        completion_tokens = max(1, len(content) // 4)
        with self._lock:
            number = self.calls
        return 200, {
            "id": f"fake-{number}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "fake-model"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the real API
    # Headers and body are two writes; without TCP_NODELAY the body waits ~40 ms for the
    # client's delayed ACK, which would show up as fake latency in the benchmark.
    disable_nagle_algorithm = True

    def do_POST(self) -> None:
        fake: FakeTogether = self.server.fake  # type: ignore[attr-defined]
        raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        # The query string is not part of the route (a base URL may carry one).
        if urlsplit(self.path).path.rstrip("/") != "/v1/chat/completions":
            self._send(404, {"error": {"message": f"no route {self.path}"}}, {})
            return
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            self._send(400, {"error": {"message": "request body is not JSON"}}, {})
            return
        fake._note_path(self.path)
        reply = fake._begin(body, self.headers.get("Authorization"))
        try:
            fake._wait(fake.latency_s + reply.delay_s)
            status, payload = fake.respond(body, reply)
        finally:
            # Out of flight before the answer leaves: the client may send its next request
            # the instant it reads this one, and must not be counted twice.
            fake._end()
        # The client may have given up (timeout) while we slept.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            if reply.raw_body is not None:
                self._send_bytes(200, reply.raw_body, reply.content_type, reply.headers)
            else:
                self._send(status, payload, reply.headers)

    def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str]) -> None:
        self._send_bytes(status, json.dumps(payload).encode(), "application/json", headers)

    def _send_bytes(self, status: int, data: bytes, content_type: str,
                    headers: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        """Silence the per-request access log."""
