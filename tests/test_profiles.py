"""compute_profiles on hand-made users, one rule at a time, just above and just below.

Every expected value is derived here from the rule in DESIGN.md / docs/patterns.md (counts,
cents, fractions written out), never copied from the code's output.

The fixed world: as_of_end is Monday 2024-06-03 00:00 UTC, so the 90-day window is
[2024-03-05, 2024-06-03) and its buckets are [03-05, 04-04), [04-04, 05-04), [05-04, 06-03).
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import psycopg
import pytest
from pydantic import ValidationError

from devkit.databases import throwaway_database
from resources.settings import PipelineSettings
from transforms.columns import STAGED_TRANSACTION_SCHEMA
from transforms.profiles import (
    PROFILE_SCHEMA,
    PURCHASE_HISTORY_SCHEMA,
    compute_profiles,
    default_as_of_date,
    merge_purchase_history,
    summarize_purchase_history,
)
from transforms.segments import SEGMENT_SCHEMA, compute_segment_overlap, compute_segments
from transforms.thresholds import PATTERNS, PatternThresholds

END = datetime(2024, 6, 3, tzinfo=UTC)  # a Monday, 00:00 UTC
START = END - timedelta(days=90)
DAY = timedelta(days=1)
US = timedelta(microseconds=1)
DEFAULT = PatternThresholds()


# --------------------------------------------------------------------------- helpers


def tx(
    user: int,
    cents: int,
    at: datetime,
    category: str | None = None,
    location: str | None = None,
) -> dict[str, Any]:
    """One staged transaction row."""
    return {
        "transaction_id": None,
        "user_id": user,
        "amount_cents": cents,
        "occurred_at": at,
        "currency": "USD",
        "category": category,
        "merchant_id": None,
        "location_id": location,
    }


def frame(rows: list[dict[str, Any]]) -> pl.LazyFrame:
    """Rows as a LazyFrame with exactly STAGED_TRANSACTION_SCHEMA (ids filled in)."""
    numbered = [{**row, "transaction_id": f"t{i}"} for i, row in enumerate(rows)]
    return pl.DataFrame(numbered, schema=STAGED_TRANSACTION_SCHEMA, orient="row").lazy()


def profiles(
    rows: list[dict[str, Any]],
    thresholds: PatternThresholds = DEFAULT,
    end: datetime = END,
    history: pl.LazyFrame | None = None,
) -> pl.DataFrame:
    return compute_profiles(frame(rows), as_of_end=end, thresholds=thresholds, history=history)


def by_user(result: pl.DataFrame) -> dict[int, dict[str, Any]]:
    return {row["user_id"]: row for row in result.iter_rows(named=True)}


def one(rows: list[dict[str, Any]], user: int = 1, **kwargs: Any) -> dict[str, Any]:
    return by_user(profiles(rows, **kwargs))[user]


def evidence(row: dict[str, Any]) -> dict[str, Any]:
    return json.loads(row["pattern_evidence"])


def weekday_at(day_offset: int, hour: int = 12) -> datetime:
    """A moment ``day_offset`` days before END (END is a Monday)."""
    return END - timedelta(days=day_offset) + timedelta(hours=hour)


# Days before END falling on a weekday / weekend (END - 1 day is Sunday).
WEEKEND_OFFSETS = [1, 2, 8, 9, 15, 16, 22, 23, 29, 30, 36, 37, 43, 44, 50, 51, 57, 58]
WEEKDAY_OFFSETS = [3, 4, 5, 6, 7, 10, 11, 12, 13, 14, 17, 18, 19, 20, 21, 24, 25, 26]


# --------------------------------------------------------------------------- schema, edges


def test_schema_is_the_warehouse_contract() -> None:
    result = profiles([tx(1, 500, weekday_at(3))])
    assert result.schema == pl.Schema(PROFILE_SCHEMA)
    assert list(result.columns) == list(PROFILE_SCHEMA)


def test_partition_with_no_transactions_is_empty_with_schema() -> None:
    result = profiles([])
    assert result.height == 0
    assert result.schema == pl.Schema(PROFILE_SCHEMA)


def test_partition_with_only_refunds_and_zero_rows_is_empty() -> None:
    result = profiles([tx(1, -500, weekday_at(3)), tx(2, 0, weekday_at(4))])
    assert result.height == 0
    assert result.schema == pl.Schema(PROFILE_SCHEMA)


def test_user_with_only_refunds_has_no_profile() -> None:
    result = by_user(profiles([tx(1, 700, weekday_at(3)), tx(2, -300, weekday_at(3))]))
    assert set(result) == {1}


def test_user_with_purchases_only_before_window_appears_with_zeros_and_inactive() -> None:
    before = START - 5 * DAY
    row = one([tx(1, 1000, before, "food", "x"), tx(1, -200, weekday_at(10))])
    assert row["transaction_count"] == 0
    assert row["total_spent"] == pytest.approx(0)
    assert str(row["total_spent"]) == "0.00"
    assert row["weekend_share"] is None
    assert row["top_category"] is None and row["top_category_share"] is None
    assert row["distinct_locations"] == 0
    assert row["seasonal_ratio"] is None
    assert row["first_purchase_at"] == before == row["last_purchase_at"]
    assert row["observed_weeks"] == 90 / 7  # window start, not the first purchase
    assert row["purchases_per_week"] == 0.0
    assert row["days_since_last_purchase"] == 95.0
    # the refund is inside the window: reported, but never a purchase
    assert row["refund_count"] == 1 and str(row["refund_amount"]) == "2.00"
    assert str(row["net_spend"]) == "-2.00"
    assert row["detected_patterns"] == ["inactive"]


def test_window_is_half_open_and_sunday_midnight_is_weekend() -> None:
    sunday_last_second = END - timedelta(seconds=1)  # Sunday 23:59:59 UTC
    monday_midnight = END  # Monday 00:00:00: at as_of_end, outside the window
    rows = [
        tx(1, 100, START),  # first instant of the window: inside (Tuesday 00:00)
        tx(1, 200, START - US),  # last microsecond before: outside the window
        tx(1, 400, sunday_last_second),
        tx(1, 800, monday_midnight),
    ]
    row = one(rows)
    assert row["transaction_count"] == 2  # START and Sunday 23:59:59
    assert str(row["total_spent"]) == "5.00"
    assert row["weekend_share"] == 1 / 2
    assert row["first_purchase_at"] == START - US  # before the window still counts as ever
    assert row["last_purchase_at"] == sunday_last_second  # Monday 00:00 is not before END


def test_next_monday_midnight_is_not_weekend() -> None:
    end = END + 7 * DAY
    row = one([tx(1, 100, END), tx(1, 100, END - US)], end=end)
    # END (Monday 00:00) is a weekday; END - 1us is Sunday 23:59:59.999999
    assert row["transaction_count"] == 2
    assert row["weekend_share"] == 1 / 2


def test_naive_as_of_end_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        compute_profiles(frame([]), as_of_end=datetime(2024, 6, 3), thresholds=DEFAULT)


def test_default_as_of_date_is_the_day_of_the_last_microsecond() -> None:
    assert default_as_of_date(END) == date(2024, 6, 2)
    assert default_as_of_date(END + timedelta(hours=14)) == date(2024, 6, 3)
    assert profiles([tx(1, 1, weekday_at(3))])["as_of_date"].to_list() == [date(2024, 6, 2)]


def test_explicit_as_of_date_and_as_of_end_are_written() -> None:
    end = END + timedelta(hours=14, minutes=5)
    result = compute_profiles(
        frame([tx(1, 1, weekday_at(3))]),
        as_of_end=end,
        thresholds=DEFAULT,
        as_of_date=date(2024, 6, 3),
    )
    assert result["as_of_date"].to_list() == [date(2024, 6, 3)]
    assert result["as_of_end"].to_list() == [end]


def test_hourly_as_of_end_moves_the_window_edges() -> None:
    end = END + timedelta(hours=14)
    start = end - timedelta(days=90)
    rows = [tx(1, 100, start - US), tx(1, 300, start), tx(1, 500, end - US), tx(1, 700, end)]
    row = one(rows, end=end)
    assert row["transaction_count"] == 2
    assert str(row["spend_bucket_1"]) == "3.00" and str(row["spend_bucket_3"]) == "5.00"


def test_refunds_and_zero_rows_are_reported_never_counted() -> None:
    rows = [
        tx(1, 1000, weekday_at(3), "a", "x"),
        tx(1, -250, weekday_at(4), "b", "y"),
        tx(1, -1, weekday_at(5), "b", "z"),
        tx(1, 0, weekday_at(6), "c", "w"),
        tx(1, 0, weekday_at(7)),
        tx(1, -999, START - DAY),  # before the window: not in the window's refund figures
    ]
    row = one(rows)
    assert row["transaction_count"] == 1
    assert str(row["total_spent"]) == "10.00"
    assert row["refund_count"] == 2
    assert str(row["refund_amount"]) == "2.51"
    assert row["zero_amount_count"] == 2
    assert str(row["net_spend"]) == "7.49"
    assert row["distinct_locations"] == 1  # refund/zero locations do not count
    assert row["top_category"] == "a" and row["top_category_share"] == 1.0


def test_money_is_exact_decimal_cents() -> None:
    # 0.1 + 0.2 in floats is 0.30000000000000004; in cents it is 30.
    row = one([tx(1, 10, weekday_at(3)), tx(1, 20, weekday_at(4))])
    assert str(row["total_spent"]) == "0.30"


def test_rows_order_does_not_change_the_result() -> None:
    rows = [
        tx(user, cents, weekday_at(offset), category, location)
        for user in range(1, 6)
        for cents, offset, category, location in [
            (150 * user, 3, "b", "x"),
            (150 * user, 4, "a", "y"),
            (90, 9, "c", None),
            (-40, 10, "a", "z"),
        ]
    ]
    expected = profiles(rows)
    assert expected["user_id"].to_list() == [1, 2, 3, 4, 5]  # sorted by user_id
    for seed in range(5):
        shuffled = rows[:]
        random.Random(seed).shuffle(shuffled)
        assert profiles(shuffled).equals(expected)


# --------------------------------------------------------------------------- high_spender


def _nearest_rank_cut(spends: list[int], percentile: str) -> int:
    ordered = sorted(s for s in spends if s > 0)
    rank = math.ceil(Fraction(percentile) * len(ordered))
    return ordered[rank - 1]


def test_high_spender_nearest_rank_at_and_below_the_cut() -> None:
    spends = {1: 100, 2: 200, 3: 300, 4: 400, 5: 500}
    rows = [tx(u, c, weekday_at(3)) for u, c in spends.items()]
    rows.append(tx(6, 10_000, START - DAY))  # zero window spend: not among the n users
    cut = _nearest_rank_cut(list(spends.values()), "0.8")  # rank ceil(4.0) = 4 -> 400
    assert cut == 400
    result = by_user(profiles(rows))
    flagged = {u for u, row in result.items() if "high_spender" in row["detected_patterns"]}
    assert flagged == {u for u, c in spends.items() if c >= cut} == {4, 5}
    ev = evidence(result[4])["high_spender"]
    assert ev["value"] == 4.00 and ev["threshold"] == 4.00 and ev["percentile"] == 0.8


def test_high_spender_ties_at_the_cut_all_qualify() -> None:
    spends = {1: 100, 2: 200, 3: 300, 4: 400, 5: 400, 6: 500}
    rows = [tx(u, c, weekday_at(3)) for u, c in spends.items()]
    cut = _nearest_rank_cut(list(spends.values()), "0.8")  # rank ceil(4.8) = 5 -> 400
    result = by_user(profiles(rows))
    flagged = {u for u, row in result.items() if "high_spender" in row["detected_patterns"]}
    assert cut == 400 and flagged == {4, 5, 6}


def test_high_spender_percentile_is_read_as_its_decimal() -> None:
    # 0.7 * 10 as binary floats is 7.000000000000001, whose ceil would be 8.
    spends = {u: 100 * u for u in range(1, 11)}
    rows = [tx(u, c, weekday_at(3)) for u, c in spends.items()]
    result = by_user(profiles(rows, PatternThresholds(high_spender_percentile=0.7)))
    flagged = {u for u, row in result.items() if "high_spender" in row["detected_patterns"]}
    assert flagged == {7, 8, 9, 10}


def test_high_spender_single_user_and_percentile_one() -> None:
    assert "high_spender" in one([tx(1, 1, weekday_at(3))])["detected_patterns"]
    rows = [tx(1, 100, weekday_at(3)), tx(2, 101, weekday_at(3))]
    result = by_user(profiles(rows, PatternThresholds(high_spender_percentile=1.0)))
    assert "high_spender" not in result[1]["detected_patterns"]
    assert "high_spender" in result[2]["detected_patterns"]


# --------------------------------------------------------------------------- frequent_shopper


def _purchases(user: int, first_offset_days: int, count: int) -> list[dict[str, Any]]:
    """``count`` purchases, the first exactly ``first_offset_days`` before END."""
    first = END - timedelta(days=first_offset_days)
    return [tx(user, 100, first + timedelta(hours=i)) for i in range(count)]


def test_frequent_shopper_exactly_two_per_week_passes() -> None:
    # first purchase 70 days before END, inside the window: observed 10 weeks
    row = one(_purchases(1, 70, 20))
    assert row["observed_weeks"] == 10.0
    assert row["purchases_per_week"] == 20 / 10
    assert "frequent_shopper" in row["detected_patterns"]
    ev = evidence(row)["frequent_shopper"]
    assert ev == {"metric": "purchases_per_week", "value": 2.0, "threshold": 2.0}


def test_frequent_shopper_just_below_fails() -> None:
    row = one(_purchases(1, 70, 19))
    assert row["purchases_per_week"] == 19 / 10
    assert "frequent_shopper" not in row["detected_patterns"]


def test_frequent_shopper_observed_weeks_floor_of_one_week() -> None:
    two = one(_purchases(1, 3, 2))  # 3 days observed -> counted as 1 week
    assert two["observed_weeks"] == 1.0 and two["purchases_per_week"] == 2.0
    assert "frequent_shopper" in two["detected_patterns"]
    single = one(_purchases(1, 3, 1))
    assert "frequent_shopper" not in single["detected_patterns"]


def test_frequent_shopper_first_purchase_before_window_uses_whole_window() -> None:
    weeks = 90 / 7
    above = [*_purchases(1, 89, 26), tx(1, 100, START - 10 * DAY)]
    below = [*_purchases(1, 89, 25), tx(1, 100, START - 10 * DAY)]
    row_above, row_below = one(above), one(below)
    assert row_above["observed_weeks"] == weeks
    assert row_above["purchases_per_week"] == 26 / weeks  # 2.02 >= 2
    assert "frequent_shopper" in row_above["detected_patterns"]
    assert row_below["purchases_per_week"] == 25 / weeks  # 1.94 < 2
    assert "frequent_shopper" not in row_below["detected_patterns"]


def test_observed_weeks_is_fractional_from_first_purchase() -> None:
    first = END - timedelta(days=10, hours=12)
    row = one([tx(1, 100, first)])
    assert row["observed_weeks"] == 10.5 / 7


# --------------------------------------------------------------------------- weekend_shopper


def _weekend_user(user: int, weekend: int, weekday: int) -> list[dict[str, Any]]:
    rows = [tx(user, 100, weekday_at(WEEKEND_OFFSETS[i % 18], hour=i % 24)) for i in range(weekend)]
    rows += [
        tx(user, 100, weekday_at(WEEKDAY_OFFSETS[i % 18], hour=i % 24)) for i in range(weekday)
    ]
    return rows


def test_weekend_shopper_exactly_seventy_percent_passes() -> None:
    row = one(_weekend_user(1, 7, 3))
    assert row["weekend_share"] == 7 / 10
    assert "weekend_shopper" in row["detected_patterns"]
    ev = evidence(row)["weekend_shopper"]
    assert ev == {
        "metric": "weekend_share",
        "value": 0.7,
        "threshold": 0.7,
        "purchases": 10,
        "min_purchases": 3,
    }


def test_weekend_shopper_just_below_seventy_percent_fails() -> None:
    row = one(_weekend_user(1, 69, 31))
    assert row["weekend_share"] == 69 / 100
    assert "weekend_shopper" not in row["detected_patterns"]


def test_weekend_shopper_needs_three_purchases() -> None:
    assert "weekend_shopper" in one(_weekend_user(1, 3, 0))["detected_patterns"]
    assert "weekend_shopper" not in one(_weekend_user(1, 2, 0))["detected_patterns"]


def test_weekend_refunds_do_not_count() -> None:
    rows = [*_weekend_user(1, 2, 1), tx(1, -100, weekday_at(1)), tx(1, 0, weekday_at(2))]
    row = one(rows)
    assert row["transaction_count"] == 3 and row["weekend_share"] == 2 / 3


# --------------------------------------------------------------------------- category_focused


def test_category_fifty_fifty_split_passes_in_any_row_order() -> None:
    rows = [
        tx(1, 10, weekday_at(3), "b"),
        tx(1, 20, weekday_at(4), "a"),
        tx(1, 10, weekday_at(5), "b"),
        tx(1, 10, weekday_at(6), "a"),
        tx(1, 10, weekday_at(7), "b"),
    ]  # a: 30, b: 30, total 60 -> a tie, broken by name: "a"
    for seed in range(6):
        shuffled = rows[:]
        random.Random(seed).shuffle(shuffled)
        row = one(shuffled)
        assert row["top_category"] == "a"
        assert row["top_category_share"] == 0.5
        assert "category_focused" in row["detected_patterns"]


def test_category_just_below_half_fails() -> None:
    rows = [tx(1, 500, weekday_at(3), "a"), tx(1, 300, weekday_at(4), "b")]
    rows.append(tx(1, 201, weekday_at(5), "c"))  # a holds 500 / 1001 < 0.5
    row = one(rows)
    assert row["top_category"] == "a" and row["top_category_share"] == 500 / 1001
    assert "category_focused" not in row["detected_patterns"]


def test_category_spend_without_category_stays_in_the_denominator() -> None:
    rows = [tx(1, 150, weekday_at(3), "a"), tx(1, 151, weekday_at(4)), tx(1, 1, weekday_at(5))]
    row = one(rows)
    assert row["top_category"] == "a"
    assert row["top_category_share"] == 150 / 302
    assert "category_focused" not in row["detected_patterns"]


def test_category_needs_three_purchases() -> None:
    two = [tx(1, 100, weekday_at(3), "a"), tx(1, 100, weekday_at(4), "a")]
    assert "category_focused" not in one(two)["detected_patterns"]
    three = [*two, tx(1, 100, weekday_at(5), "a")]
    row = one(three)
    assert "category_focused" in row["detected_patterns"]
    assert evidence(row)["category_focused"] == {
        "metric": "top_category_share",
        "value": 1.0,
        "threshold": 0.5,
        "purchases": 3,
        "min_purchases": 3,
    }


def test_top_category_tie_breaks_by_spend_then_name() -> None:
    rows = [
        tx(1, 300, weekday_at(3), "zeta"),
        tx(1, 300, weekday_at(4), "alpha"),
        tx(1, 299, weekday_at(5), "aaa"),
        tx(1, 100, weekday_at(5), "zeta"),  # zeta: 400 > alpha 300
        tx(2, 300, weekday_at(3), "zeta"),
        tx(2, 300, weekday_at(4), "alpha"),
        tx(2, 300, weekday_at(5), "Beta"),  # uppercase sorts first in byte order
    ]
    result = by_user(profiles(rows))
    assert result[1]["top_category"] == "zeta"
    assert result[2]["top_category"] == "Beta"


def test_category_refunds_do_not_count_toward_share() -> None:
    rows = [
        tx(1, 100, weekday_at(3), "a"),
        tx(1, 100, weekday_at(4), "b"),
        tx(1, 100, weekday_at(5), "b"),
        tx(1, -100, weekday_at(6), "b"),
    ]
    row = one(rows)
    assert row["top_category"] == "b" and row["top_category_share"] == 200 / 300


# --------------------------------------------------------------------------- location_clustered


def _located(user: int, locations: list[str | None]) -> list[dict[str, Any]]:
    return [tx(user, 100, weekday_at(3 + i), "a", loc) for i, loc in enumerate(locations)]


def test_location_clustered_two_locations_pass_three_fail() -> None:
    two = one(_located(1, ["x", "y", "x"]))
    assert two["distinct_locations"] == 2 and "location_clustered" in two["detected_patterns"]
    assert evidence(two)["location_clustered"] == {
        "metric": "distinct_locations",
        "value": 2,
        "threshold": 2,
        "purchases": 3,
        "min_purchases": 3,
    }
    three = one(_located(1, ["x", "y", "z"]))
    assert three["distinct_locations"] == 3
    assert "location_clustered" not in three["detected_patterns"]


def test_location_clustered_single_location_and_min_purchases() -> None:
    assert "location_clustered" in one(_located(1, ["x", "x", "x"]))["detected_patterns"]
    assert "location_clustered" not in one(_located(1, ["x", "x"]))["detected_patterns"]


def test_location_unknown_on_any_purchase_is_not_clustered() -> None:
    row = one(_located(1, ["x", "x", None, "x"]))
    assert row["distinct_locations"] == 1  # known locations only
    assert "location_clustered" not in row["detected_patterns"]


def test_location_max_locations_is_configurable() -> None:
    rows = _located(1, ["x", "y", "z"])
    row = one(rows, thresholds=PatternThresholds(max_locations=3))
    assert "location_clustered" in row["detected_patterns"]


def test_locations_before_window_and_of_refunds_are_ignored() -> None:
    rows = [*_located(1, ["x", "x", "x"]), tx(1, 100, START - DAY, "a", "old")]
    rows.append(tx(1, -100, weekday_at(3), "a", "refund_place"))
    row = one(rows)
    assert row["distinct_locations"] == 1
    assert "location_clustered" in row["detected_patterns"]


# --------------------------------------------------------------------------- new / inactive


def test_new_shopper_first_purchase_exactly_thirty_days_ago_is_new() -> None:
    row = one([tx(1, 100, END - 30 * DAY)])
    assert "new_shopper" in row["detected_patterns"]
    assert evidence(row)["new_shopper"] == {
        "metric": "days_since_first_purchase",
        "value": 30.0,
        "threshold": 30,
    }


def test_new_shopper_one_microsecond_earlier_is_not_new() -> None:
    row = one([tx(1, 100, END - 30 * DAY - US), tx(1, 100, weekday_at(3))])
    assert "new_shopper" not in row["detected_patterns"]


def test_new_shopper_uses_history_before_the_window() -> None:
    history = pl.LazyFrame(
        {
            "user_id": [1],
            "first_purchase_at": [START - 50 * DAY],
            "last_purchase_at": [START - DAY],
        },
        schema=PURCHASE_HISTORY_SCHEMA,
    )
    row = one([tx(1, 100, weekday_at(3))], history=history)
    assert row["first_purchase_at"] == START - 50 * DAY
    assert "new_shopper" not in row["detected_patterns"]


def test_inactive_last_purchase_exactly_thirty_days_ago_is_still_active() -> None:
    row = one([tx(1, 100, END - 30 * DAY)])
    assert row["days_since_last_purchase"] == 30.0
    assert "inactive" not in row["detected_patterns"]


def test_inactive_one_microsecond_earlier_is_inactive() -> None:
    row = one([tx(1, 100, END - 30 * DAY - US)])
    assert "inactive" in row["detected_patterns"]
    ev = evidence(row)["inactive"]
    assert ev["metric"] == "days_since_last_purchase" and ev["threshold"] == 30
    assert ev["value"] == (30 * 86_400_000_000 + 1) / 86_400_000_000


def test_inactive_ignores_later_refunds() -> None:
    row = one([tx(1, 100, END - 40 * DAY), tx(1, -100, END - DAY)])
    assert row["last_purchase_at"] == END - 40 * DAY
    assert "inactive" in row["detected_patterns"]


# --------------------------------------------------------------------------- seasonal_spender


BUCKET_2_START = END - 60 * DAY
BUCKET_3_START = END - 30 * DAY


def _seasonal(b1: int, b2: int, b3: int) -> list[dict[str, Any]]:
    rows = []
    for cents, at in [(b1, START), (b2, BUCKET_2_START), (b3, BUCKET_3_START)]:
        if cents:
            rows.append(tx(1, cents, at))
    return rows


def test_seasonal_exactly_three_times_passes() -> None:
    row = one(_seasonal(100, 150, 300))
    assert [str(row[f"spend_bucket_{i}"]) for i in (1, 2, 3)] == ["1.00", "1.50", "3.00"]
    assert row["seasonal_ratio"] == 300 / 100
    assert "seasonal_spender" in row["detected_patterns"]
    assert evidence(row)["seasonal_spender"] == {
        "metric": "seasonal_ratio",
        "value": 3.0,
        "threshold": 3.0,
    }


def test_seasonal_just_below_three_fails() -> None:
    row = one(_seasonal(100, 150, 299))
    assert row["seasonal_ratio"] == 299 / 100
    assert "seasonal_spender" not in row["detected_patterns"]


def test_seasonal_empty_bucket_means_no_ratio() -> None:
    row = one(_seasonal(100, 0, 900))
    assert row["seasonal_ratio"] is None
    assert "seasonal_spender" not in row["detected_patterns"]


def test_bucket_edges_belong_to_the_later_bucket() -> None:
    rows = [
        tx(1, 1, BUCKET_2_START - US),
        tx(1, 10, BUCKET_2_START),
        tx(1, 100, BUCKET_3_START - US),
        tx(1, 1000, BUCKET_3_START),
        tx(1, 10000, END - US),
    ]
    row = one(rows)
    assert [str(row[f"spend_bucket_{i}"]) for i in (1, 2, 3)] == ["0.01", "1.10", "110.00"]


def test_seasonal_refunds_do_not_fill_a_bucket() -> None:
    rows = [*_seasonal(100, 0, 300), tx(1, -50, BUCKET_2_START)]
    assert one(rows)["seasonal_ratio"] is None


# --------------------------------------------------------------------------- missing columns


def test_missing_category_and_location_columns_still_profile() -> None:
    rows = _located(1, ["x", "x", "x"])
    lazy = frame(rows).drop("category", "location_id", "merchant_id")
    row = compute_profiles(lazy, as_of_end=END, thresholds=DEFAULT).row(0, named=True)
    assert row["transaction_count"] == 3
    assert row["top_category"] is None and row["top_category_share"] is None
    assert row["distinct_locations"] == 0
    assert "category_focused" not in row["detected_patterns"]
    assert "location_clustered" not in row["detected_patterns"]


def test_all_null_category_and_location_columns_assign_neither_pattern() -> None:
    rows = [tx(1, 100, weekday_at(3 + i)) for i in range(5)]
    row = one(rows)
    assert row["top_category"] is None and row["distinct_locations"] == 0
    assert not {"category_focused", "location_clustered"} & set(row["detected_patterns"])


# --------------------------------------------------------------------------- RFM


def _quintile(values: list[Any], value: Any) -> int:
    rank = 1 + sum(v < value for v in values)  # min rank, ascending
    return 1 + (5 * (rank - 1)) // len(values)


def test_rfm_quintiles_with_ties_and_recency_reversed() -> None:
    # ten users: spends 100..1000, counts 1..10 except a tie, last purchases older for later ids
    rows = []
    for user in range(1, 11):
        count = 5 if user in (5, 6) else user
        for i in range(count):
            cents = 100 * user // count + (100 * user % count if i == 0 else 0)
            rows.append(tx(user, cents, END - timedelta(days=user, hours=i)))
    result = by_user(profiles(rows))
    counts = [row["transaction_count"] for row in result.values()]
    lasts = [row["last_purchase_at"] for row in result.values()]
    spends = [row["total_spent"] for row in result.values()]
    for row in result.values():
        assert row["frequency_score"] == _quintile(counts, row["transaction_count"])
        assert row["recency_score"] == _quintile(lasts, row["last_purchase_at"])
        assert row["monetary_score"] == _quintile(spends, row["total_spent"])
        assert row["rfm_segment"] == (
            f"{row['recency_score']}{row['frequency_score']}{row['monetary_score']}"
        )
    assert result[1]["recency_score"] == 5 and result[10]["recency_score"] == 1
    assert result[5]["frequency_score"] == result[6]["frequency_score"]
    assert result[10]["monetary_score"] == 5


def test_rfm_users_without_window_purchases_share_the_lowest_scores() -> None:
    rows = [tx(u, 100, START - u * DAY) for u in (1, 2, 3)] + [tx(4, 100, weekday_at(3))]
    result = by_user(profiles(rows))
    assert {result[u]["frequency_score"] for u in (1, 2, 3)} == {1}
    assert {result[u]["monetary_score"] for u in (1, 2, 3)} == {1}
    assert result[4]["frequency_score"] == 1 + (5 * 3) // 4


# --------------------------------------------------------------------------- evidence, patterns


def test_evidence_keys_are_the_detected_patterns_in_pattern_order() -> None:
    rows = [
        *_weekend_user(1, 7, 3),
        *[tx(1, 5000, weekday_at(2, hour=h), "a", "x") for h in range(3)],
        tx(2, 1, START - 100 * DAY),
    ]
    for row in profiles(rows).iter_rows(named=True):
        detected = row["detected_patterns"]
        assert list(evidence(row)) == detected
        assert detected == [p for p in PATTERNS if p in detected]


def test_user_without_patterns_has_empty_list_and_object() -> None:
    rows = [tx(1, 100, weekday_at(3)), tx(2, 100, weekday_at(3)), tx(3, 100, weekday_at(3))]
    rows += [tx(u, 100, START - DAY) for u in (1, 2, 3)]
    row = by_user(profiles(rows, PatternThresholds(high_spender_percentile=1.0)))[1]
    # ties at the max all qualify, so with equal spends everybody is a high spender
    assert row["detected_patterns"] == ["high_spender"]
    rows = [tx(1, 100, weekday_at(3)), tx(2, 200, weekday_at(3))]
    rows += [tx(u, 100, START - DAY) for u in (1, 2)]
    row = by_user(profiles(rows, PatternThresholds(high_spender_percentile=1.0)))[1]
    assert row["detected_patterns"] == [] and row["pattern_evidence"] == "{}"


# --------------------------------------------------------------------------- history summary


def test_history_summary_gives_the_same_profiles_as_all_rows() -> None:
    older = [
        tx(1, 100, START - 40 * DAY, "a", "x"),
        tx(1, 100, START - 2 * DAY, "a", "x"),
        tx(2, -500, START - 3 * DAY),
        tx(3, 900, START - 70 * DAY),
    ]
    window = [tx(1, 300, weekday_at(3), "b", "y"), tx(2, 50, weekday_at(4)), tx(4, 1, END - US)]
    everything = profiles(older + window)
    history = summarize_purchase_history(frame(older), before=START)
    assert profiles(window, history=history).equals(everything)


def test_history_summaries_merge_to_earliest_first_and_latest_last() -> None:
    day1 = [tx(1, 100, START - 10 * DAY), tx(2, 100, START - 9 * DAY), tx(3, -5, START)]
    day2 = [tx(1, 100, START - 5 * DAY), tx(3, 5, START - DAY)]
    merged = merge_purchase_history(
        summarize_purchase_history(frame(day1), before=END),
        summarize_purchase_history(frame(day2), before=END),
    ).collect()
    rows = {r["user_id"]: r for r in merged.iter_rows(named=True)}
    assert rows[1]["first_purchase_at"] == START - 10 * DAY
    assert rows[1]["last_purchase_at"] == START - 5 * DAY
    assert rows[3]["first_purchase_at"] == START - DAY  # the refund is not a purchase
    assert merge_purchase_history().collect().schema == pl.Schema(PURCHASE_HISTORY_SCHEMA)


def test_history_rows_at_or_after_end_are_ignored() -> None:
    history = pl.LazyFrame(
        {"user_id": [9], "first_purchase_at": [END], "last_purchase_at": [END + DAY]},
        schema=PURCHASE_HISTORY_SCHEMA,
    )
    assert 9 not in by_user(profiles([tx(1, 1, weekday_at(3))], history=history))


# --------------------------------------------------------------------------- thresholds


def test_thresholds_defaults_match_design() -> None:
    t = PatternThresholds()
    assert (t.lookback_days, t.high_spender_percentile, t.frequent_purchases_per_week) == (
        90,
        0.8,
        2.0,
    )
    assert (t.weekend_share, t.category_share, t.max_locations, t.min_purchases) == (
        0.7,
        0.5,
        2,
        3,
    )
    assert (t.new_shopper_days, t.inactive_days, t.seasonal_ratio) == (30, 30, 3.0)
    assert t.bucket_days == 30
    assert len(PATTERNS) == 8 and len(set(PATTERNS)) == 8


@pytest.mark.parametrize(
    "field, value",
    [
        ("lookback_days", 91),
        ("lookback_days", 0),
        ("high_spender_percentile", 0.0),
        ("high_spender_percentile", 1.01),
        ("high_spender_percentile", 0.1234567),
        ("weekend_share", 1.5),
        ("category_share", 0.0),
        ("max_locations", 0),
        ("min_purchases", 0),
        ("seasonal_ratio", 0.5),
        ("inactive_days", 0),
    ],
)
def test_thresholds_refuse_out_of_range(field: str, value: Any) -> None:
    with pytest.raises(ValidationError):
        PatternThresholds(**{field: value})


def test_thresholds_are_frozen() -> None:
    with pytest.raises(ValidationError):
        DEFAULT.weekend_share = 0.5  # type: ignore[misc]


def test_thresholds_from_env_overrides_and_refuses_typos() -> None:
    env = {
        "MARKETING_PATTERN_WEEKEND_SHARE": "0.6",
        "MARKETING_PATTERN_LOOKBACK_DAYS": "60",
        "UNRELATED": "x",
    }
    t = PipelineSettings.from_env(env).pattern_thresholds
    assert t.weekend_share == 0.6 and t.lookback_days == 60 and t.bucket_days == 20
    assert t.min_purchases == 3
    with pytest.raises(ValueError, match="MARKETING_PATTERN_WEEKEND_SHAR"):
        PipelineSettings.from_env({"MARKETING_PATTERN_WEEKEND_SHAR": "0.6"})
    with pytest.raises(ValidationError):
        PipelineSettings.from_env({"MARKETING_PATTERN_LOOKBACK_DAYS": "100"})


def test_thresholds_from_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MARKETING_PATTERN_MIN_PURCHASES", "2")
    assert PipelineSettings.from_env().pattern_thresholds.min_purchases == 2


def test_changed_threshold_changes_the_pattern() -> None:
    rows = _weekend_user(1, 6, 4)  # 60 % weekend
    assert "weekend_shopper" not in one(rows)["detected_patterns"]
    relaxed = PatternThresholds(weekend_share=0.6)
    row = one(rows, thresholds=relaxed)
    assert "weekend_shopper" in row["detected_patterns"]
    assert evidence(row)["weekend_shopper"]["threshold"] == 0.6


def test_shorter_lookback_shrinks_window_and_buckets() -> None:
    t = PatternThresholds(lookback_days=30)
    rows = [tx(1, 100, END - 31 * DAY), tx(1, 100, END - 25 * DAY), tx(1, 300, END - 5 * DAY)]
    rows.append(tx(1, 100, END - 15 * DAY))
    row = one(rows, thresholds=t)
    assert row["transaction_count"] == 3
    assert [str(row[f"spend_bucket_{i}"]) for i in (1, 2, 3)] == ["1.00", "1.00", "3.00"]
    assert "seasonal_spender" in row["detected_patterns"]


# --------------------------------------------------------------------------- SQL migration


MIGRATION = Path(__file__).resolve().parents[1] / "sql" / "migrations" / "0002_profiles.sql"
SQL_TABLES = {
    "behavioral_profiles": list(PROFILE_SCHEMA),
    "user_segments": [
        "segment_id",
        "as_of_date",
        "behavior_pattern",
        "user_count",
        "share_of_users",
        "total_spend",
        "avg_spend",
        "median_spend",
        "avg_purchases_per_week",
        "created_at",
    ],
    "segment_overlap": ["as_of_date", "pattern_a", "pattern_b", "user_count"],
}


def _sample_profiles() -> pl.DataFrame:
    rows = [
        *_weekend_user(1, 7, 3),
        *_located(2, ["x", "y", "x"]),
        tx(3, 100, START - DAY),
        tx(4, 5, weekday_at(2), 'quote"and\\slash', "x"),
    ]
    return profiles(rows)


def test_migration_runs_on_duckdb_twice_and_takes_profiles() -> None:
    con = duckdb.connect()
    con.execute(MIGRATION.read_text())
    con.execute(MIGRATION.read_text())  # idempotent
    for table, columns in SQL_TABLES.items():
        described = [row[0] for row in con.execute(f"DESCRIBE {table}").fetchall()]
        assert described == columns
    assert SQL_TABLES["user_segments"] == list(SEGMENT_SCHEMA)
    result = _sample_profiles()
    segments = compute_segments(result, as_of_date=date(2024, 6, 2), as_of_end=END)
    overlap = compute_segment_overlap(result)
    con.register("p", result.to_arrow())
    con.register("s", segments.to_arrow())
    con.register("o", overlap.to_arrow())
    con.execute("INSERT INTO behavioral_profiles SELECT * FROM p")
    con.execute("INSERT INTO user_segments SELECT * FROM s")
    con.execute("INSERT INTO segment_overlap SELECT * FROM o")
    # a partition rewrite (delete + insert of the same keys) in one transaction
    con.execute("BEGIN")
    con.execute("DELETE FROM behavioral_profiles WHERE as_of_date = DATE '2024-06-02'")
    con.execute("INSERT INTO behavioral_profiles SELECT * FROM p")
    con.execute("COMMIT")
    back = pl.from_arrow(con.sql("SELECT * FROM behavioral_profiles").to_arrow_table())
    assert isinstance(back, pl.DataFrame)
    assert back.height == result.height
    evidence_back = dict(back.select("user_id", "pattern_evidence").iter_rows())
    for row in result.iter_rows(named=True):
        assert json.loads(evidence_back[row["user_id"]]) == json.loads(row["pattern_evidence"])
    assert sorted(back["total_spent"].cast(pl.String).to_list()) == sorted(
        result["total_spent"].cast(pl.String).to_list()
    )


@pytest.fixture(scope="module")
def throwaway_postgres(postgres_server_url: str) -> Iterator[str]:
    """A throwaway database for this module (the migration is applied raw, to `public`)."""
    with throwaway_database(postgres_server_url, "profiles_test") as url:
        yield url


def test_migration_runs_on_postgres_twice_and_takes_profiles(throwaway_postgres: str) -> None:
    result = _sample_profiles()
    with psycopg.connect(throwaway_postgres) as conn:
        conn.execute(MIGRATION.read_text())
        conn.execute(MIGRATION.read_text())
        for table, columns in SQL_TABLES.items():
            described = conn.execute(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_name = %s ORDER BY ordinal_position",
                (table,),
            ).fetchall()
            assert [row[0] for row in described] == columns
        placeholders = ", ".join(["%s"] * len(PROFILE_SCHEMA))
        with conn.cursor() as cursor:
            cursor.executemany(
                f"INSERT INTO behavioral_profiles VALUES ({placeholders})",
                [tuple(row.values()) for row in result.iter_rows(named=True)],
            )
        back = conn.execute(
            "SELECT user_id, total_spent::text, detected_patterns, pattern_evidence::text "
            "FROM behavioral_profiles ORDER BY user_id"
        ).fetchall()
    expected = result.select(
        "user_id",
        pl.col("total_spent").cast(pl.String),
        "detected_patterns",
        "pattern_evidence",
    ).rows()
    assert [(u, s, p, json.loads(e)) for u, s, p, e in back] == [
        (u, s, p, json.loads(e)) for u, s, p, e in expected
    ]
