"""The pure side of a copy batch: settings, cache records, outcomes, rows and spend figures.

Everything here is plain data and arithmetic, testable without a network: the client that
calls the model, its retries and the batch orchestration are I/O and live in `resources/`
(`resources/copy_client.py`, `resources/copywriter.py`). Prompts, validation and template
copy are the other pure parts (`transforms/copy_prompt.py`, `copy_validation.py`,
`copy_templates.py`).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Literal, Protocol

from transforms.copy_prompt import DEFAULT_BANNED_CLAIMS, PROMPT_TEMPLATE_VERSION, CampaignBrief
from transforms.copy_templates import template_copy
from transforms.copy_validation import CampaignCopy, validate_copy

DEFAULT_MODEL = "meta-llama/Llama-3.3-70B-Instruct-Turbo"
CopySource = Literal["llm", "cache", "template"]
ResponseFormat = Literal["json_object", "json_schema"]
RESPONSE_FORMATS: tuple[str, ...] = ("json_object", "json_schema")
# Summable per-partition figures: over a range run's partitions they add up to the run's.
SUMMED_STATS = ("campaigns", "calls_made", "retries", "repairs", "repaired", "cache_hits",
                "llm", "cache", "template", "tokens_in", "tokens_out")


@dataclass(frozen=True)
class CopySettings:
    """Everything the copywriter needs; built by `resources.llm.TogetherCopyResource`.

    The key is excluded from repr so settings can be logged or shown in a debugger safely.
    Time is bounded twice: `timeout_s` per request, and a deadline for the whole step
    (`step_deadline_s`); `circuit_breaker_failures` stops calling a server that keeps failing.
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
    response_format: ResponseFormat = "json_object"
    backoff_base_s: float = 1.0
    backoff_max_s: float = 10.0
    retry_after_max_s: float = 60.0
    banned_claims: tuple[str, ...] = DEFAULT_BANNED_CLAIMS
    deadline_s: float | None = None
    deadline_base_s: float = 60.0
    deadline_per_campaign_s: float = 10.0
    circuit_breaker_failures: int = 5

    def __post_init__(self) -> None:
        # A zero semaphore would hang the run instead of failing it: refuse such settings.
        if self.max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, got {self.max_concurrency}")
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be 0 or more, got {self.max_retries}")
        if self.timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {self.timeout_s}")
        if self.response_format not in RESPONSE_FORMATS:
            raise ValueError(f"response_format must be one of {RESPONSE_FORMATS}, "
                             f"got {self.response_format!r}")
        if self.deadline_s is not None and self.deadline_s <= 0:
            raise ValueError(f"deadline_s must be positive (or None), got {self.deadline_s}")
        if min(self.deadline_base_s, self.deadline_per_campaign_s) < 0:
            raise ValueError("deadline_base_s and deadline_per_campaign_s must be 0 or more")
        if self.circuit_breaker_failures < 0:
            raise ValueError("circuit_breaker_failures must be 0 (off) or more, "
                             f"got {self.circuit_breaker_failures}")
        # A list from Dagster config must still hash and compare like the default tuple.
        object.__setattr__(self, "banned_claims", tuple(self.banned_claims))

    def step_deadline_s(self, prompts: int) -> float:
        """Seconds the model may take for `prompts` prompts: `deadline_s` when set, else
        `deadline_base_s + deadline_per_campaign_s x prompts / max_concurrency`."""
        if self.deadline_s is not None:
            return self.deadline_s
        return self.deadline_base_s + self.deadline_per_campaign_s * prompts / self.max_concurrency


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
    """All campaigns' copy, in input order, and the run's spend and latency figures.

    `spends` holds what each prompt hash cost this run (calls, tokens, latencies), so the
    figures can be split by partition (`stats_by`) without counting a shared call twice.
    """

    results: list[CopyResult]
    stats: dict[str, Any]
    spends: dict[str, CopyMeter] = field(default_factory=dict)
    settings: CopySettings = field(default_factory=CopySettings, repr=False)

    def rows(self, as_of_date: date) -> list[dict[str, Any]]:
        return [result.to_row(as_of_date) for result in self.results]

    def stats_by(self, labels: Sequence[Hashable], every: Iterable[Hashable] = ()
                 ) -> dict[Hashable, dict[str, Any]]:
        """The stats of each label's campaigns (`labels[i]` is result i's, e.g. its day);
        labels in `every` without campaigns get zeros.

        A prompt asked by several labels is billed to the first that asked it, so the
        labels' calls, tokens and cost add up to the run's exactly.
        """
        if len(labels) != len(self.results):
            raise ValueError(f"{len(labels)} labels for {len(self.results)} results")
        members: dict[Hashable, list[CopyResult]] = {label: [] for label in every}
        billed: dict[Hashable, dict[str, CopyMeter]] = {label: {} for label in members}
        seen: set[str] = set()
        for label, result in zip(labels, self.results, strict=True):
            members.setdefault(label, []).append(result)
            billed.setdefault(label, {})
            key = result.prompt_hash
            if key in self.spends and key not in seen:
                seen.add(key)
                billed[label][key] = self.spends[key]
        return {label: spend_stats(members[label], billed[label], self.settings)
                for label in members}


