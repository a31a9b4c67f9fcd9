"""`user_segments` and `segment_overlap`: the day's segments from its committed profiles.

Wiring only: `transforms/segments.py` computes both tables, `transforms/profile_checks.py`
decides `consistent_with_profiles`. Both tables, every day of the run, commit in one
transaction.
"""

import datetime as dt

import dagster as dg
import polars as pl
from dagster import AssetExecutionContext

from assets.partition_results import PartitionReporter
from assets.partitions import as_of_end, partition_days, run_now
from assets.profiles import PROFILE_GROUP, PROFILES
from assets.reporting import markdown_table
from assets.retries import TRANSIENT_RETRY, retry_transient_only
from resources.committed_snapshots import read_committed
from resources.staging import StagingStore
from resources.table_writes import TableWrite
from resources.warehouse import Warehouse
from transforms.profile_checks import segment_count_mismatches, shares_out_of_range
from transforms.segments import compute_segment_overlap, compute_segments


def build_segment_assets(partitions: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    """`user_segments` and `segment_overlap` for the given daily partitions."""

    @dg.multi_asset(
        specs=[
            dg.AssetSpec("user_segments", deps=[PROFILES], group_name=PROFILE_GROUP,
                         description="Per pattern: user count, share, total/average/median "
                                     "spend, purchases per week."),
            dg.AssetSpec("segment_overlap", deps=[PROFILES], group_name=PROFILE_GROUP,
                         description="Users carrying both of two patterns, per pair; "
                                     "committed with user_segments."),
        ],
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        check_specs=[
            dg.AssetCheckSpec("consistent_with_profiles", asset="user_segments", blocking=True,
                              partitions_def=partitions,
                              description="Counts match the profiles; shares within [0, 1]."),
        ],
        retry_policy=TRANSIENT_RETRY,
    )
    @retry_transient_only
    def user_segments(context: AssetExecutionContext, staging: StagingStore,
                      warehouse: Warehouse):
        reporter = PartitionReporter(context)
        now = run_now(context)
        days = partition_days(context)
        all_segments, all_overlaps = [], []
        for day in days:
            profiles = read_committed(staging, warehouse, PROFILES, day)
            segments = compute_segments(profiles, as_of_date=day, as_of_end=as_of_end(day, now))
            all_segments.append(segments)
            all_overlaps.append(compute_segment_overlap(profiles))
            _report_day(reporter, day, profiles, segments)
        # Both tables, every day of the run, in one transaction: a failure or a kill
        # leaves the previous segments and overlaps of every day, never one without the
        # other.
        warehouse.replace_together([
            TableWrite.partition_range("user_segments", pl.concat(all_segments),
                                       days[0], days[-1]),
            TableWrite.partition_range("segment_overlap", pl.concat(all_overlaps),
                                       days[0], days[-1]),
        ])
        yield dg.MaterializeResult(asset_key="user_segments")
        yield dg.MaterializeResult(asset_key="segment_overlap")
        yield from reporter.finish()

    return user_segments


def _report_day(reporter: PartitionReporter, day: dt.date, profiles: pl.DataFrame,
                segments: pl.DataFrame) -> None:
    """The day's `consistent_with_profiles` with its evidence, and the segment table."""
    mismatched = segment_count_mismatches(profiles, segments)
    out_of_range = shares_out_of_range(segments)
    reporter.check("user_segments", "consistent_with_profiles", day,
                   passed=not mismatched and out_of_range == 0,
                   evidence={"profiles": profiles.height,
                             "patterns_with_wrong_count": str(mismatched),
                             "shares_out_of_range": out_of_range})
    reporter.metadata("user_segments", day, {
        "segments": markdown_table(segments.select(
            "behavior_pattern", "user_count", "share_of_users", "avg_spend",
            "median_spend", "avg_purchases_per_week")),
    })
