"""Validate raw transactions: every row is either staged or rejected with a reason.

Two steps. `coerce_transactions` turns whatever the source delivered (typed columns from a
database, text from a CSV export) into typed columns plus flags that remember *why* a
value is missing or refused (absent vs. unparseable, out of range, sub-cent, ...). Then a
`pandera.polars` schema checks the values on a collected DataFrame (so value checks really
run, not only dtypes), and its failure cases are mapped back to rows as human-readable
reasons. Rows in = accepted + rejected, always; a value that passes can be stored and
summed by every later step (amounts are bounded to the warehouse's NUMERIC(14,2)).

Rows that are accepted after a policy decision (a naive timestamp read in the source zone,
a converted currency, ...) are counted in `ValidationOutcome.notes`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING

import polars as pl

from transforms.amounts import convert_cents, with_parsed_cents
from transforms.columns import (
    STAGED_TRANSACTION_SCHEMA,
    TRANSACTION_OPTIONAL_COLUMNS,
    TRANSACTION_REQUIRED_COLUMNS,
)
from transforms.ingest_policy import MAX_ABS_AMOUNT_CENTS, IngestPolicy
from transforms.timestamps import parse_timestamp_columns
from transforms.user_keys import NEGATIVE_INTEGER, USER_KEY_SCHEMA, refuse_collisions, user_keys

if TYPE_CHECKING:
    import pandera.polars as pa

ROW = "source_row"
FILE = "source_file"
# Provenance columns a source may attach to raw rows (file name, 1-based row in the file).
SOURCE_FILE_COLUMN = "_source_file"
SOURCE_ROW_COLUMN = "_source_row"

# Reason codes, in the order a row's *primary* reason is chosen when it has several.
REASONS: dict[str, str] = {
    "missing_transaction_id": "transaction_id is missing",
    "missing_user_id": "user_id is missing",
    "negative_user_id": "user_id is negative",
    "invalid_user_id": "user_id is not a usable id (MARKETING_USER_IDS=integer takes "
                       "canonical integers only; a text id is at most 256 characters)",
    "unknown_user": "user_id is not in the source's users",
    "missing_amount": "amount is missing",
    "non_numeric_amount": "amount is not a number",
    "non_finite_amount": "amount is NaN or infinite",
    "amount_out_of_range": "amount does not fit NUMERIC(14,2) (|amount| < 10^12)",
    "sub_cent_amount": "amount has digits below the cent (MARKETING_SUB_CENT_AMOUNTS=reject)",
    "unconverted_currency": "currency is not the base currency and has no rate "
                            "(MARKETING_CURRENCY_RATES)",
    "missing_timestamp": "occurred_at is missing",
    "unparseable_timestamp": "occurred_at is not a timestamp",
    "naive_timestamp": "occurred_at has no time zone (MARKETING_NAIVE_TIMESTAMPS=reject)",
    "future_timestamp": "occurred_at is in the future",
    "duplicate_transaction_id": "transaction_id already seen earlier in this partition",
}

# Flag columns computed by `coerce_transactions`: True when the row is fine on that count.
_FLAG_REASONS = {
    "ok_negative_user_id": "negative_user_id",
    "ok_unknown_user": "unknown_user",
    "ok_amount_out_of_range": "amount_out_of_range",
    "ok_sub_cent_amount": "sub_cent_amount",
    "ok_unconverted_currency": "unconverted_currency",
    "ok_naive_timestamp": "naive_timestamp",
}

# Accepted-with-a-decision counts (`ValidationOutcome.notes`), by note code.
NOTES: dict[str, str] = {
    "date_only_timestamp": "date-only occurred_at read as the day's start in the source zone",
    "naive_timestamp_assumed": "occurred_at without offset read in the source zone",
    "rounded_amount": "sub-cent amount rounded half away from zero",
    "converted_currency": "amount converted to the base currency",
    "unknown_user": "user_id not in the source's users (flagged, kept)",
}


@dataclass(frozen=True)
class ValidationOutcome:
    """Accepted rows (staging schema) and rejected rows (with reasons), reconciled."""

    accepted: pl.DataFrame
    rejected: pl.DataFrame
    rows_read: int
    notes: dict[str, int] = field(default_factory=dict)
    # (user_id, source_user_id) of the accepted rows' text ids, one row per key
    user_keys: pl.DataFrame = field(
        default_factory=lambda: pl.DataFrame(schema=USER_KEY_SCHEMA))

    def __post_init__(self) -> None:
        if self.accepted.height + self.rejected.height != self.rows_read:
            raise AssertionError(
                f"validation lost rows: read {self.rows_read}, accepted "
                f"{self.accepted.height}, rejected {self.rejected.height}"
            )

    def reason_counts(self) -> dict[str, int]:
        """Rejected rows per primary reason code, for metadata and the demo summary."""
        if self.rejected.is_empty():
            return {}
        counts = self.rejected.group_by("reason_code").len().sort("reason_code")
        return dict(zip(counts["reason_code"], counts["len"], strict=True))


def _text(column: str) -> pl.Expr:
    return pl.col(column).cast(pl.String).str.strip_chars()


def _present_text(column: str) -> pl.Expr:
    """Empty or whitespace text is a missing value, not a category called `""`."""
    text = _text(column)
    return pl.when(text != "").then(text)


def _user_key(frame: pl.DataFrame, policy: IngestPolicy) -> pl.Series:
    """The user key of each row (transforms/user_keys.py): `7` is key 7; `007`, `+7` or a
    UUID get text keys of their own (never merged with `7`) unless the policy takes
    integers only, when they are `invalid_user_id`."""
    keys = user_keys(frame["user_id"])
    if policy.user_ids == "integer":
        keys = pl.select(pl.when(pl.lit(keys) >= 0).then(pl.lit(keys))).to_series()
    return keys.alias("_user_id")


def _negative_id(dtype: pl.DataType) -> pl.Expr:
    """A negative integer id (`-5`): its own reason, not a text id."""
    if dtype.is_numeric():
        return (pl.col("user_id") < 0).fill_null(False)
    return _text("user_id").str.contains(NEGATIVE_INTEGER).fill_null(False)


def _raw_row(frame: pl.DataFrame) -> pl.Expr:
    """The source row as JSON text (every source column, as text), for the quarantine."""
    columns = [name for name in frame.columns if name not in (SOURCE_FILE_COLUMN,
                                                              SOURCE_ROW_COLUMN)]
    return pl.struct([pl.col(name).cast(pl.String) for name in columns]).struct.json_encode()


def _currency_rates(frame: pl.DataFrame, policy: IngestPolicy) -> pl.Expr:
    """Units of base currency per unit of each row's currency; null when unknown.

    A column holds a handful of distinct codes, so each distinct raw value is normalized
    (trimmed, upper-cased) once and looked up, instead of every row being rewritten."""
    rates = {policy.base_currency: 1.0, **policy.currency_rates}
    raw = frame["currency"].cast(pl.String)
    by_raw = {}
    for value in raw.unique().to_list():
        code = (value or "").strip().upper()
        by_raw[value] = 1.0 if code == "" else rates.get(code)
    missing_rate = by_raw.pop(None, 1.0)
    return (pl.when(pl.col("currency").is_null()).then(pl.lit(missing_rate))
            .otherwise(pl.col("currency").cast(pl.String).replace_strict(
                by_raw, default=None, return_dtype=pl.Float64)))


def coerce_transactions(raw: pl.DataFrame, policy: IngestPolicy | None = None,
                        known_users: pl.Series | None = None) -> pl.DataFrame:
    """Typed columns, raw text copies for the quarantine, and parse/policy flags."""
    policy = policy or IngestPolicy()
    missing = [column for column in TRANSACTION_REQUIRED_COLUMNS if column not in raw.columns]
    if missing:
        raise ValueError(
            f"transactions source lacks required columns {missing}; "
            f"expected {list(TRANSACTION_REQUIRED_COLUMNS)} and optionally "
            f"{list(TRANSACTION_OPTIONAL_COLUMNS)}"
        )
    frame = raw.with_columns(
        pl.lit(None, dtype=pl.String).alias(column)
        for column in TRANSACTION_OPTIONAL_COLUMNS
        if column not in raw.columns
    )
    if SOURCE_ROW_COLUMN not in frame.columns:
        frame = frame.with_row_index(SOURCE_ROW_COLUMN, offset=1)
    if SOURCE_FILE_COLUMN not in frame.columns:
        frame = frame.with_columns(pl.lit(None, dtype=pl.String).alias(SOURCE_FILE_COLUMN))
    schema = frame.schema
    # every derived value is computed once, as a column, then referenced by name
    frame = with_parsed_cents(frame, "amount").with_columns(
        *parse_timestamp_columns(schema["occurred_at"], time_zone=policy.source_time_zone),
        _user_key(frame, policy),
        _negative_id(schema["user_id"]).alias("_negative_user_id"),
        _currency_rates(frame, policy).alias("_rate"),
        _text("transaction_id").alias("_transaction_id"),
        *[_text(column).alias(f"raw_{column}") for column in TRANSACTION_REQUIRED_COLUMNS],
    )
    user_id, rate, parsed_cents = pl.col("_user_id"), pl.col("_rate"), pl.col("amount_cents")
    # without a rate the row is refused as unconverted_currency; its parsed cents stay so
    # the amount itself is not also reported as broken
    frame = frame.with_columns(
        pl.when(rate.is_null()).then(parsed_cents)
        .otherwise(convert_cents(parsed_cents, rate)).alias("_cents"))
    cents = pl.col("_cents")
    known = (user_id.is_in(known_users.cast(pl.Int64).implode()) | user_id.is_null()
             if known_users is not None else pl.lit(True))
    is_naive = pl.col("occurred_at_is_naive")
    return frame.select(
        pl.col(SOURCE_ROW_COLUMN).cast(pl.Int64).alias(ROW),
        pl.col(SOURCE_FILE_COLUMN).cast(pl.String).alias(FILE),
        pl.when(pl.col("_transaction_id") != "").then(pl.col("_transaction_id"))
        .alias("transaction_id"),
        user_id.alias("user_id"),
        cents.alias("amount_cents"),
        "amount_is_number",
        "amount_is_non_finite",
        "occurred_at",
        is_naive.alias("occurred_at_was_naive"),
        pl.col("occurred_at_is_date_only").alias("occurred_at_was_date_only"),
        (~pl.col("_negative_user_id")).alias("ok_negative_user_id"),
        (known | pl.lit(policy.unknown_users == "flag")).alias("ok_unknown_user"),
        (pl.col("amount_in_range")
         & (cents.abs() <= MAX_ABS_AMOUNT_CENTS).fill_null(True)).alias("ok_amount_out_of_range"),
        (~pl.col("amount_is_sub_cent") | pl.lit(policy.sub_cent_amounts == "round"))
        .alias("ok_sub_cent_amount"),
        (rate.is_not_null() | parsed_cents.is_null()).alias("ok_unconverted_currency"),
        (~is_naive | pl.lit(policy.naive_timestamps == "assume")).alias("ok_naive_timestamp"),
        pl.col("amount_is_sub_cent").alias("note_rounded_amount"),
        (rate != 1.0).fill_null(False).alias("note_converted_currency"),
        (~known).alias("note_unknown_user"),
        pl.when(rate.is_not_null()).then(pl.lit(policy.base_currency))
        .otherwise(_text("currency")).alias("currency"),
        *[_present_text(column).alias(column) for column in TRANSACTION_OPTIONAL_COLUMNS
          if column != "currency"],
        *[f"raw_{column}" for column in TRANSACTION_REQUIRED_COLUMNS],
    )


@lru_cache(maxsize=16)
def transaction_schema(latest_allowed: dt.datetime) -> pa.DataFrameSchema:
    """The contract a staged transaction meets; `latest_allowed` bounds future timestamps.

    pandera (and the pandas it loads, ~1.5 s) is imported here, on first use, not by every
    process that imports the definitions (a run worker, the CLI, `dagster dev`). Built once
    per bound (~10 ms each): a range run validates every day against the same one."""
    import pandera.polars as pa

    return pa.DataFrameSchema(
        {
            "transaction_id": pa.Column(str, nullable=False, unique=True),
            "user_id": pa.Column(pl.Int64, nullable=False),
            "amount_cents": pa.Column(pl.Int64, nullable=False),
            "occurred_at": pa.Column(
                pl.Datetime("us", "UTC"),
                nullable=False,
                checks=pa.Check(
                    lambda data: data.lazyframe.select(pl.col(data.key) <= latest_allowed),
                    name="not_in_future",
                ),
            ),
        },
        strict=False,
    )


def _reason_code(column: str, check: str) -> pl.Expr:
    """Map one pandera failure (column, check) to a reason code, using the parse flags."""
    raw_present = pl.col(f"raw_{column}").is_not_null() & (pl.col(f"raw_{column}") != "")
    if column == "transaction_id":
        if check == "field_uniqueness":
            return pl.lit("duplicate_transaction_id")
        return pl.lit("missing_transaction_id")
    if column == "user_id":
        return pl.when(raw_present).then(pl.lit("invalid_user_id")).otherwise(
            pl.lit("missing_user_id"))
    if column == "amount_cents":
        raw_amount = pl.col("raw_amount").is_not_null() & (pl.col("raw_amount") != "")
        return (
            pl.when(pl.col("amount_is_non_finite")).then(pl.lit("non_finite_amount"))
            .when(pl.col("amount_is_number")).then(pl.lit("amount_out_of_range"))
            .when(raw_amount).then(pl.lit("non_numeric_amount"))
            .otherwise(pl.lit("missing_amount"))
        )
    if column == "occurred_at":
        if check == "not_in_future":
            return pl.lit("future_timestamp")
        return pl.when(raw_present).then(pl.lit("unparseable_timestamp")).otherwise(
            pl.lit("missing_timestamp"))
    return pl.lit(f"{column}:{check}")


def _schema_errors() -> type[Exception]:
    import pandera.errors

    return pandera.errors.SchemaErrors


def _flag_failures(indexed: pl.DataFrame) -> list[pl.DataFrame]:
    """Row index -> reason for the policy flags, which `coerce_transactions` already
    evaluated (a plain filter: pandera would only re-check booleans, at a cost)."""
    return [indexed.filter(~pl.col(flag)).select(
                "_index", pl.lit(reason).alias("reason_code"))
            for flag, reason in _FLAG_REASONS.items()]


def _failures(coerced: pl.DataFrame, latest_allowed: dt.datetime) -> pl.DataFrame:
    """Row index -> reason codes from the pandera schema and the policy flags (empty when
    all rows pass)."""
    indexed = coerced.with_row_index("_index")
    flagged = _flag_failures(indexed)
    try:
        transaction_schema(latest_allowed).validate(coerced, lazy=True)
    except _schema_errors() as errors:
        cases = errors.failure_cases.filter(pl.col("index").is_not_null())
        pairs = cases.select("column", "check").unique().rows()
        parts = []
        for column, check in pairs:
            rows = cases.filter((pl.col("column") == column) & (pl.col("check") == check))
            parts.append(
                indexed.join(rows.select(pl.col("index").cast(pl.UInt32).alias("_index"))
                             .unique(), on="_index")
                .select("_index", _reason_code(column, check).alias("reason_code"))
            )
        return pl.concat(parts + flagged).unique()
    return pl.concat(flagged).unique()


def _keep_first_duplicate(coerced: pl.DataFrame, failures: pl.DataFrame) -> pl.DataFrame:
    """pandera flags every copy of a duplicated id; the first one in the day's order (the
    source's total order: timestamp, id, then file and row) is kept as valid."""
    first_copies = coerced.with_row_index("_index").filter(
        pl.col("transaction_id").is_not_null() & pl.col("transaction_id").is_first_distinct()
    ).select("_index", pl.lit("duplicate_transaction_id").alias("reason_code"))
    return failures.join(first_copies, on=["_index", "reason_code"], how="anti")


