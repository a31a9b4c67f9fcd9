"""Campaign copy for a batch of briefs: cache first, then the LLM, then templates.

The rules this module exists to enforce (docs/llm-copy.md has the long version):

- Never re-bill: each brief's prompt hash is looked up in the cache first; only validated LLM
  copy is stored, so template copy is retried with the model on a later run.
- Bounded and patient: at most `max_concurrency` requests in flight; 408/409/429/5xx,
  timeouts and connection errors are retried with exponential backoff (honouring
  `retry-after`). Retries are ours, not the SDK's (the client is built with max_retries=0),
  so that backoff is configurable, every attempt is counted, and the fallback reason can say
  exactly what happened.
- Never block the pipeline: a campaign whose calls fail, or whose answer is still invalid after
  one repair round, gets deterministic template copy with the reason recorded. Nothing a single
  campaign does raises.

No Dagster here: `CopySettings` is a plain object that `resources.llm` fills in.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import math
import random
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Literal, Protocol

import httpx
from together import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AsyncTogether,
)

from transforms.copy_prompt import (
    DEFAULT_BANNED_CLAIMS,
    PROMPT_TEMPLATE_VERSION,
    CampaignBrief,
    ChatMessage,
    build_prompt,
    build_repair_messages,
    prompt_hash,
)
from transforms.copy_templates import template_copy
from transforms.copy_validation import CampaignCopy, check_answer, validate_copy

log = logging.getLogger(__name__)

DEFAULT_MODEL = "meta-llama/Llama-3.3-70B-Instruct-Turbo"
RETRYABLE_STATUS = frozenset({408, 409, 429})
CopySource = Literal["llm", "cache", "template"]


@dataclass(frozen=True)
class CopySettings:
    """Everything the copywriter needs; built by `resources.llm.TogetherCopyResource`.

    The key is excluded from repr so settings can be logged or shown in a debugger safely.
    """

    api_key: str | None = field(default=None, repr=False)
    model: str = DEFAULT_MODEL
    base_url: str | None = None
    timeout_s: float = 30.0
    max_retries: int = 3
    max_concurrency: int = 5
    temperature: float = 0.7
    max_tokens: int = 700
    price_per_million_input_tokens: float = 0.88
    price_per_million_output_tokens: float = 0.88
    response_format: Literal["json_object", "json_schema"] = "json_object"
    backoff_base_s: float = 1.0
    backoff_max_s: float = 10.0
    retry_after_max_s: float = 60.0
    banned_claims: tuple[str, ...] = DEFAULT_BANNED_CLAIMS

    def __post_init__(self) -> None:
        # A zero semaphore would hang the run instead of failing it: refuse such settings.
        if self.max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, got {self.max_concurrency}")
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be 0 or more, got {self.max_retries}")
        if self.timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {self.timeout_s}")


def build_async_client(settings: CopySettings) -> AsyncTogether:
    """An `AsyncTogether` client for `settings`, SDK retries off (we retry ourselves)."""
    if not settings.api_key:
        raise ValueError("no API key: set TOGETHER_API_KEY (or TOGETHER_API_KEY_MARKETING)")
    return AsyncTogether(
        api_key=settings.api_key,
        base_url=settings.base_url,
        timeout=settings.timeout_s,
        max_retries=0,
    )


@dataclass(frozen=True)
class CachedCopy:
    """One row of `llm_copy_cache`: validated copy keyed by the prompt hash."""

    prompt_hash: str
    model: str
    response_json: dict[str, Any]
    tokens_in: int
    tokens_out: int
    created_at: datetime


class CopyCache(Protocol):
    """Where validated LLM copy is kept between runs (the warehouse in production)."""

    def get_many(self, hashes: Sequence[str]) -> Mapping[str, CachedCopy]:
        """The cached copies among `hashes`; missing hashes are simply absent."""
        ...

    def put_many(self, records: Sequence[CachedCopy]) -> None:
        """Insert or replace `records` by prompt hash."""
        ...


class InMemoryCopyCache:
    """A dict-backed `CopyCache` for tests and the benchmark."""

    def __init__(self) -> None:
        self.records: dict[str, CachedCopy] = {}

    def get_many(self, hashes: Sequence[str]) -> dict[str, CachedCopy]:
        return {h: self.records[h] for h in hashes if h in self.records}

    def put_many(self, records: Sequence[CachedCopy]) -> None:
        self.records.update((record.prompt_hash, record) for record in records)


@dataclass(frozen=True)
class CopyResult:
    """The copy for one campaign plus where it came from (a `campaign_copy` row)."""

    campaign_id: str
    headline: str
    email_body: str
    ctas: list[str]
    subject_lines: list[str]
    social_copy: str
    copy_source: CopySource
    fallback_reason: str | None
    model: str | None
    prompt_hash: str
    prompt_template_version: str
    tokens_in: int
    tokens_out: int
    latency_ms: int
    created_at: datetime

    def to_row(self, as_of_date: date) -> dict[str, Any]:
        """The `campaign_copy` columns for partition `as_of_date`."""
        return {
            "as_of_date": as_of_date,
            "campaign_id": self.campaign_id,
            "headline": self.headline,
            "email_body": self.email_body,
            "ctas": list(self.ctas),
            "subject_lines": list(self.subject_lines),
            "social_copy": self.social_copy,
            "copy_source": self.copy_source,
            "fallback_reason": self.fallback_reason,
            "model": self.model,
            "prompt_hash": self.prompt_hash,
            "prompt_template_version": self.prompt_template_version,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "created_at": self.created_at,
        }


@dataclass(frozen=True)
class CopyRunResult:
    """All campaigns' copy, in input order, and the run's spend and latency figures."""

    results: list[CopyResult]
    stats: dict[str, Any]

    def rows(self, as_of_date: date) -> list[dict[str, Any]]:
        return [result.to_row(as_of_date) for result in self.results]


class CallFailedError(Exception):
    """A request that could not produce an answer; the message is the fallback reason."""


@dataclass
class _Answer:
    content: str | None
    tokens_in: int
    tokens_out: int


@dataclass
class _Outcome:
    copy: CampaignCopy
    source: CopySource
    reason: str | None = None
    model: str | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    latency_ms: int = 0
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass
class _Meter:
    """Counters shared by all requests of one run (single event loop: no locking needed)."""

    calls: int = 0
    retries: int = 0
    repairs: int = 0
    repaired: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    latencies_ms: list[float] = field(default_factory=list)


def _percentile(values: Sequence[float], pct: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)], 1)


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


class _Caller:
    """Sends one chat completion with bounded concurrency, retries and metering."""

    def __init__(self, client: AsyncTogether, settings: CopySettings, meter: _Meter) -> None:
        self._client = client
        self._settings = settings
        self._meter = meter
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

    async def _send(self, messages: Sequence[ChatMessage]) -> _Answer:
        s = self._settings
        async with self._slots:
            started = time.perf_counter()
            self._meter.calls += 1
            try:
                async with asyncio.timeout(s.timeout_s):
                    response = await self._client.chat.completions.create(
                        model=s.model,
                        messages=list(messages),  # type: ignore[arg-type]
                        temperature=s.temperature,
                        max_tokens=s.max_tokens,
                        response_format=self._response_format,  # type: ignore[arg-type]
                    )
            finally:
                self._meter.latencies_ms.append((time.perf_counter() - started) * 1000)
        usage = response.usage
        choice = response.choices[0] if response.choices else None
        answer = _Answer(
            content=choice.message.content if choice and choice.message else None,
            tokens_in=usage.prompt_tokens if usage else 0,
            tokens_out=usage.completion_tokens if usage else 0,
        )
        self._meter.tokens_in += answer.tokens_in
        self._meter.tokens_out += answer.tokens_out
        return answer

    async def complete(self, messages: Sequence[ChatMessage]) -> _Answer:
        """The answer, or `CallFailedError` once retries are spent or the error is final."""
        s = self._settings
        last_error = "no attempt made"
        for attempt in range(s.max_retries + 1):
            delay: float | None = None
            try:
                return await self._send(messages)
            except APIStatusError as err:
                code = err.status_code
                if code not in RETRYABLE_STATUS and code < 500:
                    detail = _error_detail(err)
                    raise CallFailedError(f"HTTP {code} (not retryable): {detail}") from err
                last_error = f"HTTP {code}"
                delay = _retry_after_s(err.response.headers, s.retry_after_max_s)
            except (APITimeoutError, TimeoutError):
                last_error = f"timeout ({s.timeout_s:g} s per request)"
            except APIConnectionError as err:
                last_error = f"connection error ({err.__cause__ or err})"
            if attempt < s.max_retries:
                self._meter.retries += 1
                await asyncio.sleep(delay if delay is not None else self._backoff_s(attempt))
        raise CallFailedError(f"{last_error} after {s.max_retries} retries")


def _error_detail(err: APIStatusError, limit: int = 200) -> str:
    """The server's own error message when it sent one (OpenAI-style body), shortened."""
    body = err.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        message = inner.get("message") if isinstance(inner, dict) else inner
        if message:
            return str(message)[:limit]
    return err.message[:limit]


