"""The measurement half of a campaign-cycle day: metrics, deliveries and incrementality,
measured inside the cycle's transaction, and their check and figures once it committed.

Wiring only: `transforms.campaign_metrics.measure_day` computes the three tables,
`transforms.campaign_checks.ratios_out_of_range` decides the check.
"""

import datetime as dt
from dataclasses import dataclass

import polars as pl

from assets.partition_results import PartitionReporter
from assets.reporting import markdown_table
from resources.table_writes import TableWrite
from resources.warehouse import WarehouseTransaction
from transforms.campaign_checks import ratios_out_of_range
from transforms.campaign_metrics import MeasuredDay, measure_day


@dataclass(frozen=True)
class Measured:
    """What day D's measurement wrote, and every campaign's metrics to date after it."""

    day: MeasuredDay
    metrics_to_date: pl.DataFrame


def measure(transaction: WarehouseTransaction, events: pl.DataFrame, day: dt.date,
            end: dt.datetime) -> Measured:
    """Day D's metrics, deliveries and incrementality, from the events before its end and
    the audiences planned up to D (this transaction wrote D's a moment ago)."""
    measured = measure_day(events, transaction.read_named("campaign_audience_through",
                                                          {"day": day}),
                           transaction.read_named("campaigns_planned_through", {"day": day}),
                           as_of_date=day, recorded_at=end)
    transaction.replace(TableWrite.partition("campaign_metrics", measured.metrics, day,
                                             "metric_date"))
    transaction.replace(TableWrite.partition("campaign_delivery", measured.deliveries, day))
    transaction.replace(TableWrite.partition("campaign_incrementality", measured.lift, day))
    return Measured(measured,
                    transaction.read_named("campaign_metrics_through", {"day": day}))


def report_measure(reporter: PartitionReporter, day: dt.date, measured: Measured,
                   dropped: int) -> None:
    """`ratios_in_range` with its evidence, and the day's measurement figures."""
    metrics = measured.day.metrics
    violations = ratios_out_of_range(measured.metrics_to_date, day)
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
    reporter.metadata("campaign_delivery", day, {"deliveries": measured.day.deliveries.height})
    reporter.metadata("campaign_incrementality", day, {"campaigns": measured.day.lift.height})
