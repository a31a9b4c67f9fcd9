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

from assets.partition_results import PartitionReporter
from assets.retries import TRANSIENT_RETRY, retry_transient_only
from pipelines.partitions import partition_days, run_now
from resources.source_files import RejectedFile
from resources.sources import DayRead, SourceDataError, TransactionSource
from resources.staging import StagedDay, StagingStore
from resources.table_writes import TableWrite
from resources.warehouse import Warehouse
from transforms.ingest_policy import IngestPolicy
from transforms.timestamps import parse_timestamp_columns, split_by_day
from transforms.user_keys import UserKeyCollision
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
    notes: Counter[str] = field(default_factory=Counter)
    rejected_files: dict[str, RejectedFile] = field(default_factory=dict)

    def add(self, outcome: ValidationOutcome) -> None:
        self.read += outcome.rows_read
        self.accepted += outcome.accepted.height
        self.rejected += outcome.rejected.height
        self.reasons.update(outcome.reason_counts())
        self.notes.update(outcome.notes)


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)


def _summary_row(day: dt.date, outcome: ValidationOutcome, staged: StagedDay,
                 files_rejected: int) -> dict:
    amounts = outcome.accepted["amount_cents"]
    notes = outcome.notes
    return {
        "as_of_date": day,
        "rows_read": outcome.rows_read,
        "rows_accepted": outcome.accepted.height,
        "rows_rejected": outcome.rejected.height,
        "purchases": int((amounts > 0).sum()),
        "refunds": int((amounts < 0).sum()),
        "zero_amount": int((amounts == 0).sum()),
        "staged_path": str(staged.path),
        "window_start": _midnight(day),
        "window_end": _midnight(day + dt.timedelta(days=1)),
        "stage_token": staged.token,
        "rows_date_only": notes.get("date_only_timestamp", 0),
        "rows_naive_assumed": notes.get("naive_timestamp_assumed", 0),
        "rows_rounded": notes.get("rounded_amount", 0),
        "rows_converted": notes.get("converted_currency", 0),
        "rows_unknown_user": notes.get("unknown_user", 0),
        "files_rejected": files_rejected,
    }


def _chunks(days: list[dt.date], size: int) -> list[list[dt.date]]:
    return [days[index:index + size] for index in range(0, len(days), size)]


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


def _reconciles(stored: dict[str, int | None]) -> bool:
    read, staged, rejected = (stored["rows_read"], stored["rows_staged"],
                              stored["rows_rejected_stored"])
    return None not in (read, staged, rejected) and staged + rejected == read  # type: ignore[operator]


def _top_reasons(outcome: ValidationOutcome, limit: int = 5) -> str:
    reasons = Counter(outcome.reason_counts()).most_common(limit)
    return ", ".join(f"{code} ({count:,})" for code, count in reasons) or "none"


# Below this many rows of its own a day is too small for a share to mean anything: at 00:05
# one undated row among two would be "most of the day".
SHARE_MIN_ROWS = 20


@dataclass(frozen=True)
class DayShare:
    """A day's rows as the rejection check judges them.

    `dated` rows carry a timestamp inside the day and before the run's now, `undated` ones
    none that could be read (they go to the first partition). Rows dated after the day, or
    after the run's now, are read only by the latest partition, to quarantine them as
    future; they say nothing about the day's export and are left out (`dated_later`), so a
    new day holding only far-future rows is quiet, not broken."""

    dated: int
    undated: int
    accepted: int
    rejected: int  # of the day's own (dated + undated) rows
    dated_later: int

    @property
    def own(self) -> int:
        return self.dated + self.undated

    @property
    def share(self) -> float:
        return self.rejected / self.own if self.own else 0.0

    def acceptable(self, max_rejected_share: float) -> bool:
        """Broken export (wrong id type, date format, ...) rather than some bad rows:
        nothing kept of a day that has rows dated in it, or more than the limit rejected
        of a day large enough to judge."""
        if self.dated > 0 and self.accepted == 0:
            return False
        return self.own < SHARE_MIN_ROWS or self.share <= max_rejected_share


def _day_share(raw: pl.DataFrame, day: dt.date, outcome: ValidationOutcome,
               latest_allowed: dt.datetime, time_zone: str) -> DayShare:
    """Rows dated after the run's now (plus the tolerance) are left out as well: at the
    00:05 tick, or when a pinned tick is re-executed later, the rest of the day has not
    happened yet as of the run, and quarantining it as future says nothing about the
    export."""
    parsed = parse_timestamp_columns(raw.schema["occurred_at"], time_zone=time_zone)[0]
    cutoff = min(_midnight(day + dt.timedelta(days=1)), latest_allowed)
    later, undated = raw.select((parsed >= cutoff).sum().alias("later"),
                                parsed.is_null().sum().alias("undated")).row(0) \
        if raw.height else (0, 0)
    return DayShare(dated=outcome.rows_read - later - undated, undated=undated,
                    accepted=outcome.accepted.height, rejected=outcome.rejected.height - later,
                    dated_later=later)


