"""`campaign_copy`: LLM-written copy per campaign, cached by prompt hash, never blocking.

The logic (prompt, validation, retries, repair, template fallback) is in
`resources/copywriter.py` and the pure `transforms/copy_*.py`; this asset builds briefs
from the days' campaigns and segment facts, runs the copywriter once for all the step's
days against the warehouse cache (one concurrency bound, one circuit breaker, one deadline),
writes each partition and reports each day's own calls, cache hits, tokens, cost and latency.

Two tables, deliberately not in one transaction: validated LLM answers go into
`llm_copy_cache` as soon as they arrive (resources/copy_cache.py, one transaction per
batch), before the day's `campaign_copy` partition is replaced. A cache row is valid on its
own (keyed by prompt hash, never deleted), so a failure in between leaves the previous
partition whole and consistent, and the retry reads the paid-for answers back instead of
paying for them again.
"""

from collections.abc import Mapping
from datetime import date
from typing import Any

import dagster as dg
import polars as pl
from dagster import AssetExecutionContext
from pydantic import Field

from assets.campaigns import CAMPAIGN_GROUP
from assets.partition_results import PartitionReporter
from assets.partitions import partition_days
from assets.reporting import markdown_table
from assets.retries import TRANSIENT_RETRY, retry_transient_only
from resources.copy_cache import WarehouseCopyCache
from resources.copywriter import generate_copies_sync
from resources.llm import ResponseFormatChoice, TogetherCopyResource
from resources.warehouse import Warehouse
from transforms.copy_prompt import CampaignBrief
from transforms.copy_results import SUMMED_STATS, CopyRunResult


class CampaignCopyConfig(dg.Config):
    """Per-run knobs of the copy step; unset means the `llm` resource's value
    (docs/llm-copy.md, "Configuration")."""

    response_format: ResponseFormatChoice | None = Field(
        default=None, description="json_object or json_schema (part of the cache key).")
    banned_claims: list[str] | None = Field(
        default=None, description="Phrases the copy may not use (part of the cache key).")
    deadline_s: float | None = Field(
        default=None, description="Seconds the step may spend on the model in all.")
    circuit_breaker_failures: int | None = Field(
        default=None, description="Failures of one kind in a row that stop all requests "
                                  "(0: never).")


# The LLM account's concurrency budget across runs and processes: a Dagster concurrency
# pool (limit 1 in dagster.yaml), so one copy step at a time holds the account's
# `max_concurrency` requests in flight, whichever run it belongs to (docs/operations.md).
LLM_POOL = "llm_account"


def _segment_facts(segments: pl.DataFrame) -> dict[str, dict[str, str | float]]:
    """What the prompt may say about each segment (no user-level data leaves the warehouse)."""
    facts = {}
    for row in segments.iter_rows(named=True):
        facts[row["behavior_pattern"]] = {
            "average spend in the last 90 days": float(row["avg_spend"] or 0),
            "average purchases per week": round(float(row["avg_purchases_per_week"] or 0), 2),
        }
    return facts


def _briefs(warehouse: Warehouse, day: date) -> list[CampaignBrief]:
    """The day's campaigns as briefs, with their segment's facts."""
    campaigns = warehouse.read("SELECT * FROM ai_campaigns WHERE as_of_date = :day "
                               "ORDER BY campaign_id", {"day": day})
    facts = _segment_facts(warehouse.read_named("user_segments_for_day", {"day": day}))
    return [CampaignBrief.from_ai_campaign(row, facts.get(row["target_pattern"]))
            for row in campaigns.iter_rows(named=True)]


def _report_day(context: AssetExecutionContext, reporter: PartitionReporter,
                warehouse: Warehouse, day: date, rows: pl.DataFrame,
                day_stats: Mapping[str, Any]) -> None:
    """This day's calls, tokens and cost only (a prompt shared by several days is billed to
    the first): summed over a range run's partitions, they add up to what the run spent."""
    stats = {key: int(day_stats.get(key) or 0) for key in SUMMED_STATS}
    if stats["llm"]:
        context.log_event(dg.AssetMaterialization(
            asset_key="llm_copy_cache",
            metadata={"answers_stored": stats["llm"], "for_day": day.isoformat(),
                      "table": f"{warehouse.schema_name}.llm_copy_cache"}))
    latencies = {key: day_stats.get(key) for key in ("latency_p50_ms", "latency_p95_ms")}
    reporter.metadata("campaign_copy", day, {
        **stats,
        "estimated_cost_usd": round(float(day_stats.get("estimated_cost_usd") or 0), 6),
        **{key: value for key, value in latencies.items() if value is not None},
        "fallback_reasons": dg.MetadataValue.json(dict(day_stats.get("fallback_reasons") or {})),
        "copy": markdown_table(rows.select("campaign_id", "copy_source", "headline")
                               if rows.height else rows),
    })


# Written by campaign_copy as answers arrive; not partitioned (a prompt's answer serves
# every day that asks it again). Each run that stores answers reports a materialization.
llm_copy_cache = dg.AssetSpec(
    "llm_copy_cache", group_name=CAMPAIGN_GROUP,
    description="Validated LLM answers keyed by prompt hash, stored by campaign_copy as they "
                "arrive so an unchanged prompt is never billed twice; never deleted.")


def build_copy_assets(partitions: dg.PartitionsDefinition
                      ) -> list[dg.AssetsDefinition | dg.AssetSpec]:
    """The `campaign_copy` asset for the given daily partitions, and its cache's spec."""

    @dg.asset(
        deps=["ai_campaigns", "user_segments", llm_copy_cache],
        group_name=CAMPAIGN_GROUP,
        pool=LLM_POOL,
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        retry_policy=TRANSIENT_RETRY,
        description="Headline, email body, 3 CTAs, subject lines and social copy per campaign "
                    "(Together AI, cached by prompt hash; template copy when no key or on "
                    "failure, marked copy_source = template with the reason).",
    )
    @retry_transient_only
    def campaign_copy(context: AssetExecutionContext, config: CampaignCopyConfig,
                      llm: TogetherCopyResource, warehouse: Warehouse) -> dg.MaterializeResult:
        # All days of a range run in one batch: one concurrency bound, one circuit breaker
        # and one deadline for the step; each day is then reported with its own figures.
        days = partition_days(context)
        briefs = {day: _briefs(warehouse, day) for day in days}
        labels = [day for day in days for _ in briefs[day]]
        settings = llm.settings(**config.model_dump())
        result = generate_copies_sync([b for day in days for b in briefs[day]], settings,
                                      WarehouseCopyCache(warehouse))
        per_day = result.stats_by(labels, every=days)
        reporter = PartitionReporter(context)
        start = 0
        for day in days:
            chunk = CopyRunResult(result.results[start:start + len(briefs[day])], per_day[day])
            start += len(briefs[day])
            rows = pl.DataFrame(chunk.rows(day)) if chunk.results else pl.DataFrame()
            warehouse.replace_partition("campaign_copy", rows, partition_value=day)
            _report_day(context, reporter, warehouse, day, rows, chunk.stats)
        return dg.MaterializeResult(metadata={
            **llm.public_metadata(),
            "step_deadline_s": float(result.stats.get("deadline_s") or 0),
            "step_stopped_by": result.stats.get("stopped_by") or "-",
        })

    return [campaign_copy, llm_copy_cache]
