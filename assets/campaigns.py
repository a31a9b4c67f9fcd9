"""Campaign assets: metrics from events, the day's plan and audience, recommendations.

Wiring only; the logic is in `transforms/` (campaign_selection, audience, lifecycle,
campaign_metrics, recommendations). Dependencies follow DESIGN.md: `ai_campaigns` for day D
learns from `campaign_metrics` up to D-1 (a time-lagged edge, not a cycle), and
`campaign_metrics` reads the audience and plan tables as data, not as asset inputs, so
the asset graph stays acyclic.
"""

import datetime as dt

import dagster as dg
import polars as pl
from dagster import AssetExecutionContext

from assets.ingest import campaign_events_source, users_source
from assets.reporting import markdown_table
from pipelines.partitions import as_of_end, partition_days, run_now
from resources.sources import TransactionSource
from resources.staging import StagingStore
from resources.warehouse import Warehouse
from transforms.audience import build_audience
from transforms.campaign_config import CampaignConfig
from transforms.campaign_metrics import (
    build_deliveries,
    compute_campaign_metrics,
    compute_incrementality,
)
from transforms.campaign_selection import evaluate_candidates, plan_campaigns
from transforms.events import normalize_events
from transforms.lifecycle import resolve_status
from transforms.recommendations import cumulative_metrics, recommend

CAMPAIGN_GROUP = "campaigns"
NETWORK_RETRY = dg.RetryPolicy(max_retries=2, delay=2, backoff=dg.Backoff.EXPONENTIAL,
                               jitter=dg.Jitter.PLUS_MINUS)


class CampaignRunConfig(dg.Config):
    """Launchpad knobs for campaign planning; everything else keeps CampaignConfig defaults
    (docs/campaigns.md lists them)."""

    total_daily_budget: float | None = None
    holdout_share: float | None = None
    frequency_cap: int | None = None
    duration_days: int | None = None
    selection_metric: str | None = None

    def to_campaign_config(self) -> CampaignConfig:
        overrides = {key: value for key, value in self.model_dump().items() if value is not None}
        return CampaignConfig.model_validate({**CampaignConfig().model_dump(), **overrides})


def _day_end(context: AssetExecutionContext, day: dt.date) -> dt.datetime:
    return as_of_end(day, run_now(context))


