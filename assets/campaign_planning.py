"""The planning half of a campaign-cycle day: read what D may know, write D's plan, audience
and statuses, and report the plan's checks and figures.

Wiring only: the plan itself is `transforms.campaign_planning.plan_day`, the checks'
decisions are in `transforms/campaign_checks.py`. Reads happen before the cycle's
transaction opens (they see what earlier days committed); the writes happen inside it.
"""

import datetime as dt

import polars as pl

from assets.partition_results import PartitionReporter
from assets.partitions import as_of_end
from assets.reporting import markdown_table
from resources.committed_snapshots import read_committed
from resources.sources import TransactionSource
from resources.staging import StagingStore
from resources.table_writes import TableWrite
from resources.warehouse import Warehouse, WarehouseTransaction
from transforms.campaign_checks import planned_budget, users_not_opted_in, users_targeted_twice
from transforms.campaign_config import CampaignConfig
from transforms.campaign_planning import PlannedDay, PlanningInputs


def read_planning_inputs(warehouse: Warehouse, staging: StagingStore,
                         source: TransactionSource, config: CampaignConfig, day: dt.date,
                         end: dt.datetime) -> PlanningInputs:
    """Everything planning day D reads: D's segments and committed profiles, what days
    before D committed, the operators' overrides and the source's users by D's end."""
    yesterday = day - dt.timedelta(days=1)
    return PlanningInputs(
        segments=warehouse.read_named("user_segments_for_day", {"day": day}),
        profiles=read_committed(staging, warehouse, "behavioral_profiles", day),
        metrics=warehouse.read_named("campaign_metrics_through", {"day": yesterday}),
        overrides=warehouse.read_named("campaign_status_overrides"),
        earlier=warehouse.read_named("campaigns_planned_through", {"day": yesterday}),
        users=source.read_users(end),
        recent_audience=warehouse.read_named("campaign_audience_recent", {
            "since": day - dt.timedelta(days=config.frequency_window_days), "day": day}),
        # 500k rows a day at scale: read only when some campaign type targets by value
        value=warehouse.read("SELECT user_id, value_tier, churn_risk FROM customer_value "
                             "WHERE as_of_date = :day", {"day": day})
        if config.value_targeting else None,
    )


def write_plan(transaction: WarehouseTransaction, planned: PlannedDay, day: dt.date,
               now: dt.datetime) -> None:
    """D's plan, audience and statuses, then the current status onto every campaign."""
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


def report_plan(reporter: PartitionReporter, config: CampaignConfig, day: dt.date,
                planned: PlannedDay) -> None:
    """The plan's and the audience's checks with their evidence, and their metadata."""
    plan, audience = planned.plan, planned.audience
    budget, total = planned_budget(plan), float(config.total_daily_budget)
    reporter.check("ai_campaigns", "budget_within_total", day, passed=budget <= total,
                   evidence={"budget": budget, "total": total, "campaigns": plan.height})
    treated = audience.filter(~pl.col("is_holdout"))
    repeated = users_targeted_twice(audience)
    reporter.check("campaign_audience", "one_campaign_per_user_per_day", day,
                   passed=repeated.is_empty(),
                   evidence={"treated": treated.height, "users_twice": repeated.len(),
                             "examples": str(repeated.head(10).to_list())})
    not_opted = users_not_opted_in(audience, planned.users)
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
