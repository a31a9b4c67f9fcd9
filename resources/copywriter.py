"""Campaign copy for a batch of briefs: cache first, then the LLM, then templates.

The rules this module exists to enforce (docs/llm-copy.md has the long version):

- Never re-bill: each brief's prompt hash is looked up in the cache first; only validated LLM
  copy is stored, so template copy is retried with the model on a later run.
- Bounded and patient: at most `max_concurrency` requests in flight, retried with backoff
  (resources/copy_client.py, imported only when a prompt really goes to the model, so
  loading the code location never imports the SDK); and bounded in total: a circuit breaker
  stops calling a server that keeps failing, and a deadline ends the step on time.
- Never block the pipeline: a campaign whose calls fail, or whose answer is still invalid after
  one repair round, gets deterministic template copy with the reason recorded. Nothing a single
  campaign does raises.

No Dagster here: `CopySettings` is a plain object that `resources.llm` fills in; the pure
parts (prompts, validation, templates, rows, stats) are in `transforms/copy_*.py`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from transforms.copy_prompt import CampaignBrief, ChatMessage, build_prompt, prompt_hash
from transforms.copy_results import (
    CopyCache,
    CopyMeter,
    CopyOutcome,
    CopyResult,
    CopyRunResult,
    CopySettings,
    cache_record,
    cached_outcome,
    copy_result,
    run_stats,
    template_outcome,
)

log = logging.getLogger(__name__)


def _prompts(briefs: Sequence[CampaignBrief], settings: CopySettings
             ) -> tuple[dict[str, tuple[CampaignBrief, list[ChatMessage]]], list[str]]:
    """Each distinct prompt by its hash, and every brief's hash in input order."""
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
    return prompts, hashes


def _cached(prompts: dict[str, tuple[CampaignBrief, list[ChatMessage]]],
            settings: CopySettings, cache: CopyCache | None) -> dict[str, CopyOutcome]:
    """The prompts the cache answers, re-validated (one `get_many` for the whole batch)."""
    stored = cache.get_many(list(prompts)) if cache is not None and prompts else {}
    outcomes = {}
    for key, record in stored.items():
        hit = cached_outcome(record, prompts[key][0], settings)
        if hit is not None:
            outcomes[key] = hit
    return outcomes


def _log_fallbacks(results: Sequence[CopyResult], no_key: int) -> None:
    """One warning per distinct reason (an outage is one line, not one per campaign)."""
    if no_key:
        log.warning("no API key: template copy for %d campaigns", no_key)
    by_reason: dict[str, list[str]] = {}
    for result in results:
        if result.copy_source == "template" and result.fallback_reason != "no API key":
            by_reason.setdefault(result.fallback_reason or "", []).append(result.campaign_id)
    for reason, campaigns in by_reason.items():
        shown = ", ".join(campaigns[:5]) + (", ..." if len(campaigns) > 5 else "")
        log.warning("template copy for %d campaigns (%s): %s", len(campaigns), shown, reason)


async def generate_copies(
    briefs: Sequence[CampaignBrief],
    settings: CopySettings,
    cache: CopyCache | None = None,
) -> CopyRunResult:
    """Copy for every brief, in order. Raises only if the cache itself fails.

    One call is one step: its briefs share one concurrency bound, one circuit breaker and
    one deadline (`CopySettings.step_deadline_s` of the prompts that go to the model).
    """
    run_started = time.perf_counter()
    prompts, hashes = _prompts(briefs, settings)
    meters = {key: CopyMeter() for key in prompts}
    outcomes = _cached(prompts, settings, cache)
    limits: dict[str, Any] = {}

    missing = [key for key in prompts if key not in outcomes]
    if missing and not settings.api_key:
        for key in missing:
            outcomes[key] = template_outcome(prompts[key][0], "no API key")
    elif missing:
        from resources.copy_client import write_with_model  # the SDK, only when it is used

        written, limits = await write_with_model(
            {key: prompts[key] for key in missing}, settings, meters
        )
        outcomes.update(written)
        # Only validated LLM copy is cached: template copy must be retried by a later run.
        fresh = [
            cache_record(key, outcomes[key]) for key in missing if outcomes[key].source == "llm"
        ]
        if cache is not None and fresh:
            cache.put_many(fresh)

    results = [
        copy_result(brief, key, outcomes[key]) for brief, key in zip(briefs, hashes, strict=True)
    ]
    _log_fallbacks(results, len(missing) if not settings.api_key else 0)
    stats = run_stats(results, meters, settings, time.perf_counter() - run_started, limits)
    log.info("campaign copy: %s", stats)
    return CopyRunResult(results=results, stats=stats, spends=meters, settings=settings)


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