def _write_bookkeeping(warehouse: Warehouse, chunk: list[dt.date],
                       writes: list[TableWrite]) -> None:
    """A chunk's bookkeeping tables in one transaction, refused (rolled back, not retried)
    when a text id of the chunk hashes to a key another day gives a different id."""
    with warehouse.transaction([write.scope for write in writes]) as transaction:
        for write in writes:
            transaction.replace(write)
        clashing = transaction.read_named("user_keys_clashing",
                                          {"first": chunk[0], "last": chunk[-1]})
        if clashing.height:
            error = UserKeyCollision(
                f"user keys of {chunk[0]}..{chunk[-1]} are shared with other staged days by "
                f"different source ids (a 64-bit hash collision), e.g. {clashing.rows()}; "
                "these users would be merged, so nothing of the chunk is recorded")
            raise dg.Failure(description=str(error), allow_retries=False) from error


def _known_users(source: TransactionSource, until: dt.datetime) -> pl.DataFrame | None:
    """The source's users who had signed up by `until` (user_id, signed_up_at); None when
    the source has no users table, so users are then not checked (and the metadata says
    so) rather than every row counting as unknown."""
    try:
        users = source.read_users(until, columns=("user_id", "signed_up_at"))
    except FileNotFoundError:
        return None
    return users.select("user_id", pl.col("signed_up_at").dt.convert_time_zone("UTC"))


def _users_by(users: pl.DataFrame | None, as_of_end: dt.datetime) -> pl.Series | None:
    if users is None:
        return None
    return users.filter(pl.col("signed_up_at") < as_of_end)["user_id"]


def _emptied_days(outcomes: dict[dt.date, ValidationOutcome], staging: StagingStore
                  ) -> dict[dt.date, int]:
    """Days that held staged rows and would now read none: what a header-only, truncated
    or wrongly filtered export looks like, rather than a day on which nothing happened."""
    emptied = {}
    for day, outcome in outcomes.items():
        if outcome.rows_read == 0:
            before = staging.rows_of_day(day) or 0
            if before:
                emptied[day] = before
    return emptied


def _refuse_emptying(emptied: dict[dt.date, int], rejected_files: list[RejectedFile],
                     source: TransactionSource) -> dg.Failure:
    listed = ", ".join(f"{day} ({rows:,} rows staged)" for day, rows in sorted(emptied.items()))
    files = "; ".join(f"{file.path}: {file.reason}" for file in rejected_files)
    return dg.Failure(
        description=(
            f"refusing to empty {len(emptied)} staged day(s): {listed}. The source "
            f"({source.display_url}) now returns no row for them"
            + (f", and these files were refused: {files}" if files else "")
            + ". A header-only or truncated export looks like this. Nothing of these days "
            "was changed. If the days really are empty now, set "
            "MARKETING_ALLOW_EMPTYING_DAYS=1 and re-run."),
        metadata={"emptied_days": [str(day) for day in sorted(emptied)]},
        allow_retries=False,
    )


def _read_chunk(source: TransactionSource, read: DayRead, time_zone: str):
    """The source rows of a chunk; a source whose shape is wrong fails without retries
    (retrying a missing column or folder cannot help)."""
    try:
        return source.read_transactions(read, time_zone)
    except (SourceDataError, FileNotFoundError) as error:
        raise dg.Failure(description=f"cannot read transactions: {error}",
                         allow_retries=False) from error


def _rejected_file_rows(chunk: list[dt.date], files: list[RejectedFile]) -> pl.DataFrame:
    return pl.DataFrame(
        [{"as_of_date": day, "source_file": file.path, "reason_code": file.reason_code,
          "reason": file.reason} for day in chunk for file in files],
        schema={"as_of_date": pl.Date, "source_file": pl.String, "reason_code": pl.String,
                "reason": pl.String})