def build_campaign_assets(partitions: dg.PartitionsDefinition) -> list[dg.AssetsDefinition]:
    """The campaign part of the graph for the given daily partitions."""

    @dg.multi_asset(
        specs=[
            dg.AssetSpec("campaign_metrics", deps=[campaign_events_source],
                         group_name=CAMPAIGN_GROUP,
                         description="Per campaign and day: impressions, opens, clicks, "
                                     "conversions, revenue, cost, ctr, conversion rate, ROI."),
            dg.AssetSpec("campaign_delivery", deps=[campaign_events_source],
                         group_name=CAMPAIGN_GROUP,
                         description="One row per message delivered that day."),
            dg.AssetSpec("campaign_incrementality", deps=[campaign_events_source],
                         group_name=CAMPAIGN_GROUP,
                         description="Treated vs holdout conversion rate, uplift (cumulative)."),
        ],
        check_specs=[dg.AssetCheckSpec("ratios_in_range", asset="campaign_metrics",
                                       description="Each campaign's ctr and conversion rate "
                                                   "to date within [0, 1].")],
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        retry_policy=NETWORK_RETRY,
    )
    def campaign_metrics(context: AssetExecutionContext, source: TransactionSource,
                         warehouse: Warehouse):
        totals = {"campaigns": 0, "impressions": 0, "clicks": 0, "conversions": 0,
                  "dropped_events": 0}
        latest = pl.DataFrame()
        ratios_ok = True
        for day in partition_days(context):
            end = _day_end(context, day)
            events, dropped = normalize_events(source.read_campaign_events(until=end))
            audience = warehouse.read_named("campaign_audience_through", {"day": day})
            campaigns = warehouse.read_named("campaigns_planned_through", {"day": day})
            metrics = compute_campaign_metrics(events, audience, campaigns, as_of_date=day,
                                               recorded_at=end)
            deliveries = build_deliveries(events, audience, as_of_date=day)
            lift = compute_incrementality(events, audience, campaigns, as_of_date=day,
                                          recorded_at=end)
            warehouse.replace_partition("campaign_metrics", metrics, partition_value=day,
                                        partition_column="metric_date")
            warehouse.replace_partition("campaign_delivery", deliveries, partition_value=day)
            warehouse.replace_partition("campaign_incrementality", lift, partition_value=day)
            # Cumulative, not daily: a click on D-1 converting on D makes one day's ratio
            # exceed 1 legitimately; over a campaign's life it never may.
            to_date = cumulative_metrics(
                warehouse.read_named("campaign_metrics_through", {"day": day}), as_of_date=day)
            ratios_ok &= bool(to_date.filter(
                (pl.col("ctr") > 1) | (pl.col("ctr") < 0)
                | (pl.col("conversion_rate") > 1) | (pl.col("conversion_rate") < 0)
            ).is_empty())
            totals["campaigns"] += metrics.height
            totals["dropped_events"] += dropped
            for column in ("impressions", "clicks", "conversions"):
                totals[column] += int(metrics[column].sum() or 0)
            latest = metrics
        yield dg.MaterializeResult(asset_key="campaign_metrics", metadata={
            **totals,
            "latest_day": markdown_table(latest.select(
                "campaign_id", "impressions", "clicks", "conversions", "revenue", "cost",
                "ctr", "conversion_rate", "roi").sort("impressions", descending=True).head(20)),
        })
        yield dg.MaterializeResult(asset_key="campaign_delivery")
        yield dg.MaterializeResult(asset_key="campaign_incrementality")
        yield dg.AssetCheckResult(asset_key="campaign_metrics", check_name="ratios_in_range",
                                  passed=ratios_ok)

    @dg.multi_asset(
        specs=[
            dg.AssetSpec(
                "ai_campaigns",
                deps=[
                    "user_segments", "behavioral_profiles",
                    dg.AssetDep("campaign_metrics", partition_mapping=dg.TimeWindowPartitionMapping(
                        start_offset=-1, end_offset=-1,
                        allow_nonexistent_upstream_partitions=True)),
                ],
                group_name=CAMPAIGN_GROUP,
                description="The day's campaigns: best candidate type per segment by expected "
                            "ROI (beta-binomial on history), budget split, lifecycle status.",
            ),
            dg.AssetSpec(
                "campaign_audience", deps=["ai_campaigns", "behavioral_profiles", users_source],
                group_name=CAMPAIGN_GROUP,
                description="Who receives which campaign: opted-in, frequency-capped, one new "
                            "campaign per user per day, with a deterministic holdout.",
            ),
        ],
        check_specs=[
            dg.AssetCheckSpec("budget_within_total", asset="ai_campaigns", blocking=True,
                              description="The day's budgets sum to at most the total."),
            dg.AssetCheckSpec("one_campaign_per_user_per_day", asset="campaign_audience",
                              blocking=True,
                              description="No user gets two new campaigns on one day."),
            dg.AssetCheckSpec("only_opted_in_users", asset="campaign_audience", blocking=True,
                              description="Every targeted user has marketing_opt_in = true."),
        ],
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        retry_policy=NETWORK_RETRY,
    )
    def plan_and_target_campaigns(context: AssetExecutionContext, config: CampaignRunConfig,
                                  source: TransactionSource, staging: StagingStore,
                                  warehouse: Warehouse):
        settings = config.to_campaign_config()
        budget_ok = single_ok = opt_in_ok = True
        planned = targeted = held_out = 0
        roi_table = pl.DataFrame()
        for day in partition_days(context):
            end = _day_end(context, day)
            segments = warehouse.read_named("user_segments_for_day", {"day": day})
            profiles = staging.read_snapshot("behavioral_profiles", day)
            metrics = warehouse.read_named("campaign_metrics_through",
                                           {"day": day - dt.timedelta(days=1)})
            overrides = warehouse.read_named("campaign_status_overrides")
            earlier = warehouse.read_named("campaigns_planned_through",
                                           {"day": day - dt.timedelta(days=1)})
            if earlier.height:
                status_now = resolve_status(earlier, overrides, metrics, as_of_date=day,
                                            as_of_end=end)
                earlier = earlier.drop("status").join(
                    status_now.select("campaign_id", "status"), on="campaign_id")
            plan = plan_campaigns(segments, metrics, earlier, as_of_date=day, config=settings,
                                  created_at=end, profiles=profiles)
            roi_table = evaluate_candidates(segments, metrics, earlier, as_of_date=day,
                                            config=settings, profiles=profiles)
            users = source.read_users(end)
            recent = warehouse.read_named("campaign_audience_recent", {
                "since": day - dt.timedelta(days=settings.frequency_window_days), "day": day})
            audience = build_audience(plan, profiles, users, recent, as_of_date=day,
                                      config=settings)
            treated = audience.filter(~pl.col("is_holdout")).group_by("campaign_id").len()
            plan = plan.drop("audience_size").join(
                treated.rename({"len": "audience_size"}), on="campaign_id", how="left"
            ).with_columns(pl.col("audience_size").fill_null(0).cast(pl.Int64))
            statuses = resolve_status(pl.concat([earlier.select(plan.columns).cast(plan.schema),
                                                 plan]),
                                      overrides, metrics, as_of_date=day, as_of_end=end)
            warehouse.replace_partition("ai_campaigns", plan, partition_value=day)
            warehouse.replace_partition("campaign_audience", audience, partition_value=day)
            warehouse.replace_partition("campaign_status", statuses, partition_value=day)
            _apply_status_if_latest(warehouse, day, end)

            budget_ok &= float(plan["budget"].sum() or 0) <= float(settings.total_daily_budget)
            single_ok &= audience.filter(~pl.col("is_holdout"))["user_id"].is_unique().all()
            opted_in = set(users.filter(pl.col("marketing_opt_in").fill_null(False))["user_id"])
            opt_in_ok &= set(audience["user_id"]) <= opted_in
            planned += plan.height
            targeted += int((~audience["is_holdout"]).sum())
            held_out += int(audience["is_holdout"].sum())
            context.log.info(f"{day}: {plan.height} campaigns, {audience.height} audience rows")
        yield dg.MaterializeResult(asset_key="ai_campaigns", metadata={
            "campaigns_planned": planned,
            "roi_table": markdown_table(roi_table),
        })
        yield dg.MaterializeResult(asset_key="campaign_audience", metadata={
            "treated_users": targeted, "holdout_users": held_out,
        })
        yield dg.AssetCheckResult(asset_key="ai_campaigns", check_name="budget_within_total",
                                  passed=budget_ok)
        yield dg.AssetCheckResult(asset_key="campaign_audience",
                                  check_name="one_campaign_per_user_per_day", passed=single_ok)
        yield dg.AssetCheckResult(asset_key="campaign_audience", check_name="only_opted_in_users",
                                  passed=opt_in_ok)

    @dg.asset(
        deps=["campaign_metrics", "campaign_incrementality", "ai_campaigns"],
        group_name=CAMPAIGN_GROUP,
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        retry_policy=NETWORK_RETRY,
        description="Rules over the metrics (low CTR, low conversion, no uplift, ROI below 1, "
                    "strong ROI), each with the numbers it was based on.",
    )
    def campaign_recommendations(context: AssetExecutionContext, config: CampaignRunConfig,
                                 warehouse: Warehouse) -> dg.MaterializeResult:
        thresholds = config.to_campaign_config().thresholds
        written = 0
        latest = pl.DataFrame()
        for day in partition_days(context):
            end = _day_end(context, day)
            rows = recommend(
                warehouse.read_named("campaign_metrics_through", {"day": day}),
                warehouse.read_named("campaign_incrementality_for_day", {"day": day}),
                warehouse.read_named("campaigns_planned_through", {"day": day}),
                as_of_date=day, thresholds=thresholds, created_at=end,
            )
            warehouse.replace_partition("campaign_recommendations", rows, partition_value=day)
            written += rows.height
            latest = rows
        by_rule = latest.group_by("rule").len().sort("rule") if latest.height else latest
        return dg.MaterializeResult(metadata={
            "recommendations": written,
            "latest_by_rule": markdown_table(by_rule),
        })

    return [campaign_metrics, plan_and_target_campaigns, campaign_recommendations]


def _apply_status_if_latest(warehouse: Warehouse, day: dt.date, end: dt.datetime) -> None:
    latest = warehouse.read_named("latest_status_day")["day"][0]
    if latest is None or day >= latest:
        warehouse.execute_named("apply_campaign_status", {"day": day, "updated_at": end})
