"""Talking to the model: the Together client, one bounded, retried, metered call, and LLM
copy for a set of prompts (call, validate, one repair round, else template copy).

The only module that imports `together` and `httpx`. `resources/copywriter.py` imports it
when a batch really has prompts to send, so loading the code location (every run worker,
every CLI call) never pays for the SDK.

Retries are ours, not the SDK's (the client is built with max_retries=0): 408/409/429/5xx,
timeouts, connection errors and HTTP 200 bodies that are no completion (a proxy's HTML page)
are retried with exponential backoff, honouring `retry-after`, so that backoff is
configurable, every attempt is counted, and the fallback reason can say exactly what happened.

Time is bounded for the whole step, not only per request: a circuit breaker (`StepGuard`)
stops all requests after `circuit_breaker_failures` failures of one kind in a row, and a
deadline (`CopySettings.step_deadline_s`) cancels whatever is still running. Both turn the
remaining campaigns into template copy with the reason, so a dead server costs seconds.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import random
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import httpx
from together import (
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    AsyncTogether,
)
from together.types.chat import ChatCompletion

from resources.connection_url import redact_url, url_secrets
from transforms.copy_prompt import CampaignBrief, ChatMessage, build_repair_messages
from transforms.copy_results import (
    CopyMeter,
    CopyOutcome,
    CopySettings,
    redact,
    template_outcome,
)
from transforms.copy_validation import CampaignCopy, check_answer

log = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({408, 409, 429})
# Not retried, but systemic (wrong key, no permission, wrong URL or model): they count
# towards the circuit breaker, since every other campaign would get the same answer.
SYSTEMIC_STATUS = frozenset({401, 403, 404})
BREAKER_KINDS = {
    "timeout": "timeouts",
    "unavailable": "HTTP 5xx/408/409 or connection errors",
    "non_json": "HTTP 200 answers without a chat completion",
    "rejected": "HTTP 401/403/404 answers",
}
# Loggers that write request URLs (the SDK at DEBUG, httpx at INFO): their records are
# redacted, since the base URL may carry a password or a token.
URL_LOGGERS = ("httpx", "together", "together._base_client", "together._response", __name__)


class _RedactingFilter(logging.Filter):
    """Rewrites a record's message and attached traceback with URL secrets (and registered
    values) hidden: httpx's exceptions quote the full request URL."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def _clean(self, text: str) -> str:
        return redact(redact_url(text), *self.secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = self._clean(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info:
            # Formatters print `exc_text` when set; without `exc_info` nobody re-renders it.
            record.exc_text = self._clean(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = self._clean(record.exc_text)
        return True


_LOG_FILTER = _RedactingFilter()


def _redact_logs(secrets: Sequence[str]) -> None:
    """Install the redacting filter on the URL-writing loggers (idempotent)."""
    _LOG_FILTER.secrets.update(secret for secret in secrets if secret)
    for name in URL_LOGGERS:
        logger = logging.getLogger(name)
        if _LOG_FILTER not in logger.filters:
            logger.addFilter(_LOG_FILTER)


def _split_base_url(base_url: str | None) -> tuple[str | None, dict[str, str]]:
    """The server root without its query string, and that query as parameters: the SDK
    appends the path after the whole base URL, so `...?key=x` would swallow the route."""
    if not base_url:
        return None, {}
    parts = urlsplit(base_url)
    if not parts.query:
        return base_url, {}
    return urlunsplit(parts._replace(query="")), dict(parse_qsl(parts.query))


def build_async_client(settings: CopySettings) -> AsyncTogether:
    """An `AsyncTogether` client for `settings`, SDK retries off (we retry ourselves)."""
    if not settings.api_key:
        raise ValueError("no API key: set TOGETHER_API_KEY (or TOGETHER_API_KEY_MARKETING)")
    _redact_logs([settings.api_key, *url_secrets(settings.base_url or "")])
    base_url, query = _split_base_url(settings.base_url)
    return AsyncTogether(
        api_key=settings.api_key,
        base_url=base_url,
        default_query=query or None,
        timeout=settings.timeout_s,
        max_retries=0,
    )


def redact_reason(text: str, settings: CopySettings) -> str:
    """A fallback reason safe to store: no key, no URL password or token."""
    return redact(redact_url(text), settings.api_key, *url_secrets(settings.base_url or ""))


class CallFailedError(Exception):
    """A request that could not produce an answer; the message is the fallback reason."""


class CircuitOpenError(Exception):
    """The breaker is open: no more requests this step; the message is the reason."""


class BadResponseError(Exception):
    """HTTP 200 whose body is no chat completion (an HTML page, empty, cut off)."""


@dataclass
class Answer:
    """The assistant's text of one completion and the tokens it cost."""

    content: str | None
    tokens_in: int
    tokens_out: int


@dataclass(frozen=True)
class Failure:
    """One failed attempt: its breaker kind (None: does not count), the text for the
    reason, whether another attempt may help, and the server's requested wait."""

    kind: str | None
    text: str
    retryable: bool
    retry_after_s: float | None = None


class StepGuard:
    """The circuit breaker of one step: `threshold` failures of one kind with no successful
    response in between open it, and from then on no request is sent.

    429 does not count (the server is up and says when to come back); a success resets
    every kind. Single event loop: no locking needed.
    """

    def __init__(self, settings: CopySettings) -> None:
        self._threshold = settings.circuit_breaker_failures
        self._streaks: Counter[str] = Counter()
        self.open_reason: str | None = None
        self.stopped_by: str | None = None
        self.opened = asyncio.Event()  # set once: requests in flight stop waiting for it

    def check(self) -> None:
        """Raise `CircuitOpenError` when no further request may be sent."""
        if self.open_reason is not None:
            raise CircuitOpenError(self.open_reason)

    def failed(self, failure: Failure) -> None:
        if failure.kind is None or not self._threshold or self.open_reason is not None:
            return
        self._streaks[failure.kind] += 1
        if self._streaks[failure.kind] >= self._threshold:
            self.open_reason = (
                f"circuit_open: {self._threshold} consecutive {BREAKER_KINDS[failure.kind]}, "
                f"no further requests (last: {failure.text})"
            )
            self.stopped_by = self.stopped_by or "circuit_open"
            self.opened.set()
            log.warning("copy: %s", self.open_reason)

    def succeeded(self) -> None:
        self._streaks.clear()


def _retry_after_s(headers: httpx.Headers, cap_s: float) -> float | None:
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        raw = headers.get(name)
        if raw is None:
            continue
        try:
            seconds = float(raw) * scale
        except ValueError:
            parsed = email.utils.parsedate_tz(raw)
            if parsed is None:
                continue
            seconds = email.utils.mktime_tz(parsed) - time.time()
        if 0 < seconds <= cap_s:
            return seconds
    return None


def _error_detail(err: APIStatusError, limit: int = 200) -> str:
    """The server's own error message when it sent one (OpenAI-style body), shortened."""
    body = err.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        message = inner.get("message") if isinstance(inner, dict) else inner
        if message:
            return str(message)[:limit]
    return err.message[:limit]


def _failure(err: Exception, settings: CopySettings) -> Failure:
    """What a failed attempt means for retrying, for the breaker and for the reason."""
    if isinstance(err, APIStatusError):
        code = err.status_code
        if code not in RETRYABLE_STATUS and code < 500:
            text = f"HTTP {code} (not retryable): {_error_detail(err)}"
            return Failure("rejected" if code in SYSTEMIC_STATUS else None, text, False)
        delay = _retry_after_s(err.response.headers, settings.retry_after_max_s)
        return Failure(None if code == 429 else "unavailable", f"HTTP {code}", True, delay)
    if isinstance(err, APITimeoutError | TimeoutError):
        return Failure("timeout", f"timeout ({settings.timeout_s:g} s per request)", True)
    if isinstance(err, APIConnectionError):
        return Failure("unavailable", f"connection error ({err.__cause__ or err})", True)
    return Failure("non_json", str(err), True)


def _body_problem(raw: Any, error: Exception | None = None) -> BadResponseError:
    http = raw.http_response
    content_type = http.headers.get("content-type", "no content type").split(";")[0]
    detail = f": {error.__class__.__name__}" if error is not None else ""
    return BadResponseError(f"HTTP 200 without a chat completion ({content_type}, "
                            f"{len(http.content)} bytes{detail})")


class Caller:
    """Sends one chat completion with bounded concurrency, retries, metering and the
    step's circuit breaker."""

    def __init__(self, client: AsyncTogether, settings: CopySettings, guard: StepGuard
                 ) -> None:
        self._client = client
        self._settings = settings
        self._guard = guard
        self._slots = asyncio.Semaphore(settings.max_concurrency)
        if settings.response_format == "json_schema":
            schema = CampaignCopy.model_json_schema()
            self._response_format: dict[str, Any] = {
                "type": "json_schema",
                "json_schema": {"name": "campaign_copy", "schema": schema},
            }
        else:
            self._response_format = {"type": "json_object"}

    def _backoff_s(self, attempt: int) -> float:
        s = self._settings
        return min(s.backoff_base_s * 2**attempt, s.backoff_max_s) * (1 - 0.25 * random.random())

    async def _post(self, messages: Sequence[ChatMessage]) -> ChatCompletion:
        """One HTTP request; a 200 that is no completion raises `BadResponseError`."""
        s = self._settings
        async with asyncio.timeout(s.timeout_s):
            raw = await self._client.chat.completions.with_raw_response.create(
                model=s.model,
                messages=list(messages),  # type: ignore[arg-type]
                temperature=s.temperature,
                max_tokens=s.max_tokens,
                response_format=self._response_format,  # type: ignore[arg-type]
            )
            try:
                response = await raw.parse()
            except (json.JSONDecodeError, APIResponseValidationError) as err:
                raise _body_problem(raw, err) from err
        if not isinstance(response, ChatCompletion) or not response.choices:
            raise _body_problem(raw)
        return response

    async def _post_unless_open(self, messages: Sequence[ChatMessage]) -> ChatCompletion:
        """`_post`, abandoned when the breaker opens meanwhile: the requests in flight to a
        server that stopped answering would otherwise each wait out their timeout."""
        post = asyncio.ensure_future(self._post(messages))
        opened = asyncio.ensure_future(self._guard.opened.wait())
        try:
            await asyncio.wait({post, opened}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            opened.cancel()
            if not post.done():
                post.cancel()
                await asyncio.gather(post, return_exceptions=True)
        if post.cancelled():
            self._guard.check()
        return post.result()

    async def _send(self, messages: Sequence[ChatMessage], meter: CopyMeter) -> Answer:
        self._guard.check()  # do not even queue for a slot once the breaker is open
        async with self._slots:
            self._guard.check()  # it may have opened while this request waited
            started = time.perf_counter()
            meter.calls += 1
            try:
                response = await self._post_unless_open(messages)
            finally:
                meter.latencies_ms.append((time.perf_counter() - started) * 1000)
        usage = response.usage
        choice = response.choices[0]
        answer = Answer(
            content=choice.message.content if choice.message else None,
            tokens_in=usage.prompt_tokens if usage else 0,
            tokens_out=usage.completion_tokens if usage else 0,
        )
        meter.tokens_in += answer.tokens_in
        meter.tokens_out += answer.tokens_out
        return answer

    async def complete(self, messages: Sequence[ChatMessage], meter: CopyMeter) -> Answer:
        """The answer, or `CallFailedError` once retries are spent or the error is final;
        `CircuitOpenError` when the breaker stops this request (or its retry)."""
        s = self._settings
        last = Failure(None, "no attempt made", True)
        for attempt in range(s.max_retries + 1):
            try:
                answer = await self._send(messages, meter)
            except (APIStatusError, APIConnectionError, TimeoutError, BadResponseError) as err:
                last = _failure(err, s)
                self._guard.failed(last)
                if not last.retryable:
                    raise CallFailedError(last.text) from err
            else:
                self._guard.succeeded()
                return answer
            if attempt < s.max_retries:
                self._guard.check()  # no retry (nor its wait) once the breaker is open
                meter.retries += 1
                wait = last.retry_after_s
                await asyncio.sleep(wait if wait is not None else self._backoff_s(attempt))
        raise CallFailedError(f"{last.text} after {s.max_retries} retries")


async def _write_one(
    caller: Caller,
    brief: CampaignBrief,
    messages: list[ChatMessage],
    settings: CopySettings,
    meter: CopyMeter,
) -> CopyOutcome:
    """LLM copy for one prompt: call, validate, one repair round, else the template.
    `meter` is this prompt's own: what it cost is reported even when it falls back."""
    started = time.perf_counter()

    def elapsed_ms() -> int:
        return round((time.perf_counter() - started) * 1000)

    def fallback(reason: str) -> CopyOutcome:
        outcome = template_outcome(brief, redact_reason(reason, settings), elapsed_ms())
        outcome.tokens_in, outcome.tokens_out = meter.tokens_in, meter.tokens_out
        return outcome

    try:
        first = await caller.complete(messages, meter)
        copy, problems = check_answer(first.content, brief.offer, settings.banned_claims)
        if copy is None:
            meter.repairs += 1
            repair = build_repair_messages(messages, first.content or "", problems)
            try:
                second = await caller.complete(repair, meter)
            except CallFailedError as err:
                return fallback(f"repair call failed: {err} (first answer: {problems[0]})")
            copy, problems = check_answer(second.content, brief.offer, settings.banned_claims)
            if copy is None:
                return fallback(f"invalid output after repair: {'; '.join(problems)}")
            meter.repaired += 1
    except (CallFailedError, CircuitOpenError) as err:
        return fallback(str(err))
    except Exception as err:  # a bug or an unexpected response must not sink the batch
        log.exception("copy generation failed for campaign %s", brief.campaign_id)
        return fallback(f"unexpected error: {type(err).__name__}: {err}")
    return CopyOutcome(
        copy=copy,
        source="llm",
        model=settings.model,
        tokens_in=meter.tokens_in,
        tokens_out=meter.tokens_out,
        latency_ms=elapsed_ms(),
    )


def _deadline_outcome(brief: CampaignBrief, reason: str, meter: CopyMeter, started: float
                      ) -> CopyOutcome:
    """Template copy for a prompt the deadline cut off, with what it had cost so far."""
    outcome = template_outcome(brief, reason, round((time.perf_counter() - started) * 1000))
    outcome.tokens_in, outcome.tokens_out = meter.tokens_in, meter.tokens_out
    return outcome


async def write_with_model(
    prompts: Mapping[str, tuple[CampaignBrief, list[ChatMessage]]],
    settings: CopySettings,
    meters: Mapping[str, CopyMeter],
) -> tuple[dict[str, CopyOutcome], dict[str, Any]]:
    """Copy for each prompt hash, all requests through one client, one concurrency bound,
    one circuit breaker and one deadline; each prompt's cost goes to `meters[hash]`.

    Never raises for a single campaign: a failed one gets template copy. Returns the
    outcomes and the limits that applied (`deadline_s`, `stopped_by`: None, "deadline" or
    "circuit_open") for the run's stats.
    """
    started = time.perf_counter()
    deadline = settings.step_deadline_s(len(prompts))
    guard = StepGuard(settings)
    async with build_async_client(settings) as client:
        caller = Caller(client, settings, guard)
        tasks = {
            key: asyncio.create_task(_write_one(caller, *prompts[key], settings, meters[key]))
            for key in prompts
        }
        _, pending = await asyncio.wait(tasks.values(), timeout=deadline) if tasks else ((), ())
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    reason = f"deadline: {deadline:g} s for this step's {len(prompts)} prompts ran out"
    if pending:
        guard.stopped_by = guard.stopped_by or "deadline"
        log.warning("copy: %s, %d campaigns get template copy", reason, len(pending))
    outcomes = {
        key: _deadline_outcome(prompts[key][0], reason, meters[key], started)
        if task in pending else task.result()
        for key, task in tasks.items()
    }
    return outcomes, {"deadline_s": round(deadline, 3), "stopped_by": guard.stopped_by}