def _redact(text: str, secret: str | None) -> str:
    # Placeholder keys for local servers ("x", "test") are no secret, and replacing every
    # occurrence of a one-letter string would garble the reason.
    return text.replace(secret, "***") if secret and len(secret) >= 8 else text


def _template(brief: CampaignBrief, reason: str, latency_ms: int = 0) -> _Outcome:
    return _Outcome(
        copy=template_copy(brief), source="template", reason=reason, latency_ms=latency_ms
    )


async def _write_one(
    caller: _Caller,
    brief: CampaignBrief,
    messages: list[ChatMessage],
    settings: CopySettings,
    meter: _Meter,
) -> _Outcome:
    """LLM copy for one prompt: call, validate, one repair round, else the template."""
    started = time.perf_counter()
    spent = [0, 0]

    def elapsed_ms() -> int:
        return round((time.perf_counter() - started) * 1000)

    async def ask(conversation: list[ChatMessage]) -> _Answer:
        answer = await caller.complete(conversation)
        spent[0] += answer.tokens_in
        spent[1] += answer.tokens_out
        return answer

    def fallback(reason: str) -> _Outcome:
        outcome = _template(brief, _redact(reason, settings.api_key), elapsed_ms())
        outcome.tokens_in, outcome.tokens_out = spent
        return outcome

    try:
        first = await ask(messages)
        copy, problems = check_answer(first.content, brief.offer, settings.banned_claims)
        if copy is None:
            meter.repairs += 1
            repair = build_repair_messages(messages, first.content or "", problems)
            try:
                second = await ask(repair)
            except CallFailedError as err:
                return fallback(f"repair call failed: {err} (first answer: {problems[0]})")
            copy, problems = check_answer(second.content, brief.offer, settings.banned_claims)
            if copy is None:
                return fallback(f"invalid output after repair: {'; '.join(problems)}")
            meter.repaired += 1
    except CallFailedError as err:
        return fallback(str(err))
    except Exception as err:  # a bug or an unexpected response must not sink the batch
        log.exception("copy generation failed for campaign %s", brief.campaign_id)
        return fallback(f"unexpected error: {type(err).__name__}: {err}")
    return _Outcome(
        copy=copy,
        source="llm",
        model=settings.model,
        tokens_in=spent[0],
        tokens_out=spent[1],
        latency_ms=elapsed_ms(),
    )


