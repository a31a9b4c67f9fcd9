"""Campaign assets: the daily campaign cycle (plan, audience, status, measurement) and the
recommendations over it.

Wiring only; the logic is in `transforms/` (campaign_selection, audience, lifecycle,
campaign_metrics, recommendations). Planning day D learns from the metrics of every day
before D, and measuring day D needs the audiences planned up to D: a loop across days.
Dagster cannot order a loop between two assets, so one step, `campaign_cycle`, owns the
loop: for each day in order it plans, targets, resolves statuses and then measures, and it
declares the loop as what it is, a self-dependency of `ai_campaigns` on the day before
(whose step also wrote that day's metrics and audience). Every backfill route therefore
runs the days in order, and no step reads a campaign table that Dagster does not know it
depends on.

Each day's six tables (and the status copied onto `ai_campaigns`) are written in ONE
warehouse transaction: planning reads what earlier days committed, then the day is planned,
targeted, resolved and measured inside the transaction, which reads its own writes. A
failure or a kill at any point leaves the day's previous campaigns, audiences, statuses and
metrics, all of one version (docs/data-model.md, "All-or-nothing writes").
"""

import datetime as dt
from dataclasses import dataclass

import dagster as dg
import polars as pl
from dagster import AssetExecutionContext

from assets.ingest import campaign_events_source, users_source
from assets.partition_results import PartitionReporter
from assets.reporting import markdown_table
from assets.retries import TRANSIENT_RETRY, retry_transient_only
from pipelines.partitions import as_of_end, partition_days, run_now
from resources.committed_snapshots import read_committed
from resources.sources import TransactionSource
from resources.staging import StagingStore
from resources.table_writes import TableWrite, WriteScope
from resources.warehouse import Warehouse, WarehouseTransaction
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
from transforms.user_keys import with_source_user_ids

CAMPAIGN_GROUP = "campaigns"
PREVIOUS_DAY = dg.TimeWindowPartitionMapping(start_offset=-1, end_offset=-1)

campaign_status_overrides_source = dg.AssetSpec(
    "campaign_status_overrides", group_name="sources",
    description="Operator pause/resume overrides (`marketing campaign pause|resume`), read "
                "point-in-time: a day sees the overrides set before its as_of_end.",
)
# The six tables of one cycle day, with their partition columns, in write order.
CYCLE_TABLES = {"ai_campaigns": "as_of_date", "campaign_audience": "as_of_date",
                "campaign_status": "as_of_date", "campaign_metrics": "metric_date",
                "campaign_delivery": "as_of_date", "campaign_incrementality": "as_of_date"}


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


def _cycle_specs() -> list[dg.AssetSpec]:
    return [
        dg.AssetSpec(
            "ai_campaigns",
            deps=["user_segments", "behavioral_profiles", campaign_status_overrides_source,
                  dg.AssetDep("ai_campaigns", partition_mapping=PREVIOUS_DAY)],
            group_name=CAMPAIGN_GROUP,
            description="The day's campaigns: best candidate type per segment by expected "
                        "ROI (beta-binomial on the metrics of earlier days), budget split. "
                        "`status` is the campaign's current status (campaign_status of the "
                        "latest day); the day before carries all earlier plans and metrics.",
        ),
        dg.AssetSpec(
            "campaign_audience", deps=["ai_campaigns", "behavioral_profiles", users_source],
            group_name=CAMPAIGN_GROUP,
            description="Who receives which campaign: opted-in, frequency-capped, one new "
                        "campaign per user per day, with a deterministic holdout.",
        ),
        dg.AssetSpec(
            "campaign_status", deps=["ai_campaigns"], group_name=CAMPAIGN_GROUP,
            description="Status of every campaign planned so far, as of the day, with reason.",
        ),
        dg.AssetSpec(
            "campaign_metrics", deps=["campaign_audience", campaign_events_source],
            group_name=CAMPAIGN_GROUP,
            description="Per campaign and day: impressions, opens, clicks, conversions, "
                        "revenue, cost, ctr, conversion rate, ROI.",
        ),
        dg.AssetSpec(
            "campaign_delivery", deps=["campaign_audience", campaign_events_source],
            group_name=CAMPAIGN_GROUP, description="One row per message delivered that day.",
        ),
        dg.AssetSpec(
            "campaign_incrementality", deps=["campaign_audience", campaign_events_source],
            group_name=CAMPAIGN_GROUP,
            description="Treated vs holdout conversion rate, uplift (cumulative).",
        ),
    ]


def _cycle_checks(partitions: dg.PartitionsDefinition) -> list[dg.AssetCheckSpec]:
    def spec(name: str, asset: str, description: str, blocking: bool = True
             ) -> dg.AssetCheckSpec:
        return dg.AssetCheckSpec(name, asset=asset, blocking=blocking,
                                 partitions_def=partitions, description=description)

    return [
        spec("budget_within_total", "ai_campaigns", "The day's budgets sum to at most the total."),
        spec("one_campaign_per_user_per_day", "campaign_audience",
             "No user gets two new campaigns on one day."),
        spec("only_opted_in_users", "campaign_audience",
             "Every targeted user has marketing_opt_in = true."),
        spec("ratios_in_range", "campaign_metrics",
             "Each campaign's ctr and conversion rate to date within [0, 1].", blocking=False),
    ]


