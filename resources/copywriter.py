"""Campaign copy for a batch of briefs: cache first, then the LLM, then templates.

The rules this module exists to enforce (docs/llm-copy.md has the long version):

- Never re-bill: each brief's prompt hash is looked up in the cache first; only validated LLM
  copy is stored, so template copy is retried with the model on a later run.
- Bounded and patient: at most `max_concurrency` requests in flight, retried with backoff
  (resources/copy_client.py, imported only when a prompt really goes to the model, so
  loading the code location never imports the SDK).
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

from transforms.copy_prompt import CampaignBrief, ChatMessage, build_prompt, prompt_hash
from transforms.copy_results import (
    CopyCache,
    CopyMeter,
    CopyOutcome,
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


async def generate_copies(
    briefs: Sequence[CampaignBrief],
    settings: CopySettings,
    cache: CopyCache | None = None,
) -> CopyRunResult:
    """Copy for every brief, in order. Raises only if the cache itself fails."""
    run_started = time.perf_counter()
    meter = CopyMeter()
    prompts, hashes = _prompts(briefs, settings)

    outcomes: dict[str, CopyOutcome] = {}
    stored = cache.get_many(list(prompts)) if cache is not None and prompts else {}
    for key, record in stored.items():
        hit = cached_outcome(record, prompts[key][0], settings)
        if hit is not None:
            outcomes[key] = hit
    cache_hits = len(outcomes)

    missing = [key for key in prompts if key not in outcomes]
    if missing and not settings.api_key:
        for key in missing:
            outcomes[key] = template_outcome(prompts[key][0], "no API key")
    elif missing:
        from resources.copy_client import write_with_model  # the SDK, only when it is used

        outcomes.update(await write_with_model({key: prompts[key] for key in missing},
                                               settings, meter))
        # Only validated LLM copy is cached: template copy must be retried by a later run.
        fresh = [
            cache_record(key, outcomes[key]) for key in missing if outcomes[key].source == "llm"
        ]
        if cache is not None and fresh:
            cache.put_many(fresh)

    results = [
        copy_result(brief, key, outcomes[key]) for brief, key in zip(briefs, hashes, strict=True)
    ]
    if missing and not settings.api_key:
        log.warning("no API key: template copy for %d campaigns", len(missing))
    for result in results:
        if result.copy_source == "template" and result.fallback_reason != "no API key":
            log.warning(
                "template copy for campaign %s: %s", result.campaign_id, result.fallback_reason
            )
    stats = run_stats(results, meter, settings, cache_hits, len(prompts),
                      time.perf_counter() - run_started)
    log.info("campaign copy: %s", stats)
    return CopyRunResult(results=results, stats=stats)


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
