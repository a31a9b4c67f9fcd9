"""Polars schemas shared by every stage: the contracts between source, staging and transforms.

Money is carried as integer cents (``Int64``) inside the pipeline so sums are exact and
order-independent; it becomes ``NUMERIC(20,2)`` only in the warehouse (a single amount is bounded to
``NUMERIC(14,2)`` at ingest). Timestamps are UTC,
microsecond precision. User ids are integers (``Int64``): grouping 10M rows by an integer
key is several times faster than by a string key, and every source we know uses integer ids.
"""

from __future__ import annotations

import polars as pl

UTC_DATETIME = pl.Datetime("us", "UTC")
# Money computed by the pipeline (sums, averages, budgets): NUMERIC(20,2) holds any Int64
# count of cents, so no sum of validated amounts (each within NUMERIC(14,2)) can overflow.
MONEY = pl.Decimal(20, 2)

# A validated, staged transaction (one daily Parquet file per partition).
STAGED_TRANSACTION_SCHEMA: dict[str, pl.DataType] = {
    "transaction_id": pl.String(),
    "user_id": pl.Int64(),
    "amount_cents": pl.Int64(),
    "occurred_at": UTC_DATETIME,
    "currency": pl.String(),
    "category": pl.String(),
    "merchant_id": pl.String(),
    "location_id": pl.String(),
}

# Users as read from the source (``marketing_opt_in`` defaults to False when absent).
USER_SCHEMA: dict[str, pl.DataType] = {
    "user_id": pl.Int64(),
    "signed_up_at": UTC_DATETIME,
    "marketing_opt_in": pl.Boolean(),
    "email": pl.String(),
}

CAMPAIGN_EVENT_TYPES = ("delivered", "opened", "clicked", "converted")

# Campaign events from the notification service (revenue in cents, only on conversions).
CAMPAIGN_EVENT_SCHEMA: dict[str, pl.DataType] = {
    "event_id": pl.String(),
    "campaign_id": pl.String(),
    "user_id": pl.Int64(),
    "event_type": pl.String(),
    "occurred_at": UTC_DATETIME,
    "revenue_cents": pl.Int64(),
}

TRANSACTION_REQUIRED_COLUMNS = ("transaction_id", "user_id", "amount", "occurred_at")
TRANSACTION_OPTIONAL_COLUMNS = ("currency", "category", "merchant_id", "location_id")