def _ratio_violations(metrics_to_date: pl.DataFrame) -> pl.DataFrame:
    # Cumulative, not daily: a click on D-1 converting on D makes one day's ratio exceed 1
    # legitimately; over a campaign's life it never may.
    return metrics_to_date.filter(
        (pl.col("ctr") > 1) | (pl.col("ctr") < 0)
        | (pl.col("conversion_rate") > 1) | (pl.col("conversion_rate") < 0)
    )


def build_campaign_assets(partitions: dg.PartitionsDefinition) -> list[dg.AssetsDefinition]:
    """The campaign part of the graph for the given daily partitions."""

    @dg.multi_asset(
        name="campaign_cycle",
        specs=_cycle_specs(),
        check_specs=_cycle_checks(partitions),
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        retry_policy=TRANSIENT_RETRY,
    )
    @retry_transient_only
    def campaign_cycle(context: AssetExecutionContext, config: CampaignRunConfig,
                       source: TransactionSource, staging: StagingStore,
                       warehouse: Warehouse):
        settings = config.to_campaign_config()
        reporter = PartitionReporter(context)
        now = run_now(context)
        for day in partition_days(context):
            end = as_of_end(day, now)
            planned = _plan_and_target(warehouse, staging, source, settings, day, now)
            events, dropped = normalize_events(source.read_campaign_events(until=end))
            with warehouse.transaction(cycle_scopes(day)) as transaction:
                _write_plan(transaction, planned, day, now)
                measured = _measure(transaction, events, day, end)
            # Reported once the day is committed: a failed day reports nothing.
            _report_measure(reporter, day, measured, dropped)
            _report_plan(reporter, settings, day, planned)
            context.log.info(f"{day}: {planned.plan.height} campaigns, "
                             f"{planned.audience.height} audience rows")
        for spec in _cycle_specs():  # declaration order is topological, as Dagster requires
            yield dg.MaterializeResult(asset_key=spec.key)
        yield from reporter.finish()

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

    return [campaign_cycle, campaign_recommendations]


def cycle_scopes(day: dt.date) -> list[WriteScope]:
    """What one cycle day's transaction writes: the day of each cycle table, and any row
    of `ai_campaigns` (the current status is copied onto every campaign ever planned)."""
    return [*(WriteScope.partition(table, day, column) for table, column in CYCLE_TABLES.items()),
            WriteScope.table_wide("ai_campaigns")]


@dataclass(frozen=True)
class PlannedDay:
    """Day D's plan, audience and statuses, computed from what earlier days committed."""

    plan: pl.DataFrame
    audience: pl.DataFrame
    statuses: pl.DataFrame
    users: pl.DataFrame
    roi_table: pl.DataFrame


@dataclass(frozen=True)
class MeasuredDay:
    """Day D's metrics, deliveries and incrementality, and the metrics to date."""

    metrics: pl.DataFrame
    deliveries: pl.DataFrame
    lift: pl.DataFrame
    metrics_to_date: pl.DataFrame


def _plan_and_target(warehouse: Warehouse, staging: StagingStore, source: TransactionSource,
                     settings: CampaignConfig, day: dt.date, now: dt.datetime) -> PlannedDay:
    """Plan day D from what is known before it, pick the audience, resolve statuses.
    Reads only; the day is written by `_write_plan` in the cycle's transaction."""
    end = as_of_end(day, now)
    segments = warehouse.read_named("user_segments_for_day", {"day": day})
    profiles = read_committed(staging, warehouse, "behavioral_profiles", day)
    yesterday = day - dt.timedelta(days=1)
    metrics = warehouse.read_named("campaign_metrics_through", {"day": yesterday})
    overrides = warehouse.read_named("campaign_status_overrides")
    earlier = warehouse.read_named("campaigns_planned_through", {"day": yesterday})
    if earlier.height:
        # The stored status is the *current* one; planning day D needs D's.
        status_then = resolve_status(earlier, overrides, metrics, as_of_date=day,
                                     as_of_end=end)
        earlier = earlier.drop("status").join(
            status_then.select("campaign_id", "status"), on="campaign_id")
    plan = plan_campaigns(segments, metrics, earlier, as_of_date=day, config=settings,
                          created_at=end, profiles=profiles)
    roi_table = evaluate_candidates(segments, metrics, earlier, as_of_date=day,
                                    config=settings, profiles=profiles)
    users = source.read_users(end)
    recent = warehouse.read_named("campaign_audience_recent", {
        "since": day - dt.timedelta(days=settings.frequency_window_days), "day": day})
    audience = with_source_user_ids(
        build_audience(plan, profiles, users, recent, as_of_date=day, config=settings),
        profiles)
    treated = audience.filter(~pl.col("is_holdout")).group_by("campaign_id").len()
    plan = plan.drop("audience_size").join(
        treated.rename({"len": "audience_size"}), on="campaign_id", how="left"
    ).with_columns(pl.col("audience_size").fill_null(0).cast(pl.Int64))
    statuses = resolve_status(pl.concat([earlier.select(plan.columns).cast(plan.schema), plan]),
                              overrides, metrics, as_of_date=day, as_of_end=end)
    return PlannedDay(plan, audience, statuses, users, roi_table)