def build_ingest_assets(first_partition_date: dt.date, partitions: dg.PartitionsDefinition,
                        future_tolerance: dt.timedelta, max_rejected_share: float, *,
                        policy: IngestPolicy | None = None, allow_emptying_days: bool = False
                        ) -> dg.AssetsDefinition:
    """One step, four assets: `valid_transactions` (the staged days, with their text-id
    dictionary `user_keys`), `rejected_transactions`, and the bookkeeping tables
    `staged_partitions` and `rejected_files`, all committed together per chunk."""
    policy = policy or IngestPolicy()

    @dg.multi_asset(
        specs=[
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
        ],
        check_specs=[
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
        ],
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
        now = run_now(context)
        warehouse.ensure_schema()
        totals = IngestTotals()
        days = partition_days(context)
        reporter = PartitionReporter(context)
        outcomes: dict[dt.date, ValidationOutcome] = {}
        shares: dict[dt.date, DayShare] = {}
        files_by_day: dict[dt.date, list[RejectedFile]] = {}
        users_checked = True
        for chunk in _chunks(days, DAYS_PER_CHUNK):
            end = _midnight(chunk[-1] + dt.timedelta(days=1))
            read = DayRead(_midnight(chunk[0]), end, include_later=end > now,
                           include_undated=chunk[0] == first_partition_date)
            rows = _read_chunk(source, read, policy.source_time_zone)
            users = _known_users(source, min(end, now))
            chunk_outcomes: dict[dt.date, ValidationOutcome] = {}
            for day, raw in split_by_day(rows.frame, chunk[0], chunk[-1],
                                         policy.source_time_zone).items():
                as_of_end = min(_midnight(day + dt.timedelta(days=1)), now)
                chunk_outcomes[day] = validate_transactions(
                    raw, latest_allowed=now + future_tolerance, policy=policy,
                    known_users=_users_by(users, as_of_end))
                shares[day] = _day_share(raw, day, chunk_outcomes[day], now + future_tolerance,
                                         policy.source_time_zone)
            emptied = _emptied_days(chunk_outcomes, staging)
            if emptied and not allow_emptying_days:
                raise _refuse_emptying(emptied, rows.rejected_files, source)
            rejected, summaries, keys = [], [], []
            for day, outcome in chunk_outcomes.items():
                staged = staging.write_day(day, outcome.accepted)
                keys.append(outcome.user_keys.select(pl.lit(day).alias("as_of_date"),
                                                     "user_id", "source_user_id"))
                rejected.append(outcome.rejected.with_columns(pl.lit(day).alias("as_of_date")))
                summaries.append(_summary_row(day, outcome, staged, len(rows.rejected_files)))
                totals.add(outcome)
                outcomes[day] = outcome
            totals.rejected_files.update({file.path: file for file in rows.rejected_files})
            files_by_day.update({day: rows.rejected_files for day in chunk})
            users_checked = users is not None
            # the chunk's bookkeeping in one transaction; the staged files above carry
            # tokens, so a kill before this commit leaves days that `inputs_complete` sees
            # as not staged (file and bookkeeping disagree), never half a day's bookkeeping
            _write_bookkeeping(warehouse, chunk, [
                TableWrite.partition_range("rejected_transactions", pl.concat(rejected),
                                           chunk[0], chunk[-1]),
                TableWrite.partition_range("rejected_files",
                                           _rejected_file_rows(chunk, rows.rejected_files),
                                           chunk[0], chunk[-1]),
                TableWrite.partition_range("staged_partitions", pl.DataFrame(summaries),
                                           chunk[0], chunk[-1]),
                TableWrite.partition_range("user_keys", pl.concat(keys), chunk[0], chunk[-1]),
            ])
            context.log.info(f"ingested {chunk[0]}..{chunk[-1]}: {totals.read:,} rows so far, "
                             f"{totals.rejected:,} rejected, "
                             f"{len(totals.rejected_files)} file(s) refused")
        stored = _stored_counts(warehouse, staging, days)
        for day in days:
            outcome = outcomes[day]
            counts = {"rows_read": outcome.rows_read, "rows_accepted": outcome.accepted.height,
                      "rows_rejected": outcome.rejected.height}
            reasons = _top_reasons(outcome)
            reporter.check("valid_transactions", "rows_reconcile", day,
                           passed=_reconciles(stored[day]),
                           evidence={**counts, **{f"stored/{key}": value
                                                  for key, value in stored[day].items()}})
            share = shares[day]
            acceptable = share.acceptable(max_rejected_share)
            reporter.check("valid_transactions", "rejections_below_limit", day,
                           passed=acceptable,
                           evidence={**counts, "rows_dated_later": share.dated_later,
                                     "rows_undated": share.undated,
                                     "rejected_share": round(share.share, 4),
                                     "limit": max_rejected_share, "top_reasons": reasons},
                           description=None if acceptable else
                           f"{day}: {share.rejected:,} of {share.own:,} rows of the day "
                           f"rejected ({share.share:.0%}, limit {max_rejected_share:.0%}); "
                           f"top reasons: {reasons}")
            files = files_by_day[day]
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
                "users_checked": users_checked, "path": str(staging.path_for(day))})
            reporter.metadata("rejected_transactions", day, {
                "rows_rejected": outcome.rejected.height, "top_reasons": reasons})
        reason_table = "\n".join(
            f"| {code} | {count} |" for code, count in sorted(totals.reasons.items()))
        yield dg.MaterializeResult(
            asset_key="valid_transactions",
            metadata={
                "staging_dir": dg.MetadataValue.path(staging.base_dir),
                "as_of_now": now.isoformat(),
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
        yield from reporter.finish()

    return ingest_transactions
