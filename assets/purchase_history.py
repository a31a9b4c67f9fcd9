"""Per-user first/last purchase before a day, cached as Parquet so hourly runs stay cheap.

The profile window is 90 days, but "first purchase ever" and "last purchase ever" need all
history. Rather than rescanning every staged day each hour, the summary of purchases before
day X is kept in `<staging>/purchase_history/as_of_date=X/part.parquet`, built from the
summary before X-1 plus day X-1. A cached summary is used only while it is newer than every
staged file it covers, so re-ingesting an old day invalidates it automatically.
"""

import datetime as dt

import polars as pl

from resources.staging import StagingStore
from transforms.profiles import (
    PURCHASE_HISTORY_SCHEMA,
    merge_purchase_history,
    summarize_purchase_history,
)

HISTORY = "purchase_history"


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)


def _is_fresh(staging: StagingStore, first: dt.date, before: dt.date) -> bool:
    cached = staging.snapshot_path(HISTORY, before)
    if not cached.is_file():
        return False
    built = cached.stat().st_mtime
    covered = staging.staged_days(first, before - dt.timedelta(days=1))
    return all(staging.path_for(day).stat().st_mtime <= built for day in covered)


def purchase_history_before(staging: StagingStore, first_partition: dt.date,
                            before: dt.date) -> pl.LazyFrame:
    """Summary (PURCHASE_HISTORY_SCHEMA) of purchases on staged days in [first, before)."""
    if before <= first_partition:
        return pl.LazyFrame(schema=PURCHASE_HISTORY_SCHEMA)
    if _is_fresh(staging, first_partition, before):
        return pl.scan_parquet(staging.snapshot_path(HISTORY, before))
    previous_day = before - dt.timedelta(days=1)
    if _is_fresh(staging, first_partition, previous_day):
        summary = merge_purchase_history(
            pl.scan_parquet(staging.snapshot_path(HISTORY, previous_day)),
            summarize_purchase_history(staging.scan_days(previous_day, previous_day),
                                       before=_midnight(before)),
        )
    else:
        summary = summarize_purchase_history(staging.scan_days(first_partition, previous_day),
                                             before=_midnight(before))
    frame = summary.collect().cast(PURCHASE_HISTORY_SCHEMA)
    staging.write_snapshot(HISTORY, before, frame)
    return frame.lazy()