@dataclass
class CopyOutcome:
    """What one prompt ended with: the copy, its source and what it cost."""

    copy: CampaignCopy
    source: CopySource
    reason: str | None = None
    model: str | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    latency_ms: int = 0
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass
class CopyMeter:
    """What one prompt (or, summed, a run) cost: requests sent including retries and repairs,
    tokens billed, per-request latency. Single event loop: no locking needed."""

    calls: int = 0
    retries: int = 0
    repairs: int = 0
    repaired: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    latencies_ms: list[float] = field(default_factory=list)

    @classmethod
    def total(cls, meters: Iterable[CopyMeter]) -> CopyMeter:
        """The sum of `meters`."""
        summed = cls()
        for meter in meters:
            summed.calls += meter.calls
            summed.retries += meter.retries
            summed.repairs += meter.repairs
            summed.repaired += meter.repaired
            summed.tokens_in += meter.tokens_in
            summed.tokens_out += meter.tokens_out
            summed.latencies_ms.extend(meter.latencies_ms)
        return summed


def redact(text: str, *secrets: str | None) -> str:
    """`text` with each secret replaced by `***`, so a fallback reason can be stored and shown.

    Secrets shorter than 6 characters are left alone: placeholder keys for local servers
    ("x", "test") are no secret, and replacing every occurrence of a one-letter string would
    garble the reason.
    """
    for secret in sorted((s for s in secrets if s and len(s) >= 6), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def template_outcome(brief: CampaignBrief, reason: str, latency_ms: int = 0) -> CopyOutcome:
    """Deterministic template copy, marked with why the model's was not used."""
    return CopyOutcome(
        copy=template_copy(brief), source="template", reason=reason, latency_ms=latency_ms
    )


def cached_outcome(
    record: CachedCopy, brief: CampaignBrief, settings: CopySettings
) -> CopyOutcome | None:
    """A cached copy, re-validated: rules may have tightened since it was stored."""
    try:
        copy = CampaignCopy.model_validate(record.response_json)
    except ValueError:
        return None
    if validate_copy(copy, brief.offer, settings.banned_claims):
        return None
    return CopyOutcome(
        copy=copy,
        source="cache",
        model=record.model,
        tokens_in=record.tokens_in,
        tokens_out=record.tokens_out,
        created_at=record.created_at,
    )


def cache_record(key: str, outcome: CopyOutcome) -> CachedCopy:
    """The `llm_copy_cache` row of a validated LLM answer."""
    return CachedCopy(
        prompt_hash=key,
        model=outcome.model or "",
        response_json=outcome.copy.model_dump(),
        tokens_in=outcome.tokens_in,
        tokens_out=outcome.tokens_out,
        created_at=outcome.created_at,
    )


def copy_result(brief: CampaignBrief, key: str, outcome: CopyOutcome) -> CopyResult:
    """The `campaign_copy` row of one campaign."""
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


def _percentile(values: Sequence[float], pct: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)], 1)


def spend_stats(
    results: Sequence[CopyResult], billed: Mapping[str, CopyMeter], settings: CopySettings
) -> dict[str, Any]:
    """Campaigns, sources, calls, tokens, cost and latency of `results`; `billed` maps each
    prompt hash whose cost these results carry to what it cost."""
    sources = Counter(result.copy_source for result in results)
    meter = CopyMeter.total(billed.values())
    source_of = {result.prompt_hash: result.copy_source for result in results}
    cost = (
        meter.tokens_in * settings.price_per_million_input_tokens
        + meter.tokens_out * settings.price_per_million_output_tokens
    ) / 1_000_000
    return {
        "campaigns": len(results),
        "unique_prompts": len(source_of),
        "calls_made": meter.calls,
        "retries": meter.retries,
        "repairs": meter.repairs,
        "repaired": meter.repaired,
        "cache_hits": sum(1 for key in billed if source_of.get(key) == "cache"),
        "llm": sources["llm"],
        "cache": sources["cache"],
        "template": sources["template"],
        "tokens_in": meter.tokens_in,
        "tokens_out": meter.tokens_out,
        "estimated_cost_usd": round(cost, 6),
        "latency_p50_ms": _percentile(meter.latencies_ms, 50),
        "latency_p95_ms": _percentile(meter.latencies_ms, 95),
        "fallback_reasons": dict(
            Counter(r.fallback_reason for r in results if r.fallback_reason is not None)
        ),
    }


def run_stats(
    results: Sequence[CopyResult],
    spends: Mapping[str, CopyMeter],
    settings: CopySettings,
    wall_time_s: float,
    limits: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The run's figures (`spend_stats` over everything) plus its wall time, model and the
    time limits that applied (`limits`: the step deadline and what stopped calls early)."""
    return {
        **spend_stats(results, spends, settings),
        "wall_time_s": round(wall_time_s, 3),
        "model": settings.model,
        "prompt_template_version": PROMPT_TEMPLATE_VERSION,
        "deadline_s": None,
        "stopped_by": None,
        **(limits or {}),
    }
