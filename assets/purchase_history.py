"""`purchase_history`: each user's first and last purchase before a day's `as_of_end`.

The profile window is 90 days, but "first purchase ever" and "last purchase ever" need all
history, and so do the customer-value models (purchase days, first and total amounts:
transforms/purchase_history.py). Rescanning every staged day each hour would not scale,
and reading them without declaring it would hide from Dagster what a profile depends on.
So the history is an asset of its own, declared as what it is: day D's summary is day
D-1's summary extended by the staged day D (a self-dependency on D-1 plus
`valid_transactions` of D). Dagster therefore orders it day by day in every backfill, and
each file records the tokens it was built from (assets/completeness.py), so a history
built before an earlier day was re-staged is detected instead of used.

Stored as Parquet beside the staged days: `<staging>/purchase_history/as_of_date=D/`.
"""

import datetime as dt

import dagster as dg
import polars as pl
from dagster import AssetExecutionContext

from assets.completeness import HISTORY, TOKEN, Gap, history_chain_gap, history_lineage
from assets.partition_results import PartitionReporter
from assets.partitions import as_of_end, partition_days, run_now
from resources.staging import StagingStore
from transforms.purchase_history import (
    PURCHASE_HISTORY_FILE_SCHEMA,
    extend_purchase_history,
    summarize_purchase_day,
)

HISTORY_GROUP = "ingest"
PREVIOUS_DAY = dg.TimeWindowPartitionMapping(start_offset=-1, end_offset=-1)

def _refuse(context: AssetExecutionContext, gap: Gap, first_partition: dt.date) -> None:
    raise dg.Failure(
        description=(
            f"purchase_history cannot be built: {gap}. Every day since the first partition "
            f"({first_partition}) must be staged and summarised in order; materialize "
            f"valid_transactions and purchase_history from {gap.day} onwards first "
            "(docs/consistency.md)."
        ),
        metadata={"first_missing_day": str(gap.day), "problem": gap.problem},
        allow_retries=False,
    )

def build_purchase_history_asset(first_partition_date: dt.date,
                                 partitions: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    """The `purchase_history` asset for the given daily partitions."""

    @dg.asset(
        name=HISTORY,
        deps=["valid_transactions", dg.AssetDep(HISTORY, partition_mapping=PREVIOUS_DAY)],
        group_name=HISTORY_GROUP,
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        description="Per user: first and last purchase before the day's as_of_end (day D-1's "
                    "summary merged with staged day D). Feeds first/last purchase ever into "
                    "the profiles without rescanning all history.",
    )
    def purchase_history(context: AssetExecutionContext, staging: StagingStore):
        days = partition_days(context)
        now = run_now(context)
        previous_day = days[0] - dt.timedelta(days=1)
        previous_token = ""
        summary = pl.LazyFrame(schema=PURCHASE_HISTORY_FILE_SCHEMA)
        if days[0] > first_partition_date:
            gap, previous_token = history_chain_gap(staging, first_partition_date,
                                                    previous_day)
            if gap is not None:
                _refuse(context, gap, first_partition_date)
            summary = pl.scan_parquet(staging.snapshot_path(HISTORY, previous_day))
        reporter = PartitionReporter(context)
        for day in days:
            staged_token = staging.token_of_day(day)
            if staged_token is None:
                _refuse(context, Gap(day, "not staged: run ingest for it"),
                        first_partition_date)
            end = as_of_end(day, now)
            day_summary = summarize_purchase_day(staging.scan_days(day, day), day, before=end)
            frame = extend_purchase_history(summary, day_summary).collect().sort("user_id")
            lineage = history_lineage(staged_token, previous_token, end)
            staging.write_snapshot(HISTORY, day, frame, lineage)
            reporter.metadata(HISTORY, day, {"users": frame.height,
                                             "as_of_end": end.isoformat(),
                                             "token": lineage[TOKEN]})
            previous_token = lineage[TOKEN]
            summary = frame.lazy()
        context.log.info(f"purchase_history {days[0]}..{days[-1]}: "
                         f"{frame.height:,} users with a purchase")
        yield dg.MaterializeResult()

    return purchase_history