def _write_plan(transaction: WarehouseTransaction, planned: PlannedDay, day: dt.date,
                now: dt.datetime) -> None:
    transaction.replace(TableWrite.partition("ai_campaigns", planned.plan, day))
    transaction.replace(TableWrite.partition("campaign_audience", planned.audience, day))
    transaction.replace(TableWrite.partition("campaign_status", planned.statuses, day))
    # ai_campaigns.status is the current status: that of the latest resolved day, whichever
    # day this run wrote, so re-running an old day never turns a campaign's clock back.
    # Read inside the transaction, which holds every cycle writer's lock on ai_campaigns,
    # so a concurrent run of a later day cannot slip in between.
    latest = transaction.read_named("latest_status_day")["day"][0]
    if latest is not None:  # None until a first campaign is planned
        transaction.execute_named("apply_campaign_status",
                                  {"day": latest, "day_end": as_of_end(latest, now)})


def _measure(transaction: WarehouseTransaction, events: pl.DataFrame, day: dt.date,
             end: dt.datetime) -> MeasuredDay:
    """Day D's metrics, deliveries and incrementality, from the events before its end and
    the audiences planned up to D (this transaction wrote D's a moment ago)."""
    audience = transaction.read_named("campaign_audience_through", {"day": day})
    campaigns = transaction.read_named("campaigns_planned_through", {"day": day})
    metrics = compute_campaign_metrics(events, audience, campaigns, as_of_date=day,
                                       recorded_at=end)
    deliveries = with_source_user_ids(build_deliveries(events, audience, as_of_date=day),
                                      audience)
    lift = compute_incrementality(events, audience, campaigns, as_of_date=day,
                                  recorded_at=end)
    transaction.replace(TableWrite.partition("campaign_metrics", metrics, day, "metric_date"))
    transaction.replace(TableWrite.partition("campaign_delivery", deliveries, day))
    transaction.replace(TableWrite.partition("campaign_incrementality", lift, day))
    to_date = transaction.read_named("campaign_metrics_through", {"day": day})
    return MeasuredDay(metrics, deliveries, lift, to_date)


def _report_measure(reporter: PartitionReporter, day: dt.date, measured: MeasuredDay,
                    dropped: int) -> None:
    metrics = measured.metrics
    violations = _ratio_violations(cumulative_metrics(measured.metrics_to_date,
                                                      as_of_date=day))
    reporter.check("campaign_metrics", "ratios_in_range", day, passed=violations.is_empty(),
                   evidence={"campaigns_out_of_range": violations.height,
                             "examples": str(violations["campaign_id"].head(10).to_list())})
    totals = {column: int(metrics[column].sum() or 0)
              for column in ("impressions", "clicks", "conversions")}
    reporter.metadata("campaign_metrics", day, {
        "campaigns": metrics.height, **totals, "dropped_events": dropped,
        "day": markdown_table(metrics.select(
            "campaign_id", "impressions", "clicks", "conversions", "revenue", "cost",
            "ctr", "conversion_rate", "roi").sort("impressions", descending=True).head(20)),
    })
    reporter.metadata("campaign_delivery", day, {"deliveries": measured.deliveries.height})
    reporter.metadata("campaign_incrementality", day, {"campaigns": measured.lift.height})


def _report_plan(reporter: PartitionReporter, settings: CampaignConfig, day: dt.date,
                 planned: PlannedDay) -> None:
    plan, audience, users = planned.plan, planned.audience, planned.users
    budget = float(plan["budget"].sum() or 0)
    reporter.check("ai_campaigns", "budget_within_total", day,
                   passed=budget <= float(settings.total_daily_budget),
                   evidence={"budget": budget, "total": float(settings.total_daily_budget),
                             "campaigns": plan.height})
    treated = audience.filter(~pl.col("is_holdout"))
    repeated = treated.filter(pl.col("user_id").is_duplicated())["user_id"].unique()
    reporter.check("campaign_audience", "one_campaign_per_user_per_day", day,
                   passed=repeated.is_empty(),
                   evidence={"treated": treated.height, "users_twice": repeated.len(),
                             "examples": str(repeated.head(10).to_list())})
    opted_in = users.filter(pl.col("marketing_opt_in").fill_null(False))["user_id"]
    not_opted = audience.filter(~pl.col("user_id").is_in(opted_in.implode()))["user_id"]
    reporter.check("campaign_audience", "only_opted_in_users", day,
                   passed=not_opted.is_empty(),
                   evidence={"audience": audience.height, "not_opted_in": not_opted.len(),
                             "examples": str(not_opted.head(10).to_list())})
    reporter.metadata("ai_campaigns", day, {"campaigns_planned": plan.height,
                                            "budget": budget,
                                            "roi_table": markdown_table(planned.roi_table)})
    reporter.metadata("campaign_audience", day, {
        "treated_users": treated.height,
        "holdout_users": int(audience["is_holdout"].sum())})
