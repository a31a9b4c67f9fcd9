"""What the ingest step says once every chunk is committed: per day, its three checks with
their evidence and its metadata; per run, one materialization of each ingest asset.

The checks' decisions are in `transforms/ingest_checks.py`; `rows_reconcile` counts from
storage (the staged file, the quarantine table), not from memory, so it sees what was
really written.
"""

import datetime as dt
from collections.abc import Iterator

import dagster as dg

from assets.ingest_chunks import IngestRun
from assets.partition_results import PartitionReporter
from resources.staging import StagingStore
from resources.warehouse import Warehouse
from transforms.ingest_checks import reconciles, top_reasons


def report_days(reporter: PartitionReporter, run: IngestRun, days: list[dt.date],
                staging: StagingStore, warehouse: Warehouse) -> None:
    """Every day's `rows_reconcile`, `rejections_below_limit` and `files_readable`, and the
    day's metadata on `valid_transactions` and `rejected_transactions`."""
    stored = _stored_counts(warehouse, staging, days)
    limit = run.rules.max_rejected_share
    for day in days:
        outcome = run.outcomes[day]
        counts = {"rows_read": outcome.rows_read, "rows_accepted": outcome.accepted.height,
                  "rows_rejected": outcome.rejected.height}
        reasons = top_reasons(outcome)
        reporter.check("valid_transactions", "rows_reconcile", day,
                       passed=reconciles(stored[day]),
                       evidence={**counts, **{f"stored/{key}": value
                                              for key, value in stored[day].items()}})
        share = run.shares[day]
        acceptable = share.acceptable(limit)
        reporter.check("valid_transactions", "rejections_below_limit", day,
                       passed=acceptable,
                       evidence={**counts, "rows_dated_later": share.dated_later,
                                 "rows_undated": share.undated,
                                 "rejected_share": round(share.share, 4),
                                 "limit": limit, "top_reasons": reasons},
                       description=None if acceptable else
                       f"{day}: {share.rejected:,} of {share.own:,} rows of the day "
                       f"rejected ({share.share:.0%}, limit {limit:.0%}); "
                       f"top reasons: {reasons}")
        files = run.files_by_day[day]
        reporter.check("valid_transactions", "files_readable", day, passed=not files,
                       evidence={"files_rejected": len(files),
                                 "files": "; ".join(f"{file.path}: {file.reason_code}"
                                                    for file in files) or "none"},
                       description=None if not files else
                       f"{day}: {len(files)} export file(s) refused: "
                       + "; ".join(f"{file.path} ({file.reason})" for file in files))
        reporter.metadata("valid_transactions", day, {
            **counts, **{f"accepted_with/{code}": count
                         for code, count in sorted(outcome.notes.items())},
            "users_checked": run.users_checked, "path": str(staging.path_for(day))})
        reporter.metadata("rejected_transactions", day, {
            "rows_rejected": outcome.rejected.height, "top_reasons": reasons})


def materializations(run: IngestRun, days: list[dt.date], staging: StagingStore,
                     warehouse: Warehouse) -> Iterator[dg.MaterializeResult]:
    """One result per ingest asset, with the run's totals."""
    totals = run.totals
    reason_table = "\n".join(
        f"| {code} | {count} |" for code, count in sorted(totals.reasons.items()))
    yield dg.MaterializeResult(
        asset_key="valid_transactions",
        metadata={
            "staging_dir": dg.MetadataValue.path(staging.base_dir),
            "as_of_now": run.now.isoformat(),
            "accepted_with_a_decision": dg.MetadataValue.json(dict(totals.notes)),
            "rejected_files": dg.MetadataValue.md(
                "| file | reason |\n|---|---|\n" + ("\n".join(
                    f"| {file.path} | {file.reason} |"
                    for file in totals.rejected_files.values()) or "| (none) | |")),
        },
    )
    yield dg.MaterializeResult(
        asset_key="rejected_transactions",
        metadata={
            "reasons_in_run": dg.MetadataValue.md(
                "| reason | rows |\n|---|---|\n" + (reason_table or "| (none) | 0 |")
            ),
            "table": f"{warehouse.schema_name}.rejected_transactions",
        },
    )
    yield dg.MaterializeResult(asset_key="staged_partitions", metadata={
        "table": f"{warehouse.schema_name}.staged_partitions", "days": len(days),
        "rows_read": totals.read, "rows_rejected": totals.rejected})
    yield dg.MaterializeResult(asset_key="rejected_files", metadata={
        "table": f"{warehouse.schema_name}.rejected_files",
        "files_rejected": len(totals.rejected_files)})


def _stored_counts(warehouse: Warehouse, staging: StagingStore, days: list[dt.date]
                   ) -> dict[dt.date, dict[str, int | None]]:
    """What was actually written per day (Parquet rows, quarantined rows) and rows read as
    recorded, for the reconcile check: counted from storage, not from memory."""
    stored = warehouse.read_named("ingest_reconciliation", {"first": days[0], "last": days[-1]})
    by_day = {row["as_of_date"]: row for row in stored.iter_rows(named=True)}
    counts = {}
    for day in days:
        row = by_day.get(day, {})
        counts[day] = {"rows_read": row.get("rows_read"),
                       "rows_staged": staging.rows_of_day(day),
                       "rows_rejected_stored": row.get("rows_rejected_stored")}
    return counts
