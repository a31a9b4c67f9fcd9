"""`campaign_recommendations`: rules over each day's campaign metrics, with their numbers.

Wiring only: the rules are `transforms.recommendations.recommend`. A separate step from
the campaign cycle: it reads what the cycle committed and writes one table of its own.
"""

import dagster as dg
from dagster import AssetExecutionContext

from assets.campaigns import CAMPAIGN_GROUP, CampaignRunConfig
from assets.partition_results import PartitionReporter
from assets.partitions import as_of_end, partition_days, run_now
from assets.reporting import markdown_table
from assets.retries import TRANSIENT_RETRY, retry_transient_only
from resources.warehouse import Warehouse
from transforms.recommendations import recommend


def build_recommendations_asset(partitions: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    """The `campaign_recommendations` asset for the given daily partitions."""

    @dg.asset(
        deps=["campaign_metrics", "campaign_incrementality", "ai_campaigns"],
        group_name=CAMPAIGN_GROUP,
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        retry_policy=TRANSIENT_RETRY,
        description="Rules over the metrics (low CTR, low conversion, no uplift, ROI below 1, "
                    "strong ROI), each with the numbers it was based on.",
    )
    @retry_transient_only
    def campaign_recommendations(context: AssetExecutionContext, config: CampaignRunConfig,
                                 warehouse: Warehouse) -> dg.MaterializeResult:
        thresholds = config.to_campaign_config().thresholds
        reporter = PartitionReporter(context)
        now = run_now(context)
        for day in partition_days(context):
            rows = recommend(
                warehouse.read_named("campaign_metrics_through", {"day": day}),
                warehouse.read_named("campaign_incrementality_for_day", {"day": day}),
                warehouse.read_named("campaigns_planned_through", {"day": day}),
                as_of_date=day, thresholds=thresholds, created_at=as_of_end(day, now),
            )
            warehouse.replace_partition("campaign_recommendations", rows, partition_value=day)
            by_rule = rows.group_by("rule").len().sort("rule") if rows.height else rows
            reporter.metadata("campaign_recommendations", day, {
                "recommendations": rows.height, "by_rule": markdown_table(by_rule)})
        return dg.MaterializeResult()

    return campaign_recommendations
