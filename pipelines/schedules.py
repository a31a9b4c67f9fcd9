"""Schedules: the hourly refresh of today's partition."""

from __future__ import annotations

import datetime as dt

import dagster as dg

from pipelines.jobs import ALL_ASSETS_JOB
from pipelines.partitions import AS_OF_NOW_TAG


def hourly_run_request(tick: dt.datetime) -> dg.RunRequest:
    """The run for one hourly tick: today's partition, seeing transactions up to the tick.

    The run key names the hour, so the daemon never launches the same hour twice, and the
    pinned `as_of_now` makes a re-execution of that run reproduce it exactly.
    """
    tick = tick.astimezone(dt.UTC)
    return dg.RunRequest(
        run_key=f"hourly-{tick:%Y-%m-%dT%H}",
        partition_key=tick.date().isoformat(),
        tags={AS_OF_NOW_TAG: tick.isoformat()},
    )


def build_schedules(jobs: list[dg.UnresolvedAssetJobDefinition]) -> list[dg.ScheduleDefinition]:
    """Hourly refresh of today's partition (stopped by default: turn it on in the UI)."""
    job = next(job for job in jobs if job.name == ALL_ASSETS_JOB)

    @dg.schedule(
        name="hourly_refresh",
        cron_schedule="5 * * * *",
        execution_timezone="UTC",
        job=job,
        description="Every hour at :05 UTC, refresh today's partition of the whole graph.",
    )
    def hourly_refresh(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        return hourly_run_request(context.scheduled_execution_time)

    return [hourly_refresh]
