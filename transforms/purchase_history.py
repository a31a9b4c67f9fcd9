"""The purchase-history chain's file: per user, what all history says, kept up to date day
by day (assets/purchase_history.py writes it, day D = day D-1 extended by staged day D).

Besides the first and last purchase the profiles need (`PURCHASE_HISTORY_SCHEMA` in
transforms/profiles.py), the file carries the sufficient statistics of the customer-value
models (transforms/customer_value.py): the number of distinct days with a purchase, the
first and last of those days, and the amounts of the first day and of all days. From them
`repeat_purchase_summary` gives each user's frequency, recency, T and average repeat order
value exactly as a rescan of every staged day would, without reading any day again.

A "purchase" in those models is a day with at least one purchase (the convention of
Fader, Hardie & Lee and of lifetimes), and a day is a partition day, so in the source's time
zone (transforms/ingest_policy.py). The counts add up only because each day is added once:
the chain extends day D-1's file, which holds nothing of day D (its `as_of_end` is D's
start once D-1 is closed, and the chain's lineage, assets/completeness.py, refuses any
other file).
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from transforms.profiles import PURCHASE_HISTORY_SCHEMA

HISTORY_FORMAT = "2"  # 1: first/last purchase only (before the customer-value columns)
PURCHASE_HISTORY_FILE_SCHEMA: dict[str, pl.DataType] = {
    **PURCHASE_HISTORY_SCHEMA,
    "first_purchase_day": pl.Date(),
    "last_purchase_day": pl.Date(),
    "purchase_days": pl.Int32(),
    "first_day_cents": pl.Int64(),
    "total_cents": pl.Int64(),
}
REPEAT_SUMMARY_SCHEMA: dict[str, pl.DataType] = {
    "user_id": pl.Int64(),
    "frequency": pl.Int64(),
    "recency": pl.Float64(),
    "T": pl.Float64(),
    "monetary_value": pl.Float64(),
}


def summarize_purchase_day(transactions: pl.LazyFrame, day: dt.date, *,
                           before: dt.datetime) -> pl.LazyFrame:
    """Per user with a purchase on staged day `day` before `before`: the day's first and
    last purchase and its total, as a one-day history (refunds and zero rows excluded)."""
    return (
        transactions.filter((pl.col("amount_cents") > 0) & (pl.col("occurred_at") < before))
        .group_by("user_id")
        .agg(
            first_purchase_at=pl.col("occurred_at").min(),
            last_purchase_at=pl.col("occurred_at").max(),
            first_day_cents=pl.col("amount_cents").sum(),
        )
        .with_columns(
            first_purchase_day=pl.lit(day, pl.Date()),
            last_purchase_day=pl.lit(day, pl.Date()),
            purchase_days=pl.lit(1, pl.Int32()),
            total_cents=pl.col("first_day_cents"),
        )
        .select(list(PURCHASE_HISTORY_FILE_SCHEMA))
        .cast(PURCHASE_HISTORY_FILE_SCHEMA)  # type: ignore[arg-type]
    )


def extend_purchase_history(previous: pl.LazyFrame, day: pl.LazyFrame) -> pl.LazyFrame:
    """`previous` (all days before) plus one later day's summary: first values from the
    earlier side when it has the user, counts and totals added."""
    earlier = previous.select(list(PURCHASE_HISTORY_FILE_SCHEMA)).cast(
        PURCHASE_HISTORY_FILE_SCHEMA)  # type: ignore[arg-type]
    joined = earlier.join(day, on="user_id", how="full", coalesce=True, suffix="_day")
    known = pl.col("purchase_days").is_not_null()
    bought = pl.col("purchase_days_day").is_not_null()
    return joined.select(
        "user_id",
        first_purchase_at=pl.when(known).then("first_purchase_at")
        .otherwise("first_purchase_at_day"),
        last_purchase_at=pl.when(bought).then("last_purchase_at_day")
        .otherwise("last_purchase_at"),
        first_purchase_day=pl.when(known).then("first_purchase_day")
        .otherwise("first_purchase_day_day"),
        last_purchase_day=pl.when(bought).then("last_purchase_day_day")
        .otherwise("last_purchase_day"),
        purchase_days=pl.col("purchase_days").fill_null(0)
        + pl.col("purchase_days_day").fill_null(0),
        first_day_cents=pl.when(known).then("first_day_cents")
        .otherwise("first_day_cents_day"),
        total_cents=pl.col("total_cents").fill_null(0) + pl.col("total_cents_day").fill_null(0),
    ).cast(PURCHASE_HISTORY_FILE_SCHEMA)  # type: ignore[arg-type]


def repeat_purchase_summary(history: pl.LazyFrame | pl.DataFrame, as_of_day: dt.date
                            ) -> pl.DataFrame:
    """The customer-value models' inputs, in days: frequency = repeat purchase days,
    recency = last minus first purchase day, T = `as_of_day` minus the first purchase day,
    monetary_value = the average amount of the repeat days (0 without repeats), in the
    currency unit. Users are those with a purchase, in user order."""
    frequency = pl.col("purchase_days").cast(pl.Int64) - 1
    days_between = (pl.col("last_purchase_day") - pl.col("first_purchase_day")).dt.total_days()
    age = (pl.lit(as_of_day, pl.Date()) - pl.col("first_purchase_day")).dt.total_days()
    repeat_cents = pl.col("total_cents") - pl.col("first_day_cents")
    return (
        history.lazy()
        .select(
            "user_id",
            frequency=frequency,
            recency=days_between.cast(pl.Float64),
            T=age.cast(pl.Float64),
            monetary_value=pl.when(frequency > 0)
            .then(repeat_cents.cast(pl.Float64) / 100.0 / frequency)
            .otherwise(0.0),
        )
        .sort("user_id")
        .collect()
        .cast(REPEAT_SUMMARY_SCHEMA)  # type: ignore[arg-type]
    )
