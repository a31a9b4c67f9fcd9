"""Campaign assets: the daily campaign cycle (plan, audience, status, measurement).

Planning day D learns from the metrics of every day before D, and measuring day D needs the
audiences planned up to D: a loop across days. Dagster cannot order a loop between two
assets, so one step, `campaign_cycle`, owns the loop: for each day in order it plans,
targets, resolves statuses and then measures, and it declares the loop as what it is, a
self-dependency of `ai_campaigns` on the day before (whose step also wrote that day's
metrics and audience). Every backfill route therefore runs the days in order, and no step
reads a campaign table that Dagster does not know it depends on.

Each day's six tables (and the status copied onto `ai_campaigns`) are written in ONE
warehouse transaction: planning reads what earlier days committed, then the day is planned,
targeted, resolved and measured inside the transaction, which reads its own writes. A
failure or a kill at any point leaves the day's previous campaigns, audiences, statuses and
metrics, all of one version (docs/data-model.md, "All-or-nothing writes").

This module declares the cycle step and its loop over days; the two halves of a day are
`assets/campaign_planning.py` (read, plan, write, report) and
`assets/campaign_measurement.py` (measure inside the transaction, report); the
recommendations over the cycle are `assets/campaign_recommendations.py`. Wiring only: the
logic is in `transforms/` (campaign_planning, campaign_selection, audience, lifecycle,
campaign_metrics, campaign_checks, recommendations).
"""

import datetime as dt
from enum import Enum

import dagster as dg
from dagster import AssetExecutionContext

from assets.campaign_measurement import measure, report_measure
from assets.campaign_planning import read_planning_inputs, report_plan, write_plan
from assets.ingest import campaign_events_source, users_source
from assets.partition_results import PartitionReporter
from assets.partitions import as_of_end, partition_days, run_now
from assets.retries import TRANSIENT_RETRY, retry_transient_only
from resources.sources import TransactionSource
from resources.staging import StagingStore
from resources.table_writes import WriteScope
from resources.warehouse import Warehouse
from transforms.campaign_config import PREDICTED_VALUE_TARGETING, CampaignConfig
from transforms.campaign_planning import plan_day
from transforms.events import normalize_events

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


class Targeting(Enum):
    """Who of a segment a campaign reaches (docs/campaigns.md, "Targeting")."""

    rules = "rules"
    predicted_value = "predicted_value"


class CampaignRunConfig(dg.Config):
    """Launchpad knobs for campaign planning; everything else keeps CampaignConfig defaults
    (docs/campaigns.md lists them)."""

    total_daily_budget: float | None = None
    holdout_share: float | None = None
    frequency_cap: int | None = None
    duration_days: int | None = None
    selection_metric: str | None = None
    # "rules": every user with the segment's pattern (the default); "predicted_value": VIP
    # and re-engagement by value tier and churn risk (PREDICTED_VALUE_TARGETING).
    targeting: Targeting | None = None

    def to_campaign_config(self) -> CampaignConfig:
        overrides = {key: value for key, value in self.model_dump().items()
                     if value is not None and key != "targeting"}
        if self.targeting is Targeting.predicted_value:
            overrides["value_targeting"] = PREDICTED_VALUE_TARGETING
        return CampaignConfig.model_validate({**CampaignConfig().model_dump(), **overrides})


def _cycle_specs() -> list[dg.AssetSpec]:
    return [
        dg.AssetSpec(
            "ai_campaigns",
            deps=["user_segments", "behavioral_profiles", "customer_value",
                  campaign_status_overrides_source,
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


def build_campaign_assets(partitions: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    """The campaign cycle for the given daily partitions: one step, the six cycle tables."""

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
            planned = plan_day(read_planning_inputs(warehouse, staging, source, settings, day,
                                                    end),
                               as_of_date=day, as_of_end=end, config=settings)
            events, dropped = normalize_events(source.read_campaign_events(until=end))
            with warehouse.transaction(cycle_scopes(day)) as transaction:
                write_plan(transaction, planned, day, now)
                measured = measure(transaction, events, day, end)
            # Reported once the day is committed: a failed day reports nothing.
            report_measure(reporter, day, measured, dropped)
            report_plan(reporter, settings, day, planned)
            context.log.info(f"{day}: {planned.plan.height} campaigns, "
                             f"{planned.audience.height} audience rows")
        for spec in _cycle_specs():  # declaration order is topological, as Dagster requires
            yield dg.MaterializeResult(asset_key=spec.key)
        yield from reporter.finish()

    return campaign_cycle


def cycle_scopes(day: dt.date) -> list[WriteScope]:
    """What one cycle day's transaction writes: the day of each cycle table, and any row
    of `ai_campaigns` (the current status is copied onto every campaign ever planned)."""
    return [*(WriteScope.partition(table, day, column) for table, column in CYCLE_TABLES.items()),
            WriteScope.table_wide("ai_campaigns")]
