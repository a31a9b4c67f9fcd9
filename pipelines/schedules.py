"""Schedules: the hourly refresh of today's partition."""

from __future__ import annotations

import datetime as dt

import dagster as dg

from assets.partitions import AS_OF_NOW_TAG
from pipelines.jobs import ALL_ASSETS_JOB

RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


def hourly_run_request(tick: dt.datetime, first_partition_date: dt.date | None = None
                       ) -> dg.RunRequest:
    """The run for one hourly tick: today's partition, seeing transactions up to the tick.

    The first tick after midnight also *closes* yesterday: it runs [yesterday, today] as one
    range run, so yesterday is refreshed once more with its window ending at midnight and
    its rows after the previous tick are staged (otherwise the last hour of every day would
    never reach a profile). One run, not two, so the days run in order in one process.

    The run key names the hour, so the daemon never launches the same hour twice, and the
    pinned `as_of_now` makes a re-execution of that run use the same window ends.
    """
    tick = tick.astimezone(dt.UTC)
    today = tick.date()
    tags = {AS_OF_NOW_TAG: tick.isoformat()}
    run_key = f"hourly-{tick:%Y-%m-%dT%H}"
    yesterday = today - dt.timedelta(days=1)
    if tick.hour == 0 and (first_partition_date is None or yesterday >= first_partition_date):
        return dg.RunRequest(run_key=run_key, tags={
            **tags, RANGE_START_TAG: yesterday.isoformat(), RANGE_END_TAG: today.isoformat()})
    return dg.RunRequest(run_key=run_key, partition_key=today.isoformat(), tags=tags)


def build_schedules(jobs: list[dg.UnresolvedAssetJobDefinition],
                    first_partition_date: dt.date | None = None) -> list[dg.ScheduleDefinition]:
    """Hourly refresh of today's partition (stopped by default: turn it on in the UI)."""
    job = next(job for job in jobs if job.name == ALL_ASSETS_JOB)

    @dg.schedule(
        name="hourly_refresh",
        cron_schedule="5 * * * *",
        execution_timezone="UTC",
        job=job,
        description="Every hour at :05 UTC, refresh today's partition of the whole graph; the "
                    "00:05 tick also closes yesterday (one run over both days).",
    )
    def hourly_refresh(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        return hourly_run_request(context.scheduled_execution_time, first_partition_date)

    return [hourly_refresh]
