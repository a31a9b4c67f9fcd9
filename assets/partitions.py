"""The daily `as_of` partitions and the clock every asset in a run agrees on.

In the assets layer, below everything that uses them: the assets read the clock and the
partition window, and `pipelines/` (definitions, schedules, the runner) builds the
partitions and pins the clock with `AS_OF_NOW_TAG`."""

from __future__ import annotations

import datetime as dt

import dagster as dg

# A run tag that pins "now" (ISO 8601, UTC): schedules, tests and replays set it, so every
# window end of a run (and of its re-execution) is the same instant. The rows read are the
# source's at execution time (docs/consistency.md, "Pinned replays").
AS_OF_NOW_TAG = "marketing/as_of_now"


def daily_partitions(first_date: dt.date) -> dg.DailyPartitionsDefinition:
    """Daily partitions in UTC from `first_date` up to and including today.

    `end_offset=1` adds today's partition, which the hourly schedule refreshes as
    transactions arrive (its window ends at the run's start, not at midnight).
    """
    return dg.DailyPartitionsDefinition(
        start_date=first_date.isoformat(), timezone="UTC", end_offset=1
    )


def run_now(context: dg.AssetExecutionContext) -> dt.datetime:
    """The run's reference time: its `marketing/as_of_now` tag, else when it was created.

    Every step of a run uses the same instant, so the profile step sees exactly the
    transactions the ingest step accepted, however long the steps in between take.
    """
    pinned = context.run.tags.get(AS_OF_NOW_TAG)
    if pinned:
        moment = dt.datetime.fromisoformat(pinned)
        return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
    record = context.instance.get_run_record_by_id(context.run.run_id)
    if record is not None and record.create_timestamp is not None:
        return record.create_timestamp.astimezone(dt.UTC)
    return dt.datetime.now(dt.UTC)


def partition_days(context: dg.AssetExecutionContext) -> list[dt.date]:
    """The days this run materializes: one partition, or a whole range (single-run backfill)."""
    window = context.partition_time_window
    first = window.start.astimezone(dt.UTC).date()
    last = window.end.astimezone(dt.UTC).date()
    return [first + dt.timedelta(days=offset) for offset in range((last - first).days)]


def as_of_end(day: dt.date, now: dt.datetime) -> dt.datetime:
    """End of the partition's window: the start of the next day, or now if that is earlier."""
    next_midnight = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    return min(next_midnight, now)
