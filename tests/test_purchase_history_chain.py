"""The purchase-history chain's customer-value columns (transforms/purchase_history.py):
extended one day at a time, they give what a count over every purchase gives."""

from __future__ import annotations

import datetime as dt
import random
from collections import defaultdict

import polars as pl
import pytest

from transforms.purchase_history import (
    PURCHASE_HISTORY_FILE_SCHEMA,
    REPEAT_SUMMARY_SCHEMA,
    extend_purchase_history,
    repeat_purchase_summary,
    summarize_purchase_day,
)

START = dt.date(2026, 3, 1)
DAYS = 12


def _transactions(seed: int) -> pl.DataFrame:
    rng = random.Random(seed)
    rows = []
    for offset in range(DAYS):
        day = START + dt.timedelta(days=offset)
        for user in range(1, 40):
            for _ in range(rng.choice([0, 0, 0, 1, 1, 2, 3])):
                at = dt.datetime.combine(day, dt.time(rng.randrange(24), rng.randrange(60)),
                                         tzinfo=dt.UTC)
                cents = rng.choice([-500, 0, 199, 1250, 4999, 10_000])  # refunds and zeros too
                rows.append({"user_id": user, "occurred_at": at, "amount_cents": cents})
    return pl.DataFrame(rows, schema={"user_id": pl.Int64, "occurred_at": pl.Datetime("us", "UTC"),
                                      "amount_cents": pl.Int64})


def _chain(transactions: pl.DataFrame, last: dt.date) -> pl.DataFrame:
    history = pl.LazyFrame(schema=PURCHASE_HISTORY_FILE_SCHEMA)
    day = START
    while day <= last:
        end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
        rows = transactions.lazy().filter(pl.col("occurred_at").dt.date() == day)
        history = extend_purchase_history(history, summarize_purchase_day(rows, day,
                                                                           before=end))
        history = history.collect().lazy()  # as the asset does: one file per day
        day += dt.timedelta(days=1)
    return history.collect()


def _by_hand(transactions: pl.DataFrame, as_of: dt.date) -> pl.DataFrame:
    """The definitions, counted in plain Python: a purchase is a day with a positive
    amount; frequency = such days - 1; recency and T in days from the first such day;
    monetary value = mean amount of the days after the first."""
    per_day: dict[int, dict[dt.date, int]] = defaultdict(lambda: defaultdict(int))
    for row in transactions.iter_rows(named=True):
        if row["amount_cents"] > 0 and row["occurred_at"].date() <= as_of:
            per_day[row["user_id"]][row["occurred_at"].date()] += row["amount_cents"]
    rows = []
    for user in sorted(per_day):
        days = sorted(per_day[user])
        repeats = [per_day[user][day] / 100 for day in days[1:]]
        rows.append({"user_id": user, "frequency": len(days) - 1,
                     "recency": float((days[-1] - days[0]).days),
                     "T": float((as_of - days[0]).days),
                     "monetary_value": sum(repeats) / len(repeats) if repeats else 0.0})
    return pl.DataFrame(rows, schema=REPEAT_SUMMARY_SCHEMA)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_chain_counts_what_all_purchases_say(seed: int) -> None:
    transactions = _transactions(seed)
    for last in (START + dt.timedelta(days=4), START + dt.timedelta(days=DAYS - 1)):
        chain = _chain(transactions, last)
        summary = repeat_purchase_summary(chain, last)
        expected = _by_hand(transactions, last)
        assert summary.height == expected.height > 20
        assert summary.select("user_id", "frequency").equals(
            expected.select("user_id", "frequency"))
        for column in ("recency", "T", "monetary_value"):
            assert (summary[column] - expected[column]).abs().max() < 1e-9, column
        assert (summary["frequency"] > 0).sum() > 5  # repeat buyers are really tested


def test_first_and_last_purchase_stay_what_the_profiles_read() -> None:
    transactions = _transactions(7)
    last = START + dt.timedelta(days=DAYS - 1)
    chain = _chain(transactions, last).sort("user_id")
    purchases = transactions.filter(pl.col("amount_cents") > 0)
    expected = purchases.group_by("user_id").agg(
        first_purchase_at=pl.col("occurred_at").min(),
        last_purchase_at=pl.col("occurred_at").max()).sort("user_id")
    assert chain.select(expected.columns).equals(expected)
