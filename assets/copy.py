"""`campaign_copy`: LLM-written copy per campaign, cached by prompt hash, never blocking.

The logic (prompt, validation, retries, repair, template fallback) is in
`resources/copywriter.py` and the pure `transforms/copy_*.py`; this asset builds briefs
from the day's campaigns and segment facts, runs the copywriter against the warehouse
cache, writes the partition and reports calls, cache hits, tokens, cost and latency.

Two tables, deliberately not in one transaction: validated LLM answers go into
`llm_copy_cache` as soon as they arrive (resources/copy_cache.py, one transaction per
batch), before the day's `campaign_copy` partition is replaced. A cache row is valid on its
own (keyed by prompt hash, never deleted), so a failure in between leaves the previous
partition whole and consistent, and the retry reads the paid-for answers back instead of
paying for them again.
"""

import dagster as dg
import polars as pl
from dagster import AssetExecutionContext

from assets.campaigns import CAMPAIGN_GROUP
from assets.partition_results import PartitionReporter
from assets.partitions import partition_days
from assets.reporting import markdown_table
from assets.retries import TRANSIENT_RETRY, retry_transient_only
from resources.copy_cache import WarehouseCopyCache
from resources.copywriter import generate_copies_sync
from resources.llm import TogetherCopyResource
from resources.warehouse import Warehouse
from transforms.copy_prompt import CampaignBrief

SUMMED_STATS = ("campaigns", "calls_made", "retries", "repairs", "cache_hits", "llm", "cache",
                "template", "tokens_in", "tokens_out")


def _segment_facts(segments: pl.DataFrame) -> dict[str, dict[str, str | float]]:
    """What the prompt may say about each segment (no user-level data leaves the warehouse)."""
    facts = {}
    for row in segments.iter_rows(named=True):
        facts[row["behavior_pattern"]] = {
            "average spend in the last 90 days": float(row["avg_spend"] or 0),
            "average purchases per week": round(float(row["avg_purchases_per_week"] or 0), 2),
        }
    return facts


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
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        retry_policy=TRANSIENT_RETRY,
        description="Headline, email body, 3 CTAs, subject lines and social copy per campaign "
                    "(Together AI, cached by prompt hash; template copy when no key or on "
                    "failure, marked copy_source = template with the reason).",
    )
    @retry_transient_only
    def campaign_copy(context: AssetExecutionContext, llm: TogetherCopyResource,
                      warehouse: Warehouse) -> dg.MaterializeResult:
        cache = WarehouseCopyCache(warehouse)
        reporter = PartitionReporter(context)
        for day in partition_days(context):
            campaigns = warehouse.read("SELECT * FROM ai_campaigns WHERE as_of_date = :day "
                                       "ORDER BY campaign_id", {"day": day})
            facts = _segment_facts(warehouse.read_named("user_segments_for_day", {"day": day}))
            briefs = [CampaignBrief.from_ai_campaign(row, facts.get(row["target_pattern"]))
                      for row in campaigns.iter_rows(named=True)]
            result = generate_copies_sync(briefs, llm.settings(), cache)
            rows = pl.DataFrame(result.rows(day)) if briefs else pl.DataFrame()
            warehouse.replace_partition("campaign_copy", rows, partition_value=day)
            # This day's calls, tokens and cost only: summed over partitions in the UI, the
            # figures add up to what the run really spent.
            stats = {key: int(result.stats.get(key) or 0) for key in SUMMED_STATS}
            if stats["llm"]:
                context.log_event(dg.AssetMaterialization(
                    asset_key="llm_copy_cache",
                    metadata={"answers_stored": stats["llm"], "for_day": day.isoformat(),
                              "table": f"{warehouse.schema_name}.llm_copy_cache"}))
            latencies = {key: result.stats.get(key)
                         for key in ("latency_p50_ms", "latency_p95_ms")}
            reporter.metadata("campaign_copy", day, {
                **stats,
                "estimated_cost_usd": round(float(result.stats.get("estimated_cost_usd") or 0),
                                            6),
                **{key: value for key, value in latencies.items() if value is not None},
                "fallback_reasons": dg.MetadataValue.json(
                    dict(result.stats.get("fallback_reasons") or {})),
                "copy": markdown_table(rows.select("campaign_id", "copy_source", "headline")
                                       if rows.height else rows),
            })
        return dg.MaterializeResult(metadata=llm.public_metadata())

    return [campaign_copy, llm_copy_cache]
