"""`marketing ingest`: validate and stage a range of days in one run, then say what was
rejected and why.

This is the first step of a fresh deployment (docs/consistency.md): the profiles need every
day since the first partition staged and summarised before they compute anything, so the
history is staged in one range run before the graph is backfilled or scheduled. It is also
what a data engineer reaches for after fixing an export: the per-day rejection counts and
reasons are printed, and a failed blocking check (too many rejections) exits non-zero with
the check's own description.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys

import dagster as dg

from pipelines.jobs import INGEST_JOB
from resources.settings import PipelineSettings
from resources.warehouse import Warehouse


def rejection_lines(warehouse: Warehouse, first: dt.date, last: dt.date) -> list[str]:
    """Per staged day in [first, last]: rows read, accepted, rejected and the top reasons
    of the days with rejections; then the totals, which must reconcile."""
    days = warehouse.read(
        "SELECT as_of_date, rows_read, rows_accepted, rows_rejected FROM staged_partitions "
        "WHERE as_of_date BETWEEN :first AND :last ORDER BY as_of_date",
        {"first": first, "last": last})
    reasons = warehouse.read(
        "SELECT as_of_date, reason_code, count(*) AS n FROM rejected_transactions "
        "WHERE as_of_date BETWEEN :first AND :last GROUP BY as_of_date, reason_code "
        "ORDER BY as_of_date, n DESC, reason_code", {"first": first, "last": last})
    lines = ["day           read  accepted  rejected  top reasons"]
    for row in days.iter_rows(named=True):
        day_reasons = reasons.filter(reasons["as_of_date"] == row["as_of_date"]).head(3)
        top = ", ".join(f"{code} {n:,}" for code, n in
                        zip(day_reasons["reason_code"], day_reasons["n"], strict=True))
        lines.append(f"{row['as_of_date']}  {row['rows_read']:>8,}  {row['rows_accepted']:>8,}"
                     f"  {row['rows_rejected']:>8,}  {top}")
    read, accepted, rejected = (int(days[column].sum() or 0) for column in
                                ("rows_read", "rows_accepted", "rows_rejected"))
    verdict = "reconciles" if read == accepted + rejected else "DOES NOT RECONCILE"
    lines.append(f"total {len(days)} days: {read:,} read = {accepted:,} accepted + "
                 f"{rejected:,} rejected ({verdict})")
    return lines


def _failed_checks(result: dg.ExecuteInProcessResult) -> list[str]:
    return [f"{evaluation.partition}: {evaluation.check_name}: {evaluation.description or ''}"
            for evaluation in result.get_asset_check_evaluations() if not evaluation.passed]


def _cmd_ingest(args: argparse.Namespace) -> int:
    from pipelines.definitions import build_definitions
    from pipelines.runner import run_job_for_days

    settings = PipelineSettings.from_env()
    first = dt.date.fromisoformat(args.first) if args.first else settings.first_partition_date
    last = dt.date.fromisoformat(args.last) if args.last else dt.datetime.now(dt.UTC).date()
    if last < first:
        print(f"error: last day {last} is before the first {first}", file=sys.stderr)
        return 2
    print(f"staging {first} .. {last} ({(last - first).days + 1} days) from "
          f"{settings.source_url} in one run", flush=True)
    # Recorded in the instance the UI shows when DAGSTER_HOME is set, else a throwaway one.
    instance = dg.DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else \
        dg.DagsterInstance.ephemeral()
    with instance:
        result = run_job_for_days(build_definitions(settings), INGEST_JOB, first, last,
                                  instance=instance, raise_on_error=False)
    warehouse = Warehouse(url=settings.warehouse_url, schema_name=settings.warehouse_schema)
    print("\n".join(rejection_lines(warehouse, first, last)))
    failed = _failed_checks(result)
    for line in failed:
        print(f"check failed: {line}", file=sys.stderr)
    if not result.success:
        print(f"error: the ingest run {result.run_id} failed"
              + ("" if failed else " (see the Dagster logs above)"), file=sys.stderr)
        return 1
    return 0


def add_ingest_command(commands: argparse._SubParsersAction) -> None:
    ingest = commands.add_parser(
        "ingest", help="validate and stage a range of days in one run; print rejections")
    ingest.add_argument("first", nargs="?",
                        help="YYYY-MM-DD (default: MARKETING_FIRST_PARTITION_DATE)")
    ingest.add_argument("last", nargs="?", help="YYYY-MM-DD (default: today, UTC)")
    ingest.set_defaults(handler=_cmd_ingest)
