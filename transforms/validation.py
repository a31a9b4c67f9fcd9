"""Validate raw transactions: every row is either staged or rejected with a reason.

Two steps. `coerce_transactions` turns whatever the source delivered (typed columns from a
database, text from a CSV export) into typed columns plus flags that remember *why* a
value is missing (absent vs. unparseable). Then a `pandera.polars` schema checks the
values on a collected DataFrame (so value checks really run, not only dtypes), and its
failure cases are mapped back to rows as human-readable reasons. Rows in = accepted +
rejected, always.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pandera.polars as pa
import polars as pl

from transforms.columns import (
    STAGED_TRANSACTION_SCHEMA,
    TRANSACTION_OPTIONAL_COLUMNS,
    TRANSACTION_REQUIRED_COLUMNS,
)
from transforms.timestamps import parse_timestamp_columns

ROW = "source_row"

# Reason codes, in the order a row's *primary* reason is chosen when it has several.
REASONS: dict[str, str] = {
    "missing_transaction_id": "transaction_id is missing",
    "missing_user_id": "user_id is missing",
    "invalid_user_id": "user_id is not an integer",
    "missing_amount": "amount is missing",
    "non_numeric_amount": "amount is not a number",
    "non_finite_amount": "amount is NaN or infinite",
    "missing_timestamp": "occurred_at is missing",
    "unparseable_timestamp": "occurred_at is not a timestamp",
    "naive_timestamp": "occurred_at has no time zone",
    "future_timestamp": "occurred_at is in the future",
    "duplicate_transaction_id": "transaction_id already seen earlier in this partition",
}


@dataclass(frozen=True)
class ValidationOutcome:
    """Accepted rows (staging schema) and rejected rows (with reasons), reconciled."""

    accepted: pl.DataFrame
    rejected: pl.DataFrame
    rows_read: int

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


def _integer(dtype: pl.DataType, column: str) -> pl.Expr:
    if dtype.is_integer():
        return pl.col(column).cast(pl.Int64)
    if dtype.is_float():
        value = pl.col(column)
        return pl.when(value == value.round(0)).then(value).cast(pl.Int64, strict=False)
    return _text(column).cast(pl.Int64, strict=False)


def _amount(dtype: pl.DataType, column: str) -> pl.Expr:
    if dtype.is_numeric() or isinstance(dtype, pl.Decimal):
        return pl.col(column).cast(pl.Float64)
    return _text(column).cast(pl.Float64, strict=False)


def coerce_transactions(raw: pl.DataFrame) -> pl.DataFrame:
    """Typed columns, raw text copies for the quarantine, and parse-failure flags."""
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
    ).with_row_index(ROW)
    schema = frame.schema
    transaction_id = _text("transaction_id")
    return frame.select(
        pl.col(ROW).cast(pl.Int64),
        pl.when(transaction_id != "").then(transaction_id).alias("transaction_id"),
        _integer(schema["user_id"], "user_id").alias("user_id"),
        _amount(schema["amount"], "amount").alias("amount"),
        *parse_timestamp_columns(schema["occurred_at"]),
        *[_text(column).alias(column) for column in TRANSACTION_OPTIONAL_COLUMNS],
        *[_text(column).alias(f"raw_{column}") for column in TRANSACTION_REQUIRED_COLUMNS],
    )


def transaction_schema(latest_allowed: dt.datetime) -> pa.DataFrameSchema:
    """The contract a staged transaction meets; `latest_allowed` bounds future timestamps."""
    return pa.DataFrameSchema(
        {
            "transaction_id": pa.Column(str, nullable=False, unique=True),
            "user_id": pa.Column(pl.Int64, nullable=False),
            "amount": pa.Column(
                pl.Float64,
                nullable=False,
                checks=pa.Check(
                    lambda data: data.lazyframe.select(pl.col(data.key).is_finite()),
                    name="finite",
                ),
            ),
            "occurred_at": pa.Column(
                pl.Datetime("us", "UTC"),
                nullable=False,
                checks=pa.Check(
                    lambda data: data.lazyframe.select(pl.col(data.key) <= latest_allowed),
                    name="not_in_future",
                ),
            ),
            "occurred_at_is_naive": pa.Column(
                bool,
                checks=pa.Check(
                    lambda data: data.lazyframe.select(~pl.col(data.key)), name="has_time_zone"
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
    if column == "amount":
        if check == "finite":
            return pl.lit("non_finite_amount")
        return (
            pl.when(pl.col("amount").is_nan()).then(pl.lit("non_finite_amount"))
            .when(raw_present).then(pl.lit("non_numeric_amount"))
            .otherwise(pl.lit("missing_amount"))
        )
    if column == "occurred_at_is_naive":
        return pl.lit("naive_timestamp")
    if column == "occurred_at":
        if check == "not_in_future":
            return pl.lit("future_timestamp")
        return pl.when(raw_present).then(pl.lit("unparseable_timestamp")).otherwise(
            pl.lit("missing_timestamp"))
    return pl.lit(f"{column}:{check}")


def _failures(coerced: pl.DataFrame, latest_allowed: dt.datetime) -> pl.DataFrame:
    """Row index -> reason codes from the pandera schema (empty when all rows pass)."""
    try:
        transaction_schema(latest_allowed).validate(coerced, lazy=True)
    except pa.errors.SchemaErrors as errors:
        cases = errors.failure_cases.filter(pl.col("index").is_not_null())
        pairs = cases.select("column", "check").unique().rows()
        indexed = coerced.with_row_index("index")
        parts = []
        for column, check in pairs:
            rows = cases.filter((pl.col("column") == column) & (pl.col("check") == check))
            parts.append(
                indexed.join(rows.select(pl.col("index").cast(pl.UInt32)).unique(), on="index")
                .select(ROW, _reason_code(column, check).alias("reason_code"))
            )
        return pl.concat(parts).unique()
    return pl.DataFrame(schema={ROW: pl.Int64, "reason_code": pl.String})


def _keep_first_duplicate(coerced: pl.DataFrame, failures: pl.DataFrame) -> pl.DataFrame:
    """pandera flags every copy of a duplicated id; the first one seen is kept as valid."""
    first_copies = coerced.filter(
        pl.col("transaction_id").is_not_null() & pl.col("transaction_id").is_first_distinct()
    ).select(ROW, pl.lit("duplicate_transaction_id").alias("reason_code"))
    return failures.join(first_copies, on=[ROW, "reason_code"], how="anti")


def validate_transactions(raw: pl.DataFrame, *, latest_allowed: dt.datetime
                          ) -> ValidationOutcome:
    """Split `raw` into staged rows and rejected rows with reasons."""
    coerced = coerce_transactions(raw)
    failures = _keep_first_duplicate(coerced, _failures(coerced, latest_allowed))
    priority = {code: rank for rank, code in enumerate(REASONS)}
    reasons = (
        failures.with_columns(
            pl.col("reason_code").replace_strict(priority, default=len(priority),
                                                 return_dtype=pl.Int32).alias("rank"),
            pl.col("reason_code").replace_strict(REASONS, default=pl.col("reason_code"),
                                                 return_dtype=pl.String).alias("message"),
        )
        .sort(ROW, "rank")
        .group_by(ROW, maintain_order=True)
        .agg(pl.col("reason_code").first(), pl.col("message").str.join("; ").alias("reason"))
    )
    accepted = (
        coerced.join(reasons, on=ROW, how="anti")
        .with_columns((pl.col("amount") * 100).round(0).cast(pl.Int64).alias("amount_cents"))
        .select([pl.col(name).cast(dtype) for name, dtype in STAGED_TRANSACTION_SCHEMA.items()])
    )
    rejected = coerced.join(reasons, on=ROW, how="inner").select(
        ROW,
        *[pl.col(f"raw_{column}").alias(column) for column in TRANSACTION_REQUIRED_COLUMNS],
        "reason_code",
        "reason",
    ).sort(ROW)
    return ValidationOutcome(accepted=accepted, rejected=rejected, rows_read=raw.height)
