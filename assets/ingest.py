"""Ingest: read raw transactions, validate them, stage the good, quarantine the bad.

The heavy lifting is `transforms.validation`; the assets layer only reads, writes and
reports. This module declares the one step and its four assets; the work is
`assets/ingest_chunks.py` (a backfill range is processed in chunks of days: one source
query and one warehouse transaction per chunk, while validation still runs day by day),
and the checks and metadata are `assets/ingest_report.py`.
"""

import datetime as dt

import dagster as dg
from dagster import AssetExecutionContext

from assets.ingest_chunks import IngestRules, IngestRun, chunks, ingest_chunk
from assets.ingest_report import materializations, report_days
from assets.partition_results import PartitionReporter
from assets.partitions import partition_days, run_now
from assets.retries import TRANSIENT_RETRY, retry_transient_only
from resources.sources import TransactionSource
from resources.staging import StagingStore
from resources.warehouse import Warehouse
from transforms.ingest_checks import SHARE_MIN_ROWS
from transforms.ingest_policy import IngestPolicy

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


def _ingest_specs() -> list[dg.AssetSpec]:
    return [
        dg.AssetSpec(
            "valid_transactions", deps=[transactions_source, users_source],
            group_name=INGEST_GROUP,
            description="Validated transactions staged as daily Parquet files.",
        ),
        dg.AssetSpec(
            "rejected_transactions", deps=[transactions_source, users_source],
            group_name=INGEST_GROUP,
            description="Rows that failed validation, kept with their reason.",
        ),
        dg.AssetSpec(
            "staged_partitions", deps=[transactions_source, users_source],
            group_name=INGEST_GROUP,
            description="One bookkeeping row per ingested day: rows read, accepted, "
                        "rejected, accepted after a policy decision, the staged file's "
                        "token (what `inputs_complete` compares).",
        ),
        dg.AssetSpec(
            "rejected_files", deps=[transactions_source],
            group_name=INGEST_GROUP,
            description="Export files that could not be read at all, with the reason, "
                        "under every day of the run that met them.",
        ),
    ]


def _ingest_checks(partitions: dg.PartitionsDefinition, max_rejected_share: float
                   ) -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(
            "rows_reconcile", asset="valid_transactions", blocking=True,
            partitions_def=partitions,
            description="Stored rows (staged + quarantined) = rows read, for every day.",
        ),
        dg.AssetCheckSpec(
            "rejections_below_limit", asset="valid_transactions", blocking=True,
            partitions_def=partitions,
            description=f"At most {max_rejected_share:.0%} of a day's rows rejected "
                        f"(MARKETING_MAX_REJECTED_SHARE; days of {SHARE_MIN_ROWS}+ rows), "
                        "and at least one row kept from a day with rows dated in it; "
                        "names the top reasons.",
        ),
        dg.AssetCheckSpec(
            "files_readable", asset="valid_transactions", blocking=False,
            partitions_def=partitions,
            description="Every export file could be read (a refused file is listed in "
                        "rejected_files with its reason; its rows are not staged).",
        ),
    ]


def build_ingest_assets(first_partition_date: dt.date, partitions: dg.PartitionsDefinition,
                        future_tolerance: dt.timedelta, max_rejected_share: float, *,
                        policy: IngestPolicy | None = None, allow_emptying_days: bool = False
                        ) -> dg.AssetsDefinition:
    """One step, four assets: `valid_transactions` (the staged days, with their text-id
    dictionary `user_keys`), `rejected_transactions`, and the bookkeeping tables
    `staged_partitions` and `rejected_files`, all committed together per chunk."""
    rules = IngestRules(first_partition_date, future_tolerance, max_rejected_share,
                        policy or IngestPolicy(), allow_emptying_days)

    @dg.multi_asset(
        specs=_ingest_specs(),
        check_specs=_ingest_checks(partitions, max_rejected_share),
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        retry_policy=TRANSIENT_RETRY,
    )
    @retry_transient_only
    def ingest_transactions(
        context: AssetExecutionContext,
        source: TransactionSource,
        staging: StagingStore,
        warehouse: Warehouse,
    ):
        run = IngestRun(rules, run_now(context))
        warehouse.ensure_schema()
        days = partition_days(context)
        reporter = PartitionReporter(context)
        for chunk in chunks(days, DAYS_PER_CHUNK):
            ingest_chunk(run, chunk, source, staging, warehouse)
            totals = run.totals
            context.log.info(f"ingested {chunk[0]}..{chunk[-1]}: {totals.read:,} rows so far, "
                             f"{totals.rejected:,} rejected, "
                             f"{len(totals.rejected_files)} file(s) refused")
        report_days(reporter, run, days, staging, warehouse)
        yield from materializations(run, days, staging, warehouse)
        yield from reporter.finish()

    return ingest_transactions
