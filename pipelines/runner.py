"""Running jobs in-process against a Dagster instance: the demo and tests use this.

Partition ranges go through Dagster's range tags, so a single-run backfill policy sees the
whole range in one run, exactly as a backfill launched from the UI would.
"""

from __future__ import annotations

import datetime as dt

import dagster as dg

from assets.partitions import AS_OF_NOW_TAG

QUIET_LOGS = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def run_job_for_days(
    defs: dg.Definitions,
    job_name: str,
    first: dt.date,
    last: dt.date,
    *,
    instance: dg.DagsterInstance,
    now: dt.datetime | None = None,
    quiet: bool = True,
    raise_on_error: bool = True,
) -> dg.ExecuteInProcessResult:
    """Execute `job_name` over the partitions [first, last] in one run, raising on failure
    unless `raise_on_error` is false (then the result tells)."""
    tags = {
        "dagster/asset_partition_range_start": first.isoformat(),
        "dagster/asset_partition_range_end": last.isoformat(),
    }
    if now is not None:
        tags[AS_OF_NOW_TAG] = now.isoformat()
    job = defs.resolve_job_def(job_name)
    return job.execute_in_process(
        instance=instance,
        tags=tags,
        run_config=QUIET_LOGS if quiet else None,
        raise_on_error=raise_on_error,
    )
