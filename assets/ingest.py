"""Ingest: read raw transactions, validate them, stage the good, quarantine the bad.

The heavy lifting is `transforms.validation`; this module only reads, writes and reports.
A backfill range is processed in chunks of days: one source query and one warehouse
transaction per chunk, while validation still runs day by day (a duplicate id means
"twice within one day's partition", whether the day runs alone or in a backfill).
"""

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field

import dagster as dg
import polars as pl
from dagster import AssetExecutionContext

from pipelines.partitions import partition_days, run_now
from resources.sources import DayRead, TransactionSource
from resources.staging import StagingStore
from resources.warehouse import Warehouse
from transforms.timestamps import split_by_day
from transforms.validation import ValidationOutcome, validate_transactions

SOURCE_GROUP = "sources"
INGEST_GROUP = "ingest"
DAYS_PER_CHUNK = 31

transactions_source = dg.AssetSpec(
    "transactions", group_name=SOURCE_GROUP,
    description="Card transactions in the app database or exported files (not managed here).",
)
users_source = dg.AssetSpec(
    "users", group_name=SOURCE_GROUP,
    description="Users with signup time and marketing consent (not managed here).",
)
campaign_events_source = dg.AssetSpec(
    "campaign_events", group_name=SOURCE_GROUP,
    description="Delivered/opened/clicked/converted events from the notification service.",
)


@dataclass
class IngestTotals:
    """Running totals over a run, for metadata and progress lines."""

    read: int = 0
    accepted: int = 0
    rejected: int = 0
    reasons: Counter[str] = field(default_factory=Counter)

    def add(self, outcome: ValidationOutcome) -> None:
        self.read += outcome.rows_read
        self.accepted += outcome.accepted.height
        self.rejected += outcome.rejected.height
        self.reasons.update(outcome.reason_counts())


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)


def _summary_row(day: dt.date, outcome: ValidationOutcome, staged_path: str) -> dict:
    amounts = outcome.accepted["amount_cents"]
    return {
        "as_of_date": day,
        "rows_read": outcome.rows_read,
        "rows_accepted": outcome.accepted.height,
        "rows_rejected": outcome.rejected.height,
        "purchases": int((amounts > 0).sum()),
        "refunds": int((amounts < 0).sum()),
        "zero_amount": int((amounts == 0).sum()),
        "staged_path": staged_path,
        "window_start": _midnight(day),
        "window_end": _midnight(day + dt.timedelta(days=1)),
    }


def _chunks(days: list[dt.date], size: int) -> list[list[dt.date]]:
    return [days[index:index + size] for index in range(0, len(days), size)]


def _stored_counts_reconcile(warehouse: Warehouse, staging: StagingStore,
                             days: list[dt.date]) -> bool:
    """Count what was actually written (Parquet rows + quarantined rows) against rows read."""
    stored = warehouse.read_named("ingest_reconciliation", {"first": days[0], "last": days[-1]})
    read = dict(zip(stored["as_of_date"], stored["rows_read"], strict=True))
    rejected = dict(zip(stored["as_of_date"], stored["rows_rejected_stored"], strict=True))
    for day in days:
        staged = pl.scan_parquet(staging.path_for(day)).select(pl.len()).collect().item()
        if day not in read or staged + rejected[day] != read[day]:
            return False
    return True


def build_ingest_assets(first_partition_date: dt.date, partitions: dg.PartitionsDefinition,
                        future_tolerance: dt.timedelta) -> dg.AssetsDefinition:
    """The `valid_transactions` / `rejected_transactions` pair for the given partitions."""

    @dg.multi_asset(
        specs=[
            dg.AssetSpec(
                "valid_transactions", deps=[transactions_source], group_name=INGEST_GROUP,
                description="Validated transactions staged as daily Parquet files.",
            ),
            dg.AssetSpec(
                "rejected_transactions", deps=[transactions_source], group_name=INGEST_GROUP,
                description="Rows that failed validation, kept with their reason.",
            ),
        ],
        check_specs=[
            dg.AssetCheckSpec(
                "rows_reconcile", asset="valid_transactions", blocking=True,
                description="Stored rows (staged + quarantined) = rows read, for every day.",
            ),
        ],
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        retry_policy=dg.RetryPolicy(max_retries=2, delay=2, backoff=dg.Backoff.EXPONENTIAL,
                                    jitter=dg.Jitter.PLUS_MINUS),
    )
    def ingest_transactions(
        context: AssetExecutionContext,
        source: TransactionSource,
        staging: StagingStore,
        warehouse: Warehouse,
    ):
        now = run_now(context)
        warehouse.ensure_schema()
        totals = IngestTotals()
        days = partition_days(context)
        for chunk in _chunks(days, DAYS_PER_CHUNK):
            end = _midnight(chunk[-1] + dt.timedelta(days=1))
            read = DayRead(_midnight(chunk[0]), end, include_later=end > now,
                           include_undated=chunk[0] == first_partition_date)
            rejected, summaries = [], []
            for day, raw in split_by_day(source.read_transactions(read), chunk[0],
                                         chunk[-1]).items():
                outcome = validate_transactions(raw, latest_allowed=now + future_tolerance)
                path = staging.write_day(day, outcome.accepted)
                rejected.append(outcome.rejected.with_columns(pl.lit(day).alias("as_of_date")))
                summaries.append(_summary_row(day, outcome, str(path)))
                totals.add(outcome)
            warehouse.replace_partition_range("rejected_transactions", pl.concat(rejected),
                                              first=chunk[0], last=chunk[-1])
            warehouse.replace_partition_range("staged_partitions", pl.DataFrame(summaries),
                                              first=chunk[0], last=chunk[-1])
            context.log.info(f"ingested {chunk[0]}..{chunk[-1]}: {totals.read:,} rows so far")
        reconciled = _stored_counts_reconcile(warehouse, staging, days)
        reason_table = "\n".join(
            f"| {code} | {count} |" for code, count in sorted(totals.reasons.items()))
        common = {"days": len(days), "first_day": str(days[0]), "last_day": str(days[-1])}
        yield dg.MaterializeResult(
            asset_key="valid_transactions",
            metadata={
                **common,
                "rows_read": totals.read,
                "rows_accepted": totals.accepted,
                "rows_rejected": totals.rejected,
                "staging_dir": dg.MetadataValue.path(staging.base_dir),
                "as_of_now": now.isoformat(),
            },
        )
        yield dg.MaterializeResult(
            asset_key="rejected_transactions",
            metadata={
                **common,
                "rows_rejected": totals.rejected,
                "reasons": dg.MetadataValue.md(
                    "| reason | rows |\n|---|---|\n" + (reason_table or "| (none) | 0 |")
                ),
                "table": f"{warehouse.schema_name}.rejected_transactions",
            },
        )
        yield dg.AssetCheckResult(
            check_name="rows_reconcile", asset_key="valid_transactions", passed=reconciled,
            metadata={"rows_read": totals.read, "rows_accepted": totals.accepted,
                      "rows_rejected": totals.rejected},
        )

    return ingest_transactions
