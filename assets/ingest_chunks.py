"""Ingest, one chunk of days at a time: read, validate day by day, stage, book.

One source query and one bookkeeping transaction per chunk (a backfill of a year is twelve
of each), while validation still runs day by day (a duplicate id means "twice within one
day's partition", whether the day runs alone or in a backfill). `IngestRun` keeps what
the step's checks and metadata need afterwards (`assets/ingest_report.py`).
"""

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field

import dagster as dg
import polars as pl

from resources.source_files import FileRows, RejectedFile
from resources.sources import DayRead, SourceDataError, TransactionSource
from resources.staging import StagedDay, StagingStore
from resources.table_writes import TableWrite
from resources.warehouse import Warehouse
from transforms.ingest_checks import DayShare, day_share, day_start
from transforms.ingest_policy import IngestPolicy
from transforms.timestamps import split_by_day
from transforms.user_keys import UserKeyCollision
from transforms.validation import ValidationOutcome, validate_transactions


@dataclass(frozen=True)
class IngestRules:
    """The code location's ingest settings (resources/settings.py)."""

    first_partition_date: dt.date
    future_tolerance: dt.timedelta
    max_rejected_share: float
    policy: IngestPolicy
    allow_emptying_days: bool


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


@dataclass
class IngestRun:
    """What one ingest step has done so far, by day: for its checks and metadata."""

    rules: IngestRules
    now: dt.datetime
    totals: IngestTotals = field(default_factory=IngestTotals)
    outcomes: dict[dt.date, ValidationOutcome] = field(default_factory=dict)
    shares: dict[dt.date, DayShare] = field(default_factory=dict)
    files_by_day: dict[dt.date, list[RejectedFile]] = field(default_factory=dict)
    users_checked: bool = True


def chunks(days: list[dt.date], size: int) -> list[list[dt.date]]:
    return [days[index:index + size] for index in range(0, len(days), size)]


def ingest_chunk(run: IngestRun, chunk: list[dt.date], source: TransactionSource,
                 staging: StagingStore, warehouse: Warehouse) -> None:
    """Validate and stage the chunk's days, then commit their bookkeeping together."""
    rules, now = run.rules, run.now
    end = day_start(chunk[-1] + dt.timedelta(days=1))
    read = DayRead(day_start(chunk[0]), end, include_later=end > now,
                   include_undated=chunk[0] == rules.first_partition_date)
    rows = _read_chunk(source, read, rules.policy.source_time_zone)
    users = _known_users(source, min(end, now))
    outcomes = _validate_days(run, rows, chunk, users)
    emptied = _emptied_days(outcomes, staging)
    if emptied and not rules.allow_emptying_days:
        raise _refuse_emptying(emptied, rows.rejected_files, source)
    rejected, summaries, keys = [], [], []
    for day, outcome in outcomes.items():
        staged = staging.write_day(day, outcome.accepted)
        keys.append(outcome.user_keys.select(pl.lit(day).alias("as_of_date"),
                                             "user_id", "source_user_id"))
        rejected.append(outcome.rejected.with_columns(pl.lit(day).alias("as_of_date")))
        summaries.append(_summary_row(day, outcome, staged, len(rows.rejected_files)))
        run.totals.add(outcome)
        run.outcomes[day] = outcome
    run.totals.rejected_files.update({file.path: file for file in rows.rejected_files})
    run.files_by_day.update({day: rows.rejected_files for day in chunk})
    run.users_checked = users is not None
    # the chunk's bookkeeping in one transaction; the staged files above carry tokens, so a
    # kill before this commit leaves days that `inputs_complete` sees as not staged (file
    # and bookkeeping disagree), never half a day's bookkeeping
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


def _validate_days(run: IngestRun, rows: FileRows, chunk: list[dt.date],
                   users: pl.DataFrame | None) -> dict[dt.date, ValidationOutcome]:
    """Each day of the chunk validated on its own, with the rows' share for its check."""
    policy, now = run.rules.policy, run.now
    latest_allowed = now + run.rules.future_tolerance
    outcomes: dict[dt.date, ValidationOutcome] = {}
    for day, raw in split_by_day(rows.frame, chunk[0], chunk[-1],
                                 policy.source_time_zone).items():
        as_of_end = min(day_start(day + dt.timedelta(days=1)), now)
        outcomes[day] = validate_transactions(raw, latest_allowed=latest_allowed,
                                              policy=policy,
                                              known_users=_users_by(users, as_of_end))
        run.shares[day] = day_share(raw, day, outcomes[day], latest_allowed,
                                    policy.source_time_zone)
    return outcomes


def _summary_row(day: dt.date, outcome: ValidationOutcome, staged: StagedDay,
                 files_rejected: int) -> dict:
    """The day's `staged_partitions` row."""
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
        "window_start": day_start(day),
        "window_end": day_start(day + dt.timedelta(days=1)),
        "stage_token": staged.token,
        "rows_date_only": notes.get("date_only_timestamp", 0),
        "rows_naive_assumed": notes.get("naive_timestamp_assumed", 0),
        "rows_rounded": notes.get("rounded_amount", 0),
        "rows_converted": notes.get("converted_currency", 0),
        "rows_unknown_user": notes.get("unknown_user", 0),
        "files_rejected": files_rejected,
    }


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


def _read_chunk(source: TransactionSource, read: DayRead, time_zone: str) -> FileRows:
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