def _from_cache(
    record: CachedCopy, brief: CampaignBrief, settings: CopySettings
) -> _Outcome | None:
    """A cached copy, re-validated: rules may have tightened since it was stored."""
    try:
        copy = CampaignCopy.model_validate(record.response_json)
    except ValueError:
        return None
    if validate_copy(copy, brief.offer, settings.banned_claims):
        return None
    return _Outcome(
        copy=copy,
        source="cache",
        model=record.model,
        tokens_in=record.tokens_in,
        tokens_out=record.tokens_out,
        created_at=record.created_at,
    )


async def generate_copies(
    briefs: Sequence[CampaignBrief],
    settings: CopySettings,
    cache: CopyCache | None = None,
) -> CopyRunResult:
    """Copy for every brief, in order. Raises only if the cache itself fails."""
    run_started = time.perf_counter()
    meter = _Meter()
    prompts: dict[str, tuple[CampaignBrief, list[ChatMessage]]] = {}
    hashes: list[str] = []
    for brief in briefs:
        messages = build_prompt(brief, settings.banned_claims)
        key = prompt_hash(
            messages,
            model=settings.model,
            temperature=settings.temperature,
            max_tokens=settings.max_tokens,
            response_format=settings.response_format,
        )
        hashes.append(key)
        prompts.setdefault(key, (brief, messages))

    outcomes: dict[str, _Outcome] = {}
    stored = cache.get_many(list(prompts)) if cache is not None and prompts else {}
    for key, record in stored.items():
        hit = _from_cache(record, prompts[key][0], settings)
        if hit is not None:
            outcomes[key] = hit
    cache_hits = len(outcomes)

    missing = [key for key in prompts if key not in outcomes]
    if missing and not settings.api_key:
        for key in missing:
            outcomes[key] = _template(prompts[key][0], "no API key")
    elif missing:
        async with build_async_client(settings) as client:
            caller = _Caller(client, settings, meter)
            written = await asyncio.gather(
                *(_write_one(caller, *prompts[key], settings, meter) for key in missing)
            )
        outcomes.update(zip(missing, written, strict=True))
        # Only validated LLM copy is cached: template copy must be retried by a later run.
        fresh = [
            _cache_record(key, outcomes[key]) for key in missing if outcomes[key].source == "llm"
        ]
        if cache is not None and fresh:
            cache.put_many(fresh)

    results = [
        _result(brief, key, outcomes[key]) for brief, key in zip(briefs, hashes, strict=True)
    ]
    if missing and not settings.api_key:
        log.warning("no API key: template copy for %d campaigns", len(missing))
    for result in results:
        if result.copy_source == "template" and result.fallback_reason != "no API key":
            log.warning(
                "template copy for campaign %s: %s", result.campaign_id, result.fallback_reason
            )
    stats = _stats(results, meter, settings, cache_hits, len(prompts), run_started)
    log.info("campaign copy: %s", stats)
    return CopyRunResult(results=results, stats=stats)