def _notes(accepted: pl.DataFrame) -> dict[str, int]:
    counts = accepted.select(
        pl.col("occurred_at_was_date_only").sum().alias("date_only_timestamp"),
        (pl.col("occurred_at_was_naive") & ~pl.col("occurred_at_was_date_only")).sum()
        .alias("naive_timestamp_assumed"),
        pl.col("note_rounded_amount").sum().alias("rounded_amount"),
        pl.col("note_converted_currency").sum().alias("converted_currency"),
        pl.col("note_unknown_user").sum().alias("unknown_user"),
    ).row(0, named=True) if accepted.height else {}
    return {code: int(count) for code, count in counts.items() if count}


def validate_transactions(raw: pl.DataFrame, *, latest_allowed: dt.datetime,
                          policy: IngestPolicy | None = None,
                          known_users: pl.Series | None = None) -> ValidationOutcome:
    """Split `raw` into staged rows and rejected rows with reasons.

    `known_users` (the source's user ids) enables the unknown-user count or quarantine;
    without it users are not checked."""
    coerced = coerce_transactions(raw, policy, known_users)
    failures = _keep_first_duplicate(coerced, _failures(coerced, latest_allowed))
    priority = {code: rank for rank, code in enumerate(REASONS)}
    reasons = (
        failures.with_columns(
            pl.col("reason_code").replace_strict(priority, default=len(priority),
                                                 return_dtype=pl.Int32).alias("rank"),
            pl.col("reason_code").replace_strict(REASONS, default=pl.col("reason_code"),
                                                 return_dtype=pl.String).alias("message"),
        )
        .sort("_index", "rank")
        .group_by("_index", maintain_order=True)
        .agg(pl.col("reason_code").first(), pl.col("message").str.join("; ").alias("reason"))
    )
    indexed = coerced.with_row_index("_index")
    kept = indexed.join(reasons, on="_index", how="anti")
    accepted = kept.select([pl.col(name).cast(dtype)
                            for name, dtype in STAGED_TRANSACTION_SCHEMA.items()])
    # the whole raw row, as JSON, only for the rows that need it (the quarantined ones)
    raw_rows = raw.with_row_index("_index").join(reasons.select("_index"), on="_index") \
        .select("_index", _raw_row(raw).alias("raw_row"))
    rejected = indexed.join(reasons, on="_index", how="inner").join(
        raw_rows, on="_index", how="left").sort("_index").select(
        FILE, ROW,
        *[pl.col(f"raw_{column}").alias(column) for column in TRANSACTION_REQUIRED_COLUMNS],
        "raw_row", "reason_code", "reason",
    )
    return ValidationOutcome(accepted=accepted, rejected=rejected, rows_read=raw.height,
                             notes=_notes(kept), user_keys=_text_keys(kept))


def _text_keys(kept: pl.DataFrame) -> pl.DataFrame:
    """The dictionary entries of the day's text ids (negative keys), collision-checked."""
    entries = kept.filter(pl.col("user_id") < 0).select(
        "user_id", pl.col("raw_user_id").alias("source_user_id")).unique()
    return refuse_collisions(entries.sort("user_id", "source_user_id"))
