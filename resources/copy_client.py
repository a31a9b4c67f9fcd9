"""Talking to the model: the Together client, one bounded, retried, metered call, and LLM
copy for a set of prompts (call, validate, one repair round, else template copy).

The only module that imports `together` and `httpx`. `resources/copywriter.py` imports it
when a batch really has prompts to send, so loading the code location (every run worker,
every CLI call) never pays for the SDK.

Retries are ours, not the SDK's (the client is built with max_retries=0): 408/409/429/5xx,
timeouts and connection errors are retried with exponential backoff, honouring
`retry-after`, so that backoff is configurable, every attempt is counted, and the fallback
reason can say exactly what happened.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from together import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AsyncTogether,
)

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


class CallFailedError(Exception):
    """A request that could not produce an answer; the message is the fallback reason."""


@dataclass
class Answer:
    """The assistant's text of one completion and the tokens it cost."""

    content: str | None
    tokens_in: int
    tokens_out: int


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


class Caller:
    """Sends one chat completion with bounded concurrency, retries and metering."""

    def __init__(self, client: AsyncTogether, settings: CopySettings, meter: CopyMeter
                 ) -> None:
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

    async def _send(self, messages: Sequence[ChatMessage]) -> Answer:
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
        answer = Answer(
            content=choice.message.content if choice and choice.message else None,
            tokens_in=usage.prompt_tokens if usage else 0,
            tokens_out=usage.completion_tokens if usage else 0,
        )
        self._meter.tokens_in += answer.tokens_in
        self._meter.tokens_out += answer.tokens_out
        return answer

    async def complete(self, messages: Sequence[ChatMessage]) -> Answer:
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


async def _write_one(
    caller: Caller,
    brief: CampaignBrief,
    messages: list[ChatMessage],
    settings: CopySettings,
    meter: CopyMeter,
) -> CopyOutcome:
    """LLM copy for one prompt: call, validate, one repair round, else the template."""
    started = time.perf_counter()
    spent = [0, 0]

    def elapsed_ms() -> int:
        return round((time.perf_counter() - started) * 1000)

    async def ask(conversation: list[ChatMessage]) -> Answer:
        answer = await caller.complete(conversation)
        spent[0] += answer.tokens_in
        spent[1] += answer.tokens_out
        return answer

    def fallback(reason: str) -> CopyOutcome:
        outcome = template_outcome(brief, redact(reason, settings.api_key), elapsed_ms())
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
    return CopyOutcome(
        copy=copy,
        source="llm",
        model=settings.model,
        tokens_in=spent[0],
        tokens_out=spent[1],
        latency_ms=elapsed_ms(),
    )


async def write_with_model(
    prompts: Mapping[str, tuple[CampaignBrief, list[ChatMessage]]],
    settings: CopySettings,
    meter: CopyMeter,
) -> dict[str, CopyOutcome]:
    """Copy for each prompt hash, all requests through one client and one concurrency
    bound. Never raises for a single campaign: a failed one gets template copy."""
    async with build_async_client(settings) as client:
        caller = Caller(client, settings, meter)
        written = await asyncio.gather(
            *(_write_one(caller, *prompts[key], settings, meter) for key in prompts)
        )
    return dict(zip(prompts, written, strict=True))