def _cache_record(key: str, outcome: _Outcome) -> CachedCopy:
    return CachedCopy(
        prompt_hash=key,
        model=outcome.model or "",
        response_json=outcome.copy.model_dump(),
        tokens_in=outcome.tokens_in,
        tokens_out=outcome.tokens_out,
        created_at=outcome.created_at,
    )


def _result(brief: CampaignBrief, key: str, outcome: _Outcome) -> CopyResult:
    copy = outcome.copy
    return CopyResult(
        campaign_id=brief.campaign_id,
        headline=copy.headline,
        email_body=copy.email_body,
        ctas=list(copy.ctas),
        subject_lines=list(copy.subject_lines),
        social_copy=copy.social_copy,
        copy_source=outcome.source,
        fallback_reason=outcome.reason,
        model=outcome.model,
        prompt_hash=key,
        prompt_template_version=PROMPT_TEMPLATE_VERSION,
        tokens_in=outcome.tokens_in,
        tokens_out=outcome.tokens_out,
        latency_ms=outcome.latency_ms,
        created_at=outcome.created_at,
    )


def _stats(
    results: Sequence[CopyResult],
    meter: _Meter,
    settings: CopySettings,
    cache_hits: int,
    unique_prompts: int,
    run_started: float,
) -> dict[str, Any]:
    sources = Counter(result.copy_source for result in results)
    cost = (
        meter.tokens_in * settings.price_per_million_input_tokens
        + meter.tokens_out * settings.price_per_million_output_tokens
    ) / 1_000_000
    return {
        "campaigns": len(results),
        "unique_prompts": unique_prompts,
        "calls_made": meter.calls,
        "retries": meter.retries,
        "repairs": meter.repairs,
        "repaired": meter.repaired,
        "cache_hits": cache_hits,
        "llm": sources["llm"],
        "cache": sources["cache"],
        "template": sources["template"],
        "tokens_in": meter.tokens_in,
        "tokens_out": meter.tokens_out,
        "estimated_cost_usd": round(cost, 6),
        "latency_p50_ms": _percentile(meter.latencies_ms, 50),
        "latency_p95_ms": _percentile(meter.latencies_ms, 95),
        "wall_time_s": round(time.perf_counter() - run_started, 3),
        "model": settings.model,
        "prompt_template_version": PROMPT_TEMPLATE_VERSION,
        "fallback_reasons": dict(
            Counter(r.fallback_reason for r in results if r.fallback_reason is not None)
        ),
    }


def generate_copies_sync(
    briefs: Sequence[CampaignBrief],
    settings: CopySettings,
    cache: CopyCache | None = None,
) -> CopyRunResult:
    """`generate_copies` for synchronous callers (Dagster assets, scripts, the benchmark)."""
    coroutine = generate_copies(briefs, settings, cache)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    # Already inside an event loop (a notebook, an async caller): run on a private loop.
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()
