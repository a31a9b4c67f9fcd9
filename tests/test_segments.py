"""compute_segments and compute_segment_overlap on hand-made profiles.

Profiles are built directly with the PROFILE_SCHEMA columns the segment step reads, so each
expected figure can be worked out by hand (integer cents, half-up rounding).
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from itertools import combinations

import polars as pl

from resources.warehouse import Warehouse
from transforms.profiles import PROFILE_SCHEMA, compute_profiles
from transforms.segments import (
    OVERLAP_SCHEMA,
    SEGMENT_NAMESPACE,
    SEGMENT_SCHEMA,
    compute_segment_overlap,
    compute_segments,
    segment_id,
)
from transforms.thresholds import PATTERNS, PatternThresholds

DAY = date(2024, 6, 2)
END = datetime(2024, 6, 3, tzinfo=UTC)


def _profiles(users: list[tuple[int, str, float, list[str]]]) -> pl.DataFrame:
    """(user_id, total_spent, purchases_per_week, detected_patterns) -> a profile frame."""
    return pl.DataFrame(
        {
            "as_of_date": [DAY] * len(users),
            "user_id": [u[0] for u in users],
            "total_spent": [Decimal(u[1]) for u in users],
            "purchases_per_week": [u[2] for u in users],
            "detected_patterns": [u[3] for u in users],
        },
        schema={
            name: PROFILE_SCHEMA[name]
            for name in (
                "as_of_date",
                "user_id",
                "total_spent",
                "purchases_per_week",
                "detected_patterns",
            )
        },
    )


USERS = [
    (1, "10.00", 1.0, ["high_spender", "frequent_shopper"]),
    (2, "20.01", 2.0, ["high_spender"]),
    (3, "0.00", 0.0, ["inactive"]),
    (4, "5.00", 3.0, ["frequent_shopper", "inactive", "seasonal_spender"]),
    (5, "7.50", 0.5, []),
]


def _by_pattern(frame: pl.DataFrame) -> dict[str, dict]:
    return {row["behavior_pattern"]: row for row in frame.iter_rows(named=True)}


def test_segments_schema_and_all_eight_patterns_in_order() -> None:
    result = compute_segments(_profiles(USERS), as_of_date=DAY, as_of_end=END)
    assert result.schema == pl.Schema(SEGMENT_SCHEMA)
    assert result["behavior_pattern"].to_list() == list(PATTERNS)


def test_segment_figures_by_hand() -> None:
    seg = _by_pattern(compute_segments(_profiles(USERS), as_of_date=DAY, as_of_end=END))
    high = seg["high_spender"]  # users 1, 2: 10.00 + 20.01
    assert high["user_count"] == 2
    assert high["share_of_users"] == 2 / 5
    assert high["total_spend"] == Decimal("30.01")
    assert high["avg_spend"] == Decimal("15.01")  # 15.005 rounded half up
    assert high["median_spend"] == Decimal("15.01")  # mean of the two middle values
    assert high["avg_purchases_per_week"] == (1.0 + 2.0) / 2
    inactive = seg["inactive"]  # users 3, 4: 0.00 + 5.00
    assert inactive["avg_spend"] == Decimal("2.50") and inactive["median_spend"] == Decimal("2.50")
    frequent = seg["frequent_shopper"]  # users 1, 4
    assert frequent["total_spend"] == Decimal("15.00") and frequent["avg_spend"] == Decimal("7.50")
    seasonal = seg["seasonal_spender"]  # user 4 only
    assert seasonal["median_spend"] == Decimal("5.00") and seasonal["share_of_users"] == 1 / 5


def test_odd_count_median_is_the_middle_value() -> None:
    users = [(u, cents, 1.0, ["inactive"]) for u, cents in [(1, "1.00"), (2, "9.99"), (3, "3.33")]]
    seg = _by_pattern(compute_segments(_profiles(users), as_of_date=DAY, as_of_end=END))
    assert seg["inactive"]["median_spend"] == Decimal("3.33")
    assert seg["inactive"]["avg_spend"] == Decimal("4.77")  # 14.32 / 3 = 4.7733


def test_empty_segments_are_present_with_zero_users() -> None:
    seg = _by_pattern(compute_segments(_profiles(USERS), as_of_date=DAY, as_of_end=END))
    for pattern in ("weekend_shopper", "category_focused", "location_clustered", "new_shopper"):
        row = seg[pattern]
        assert row["user_count"] == 0 and row["share_of_users"] == 0.0
        assert row["total_spend"] == Decimal("0.00")
        assert row["avg_spend"] is None and row["median_spend"] is None
        assert row["avg_purchases_per_week"] is None


def test_no_profiles_gives_eight_empty_segments() -> None:
    result = compute_segments(_profiles([]), as_of_date=DAY, as_of_end=END)
    assert result.height == 8
    assert result["user_count"].to_list() == [0] * 8
    assert result["share_of_users"].to_list() == [0.0] * 8


def test_segment_ids_are_uuid5_of_pattern_and_day_and_reruns_are_identical() -> None:
    first = compute_segments(_profiles(USERS), as_of_date=DAY, as_of_end=END)
    again = compute_segments(_profiles(USERS).lazy(), as_of_date=DAY, as_of_end=END)
    assert first.equals(again)
    expected = [str(uuid.uuid5(SEGMENT_NAMESPACE, f"{p}:2024-06-02")) for p in PATTERNS]
    assert first["segment_id"].to_list() == expected
    assert segment_id("inactive", DAY) != segment_id("inactive", date(2024, 6, 3))
    assert first["created_at"].to_list() == [END] * 8
    assert first["as_of_date"].to_list() == [DAY] * 8


def test_overlap_counts_every_pair_once() -> None:
    result = compute_segment_overlap(_profiles(USERS))
    assert result.schema == pl.Schema(OVERLAP_SCHEMA)
    assert result.height == 28
    pairs = {(a, b): n for _, a, b, n in result.iter_rows()}
    assert all(a < b for a, b in pairs)
    expected: dict[tuple[str, str], int] = {}
    for _, _, _, patterns in USERS:
        for a, b in combinations(sorted(patterns), 2):
            expected[(a, b)] = expected.get((a, b), 0) + 1
    assert {k: v for k, v in pairs.items() if v} == expected
    assert pairs[("frequent_shopper", "high_spender")] == 1
    assert pairs[("frequent_shopper", "inactive")] == 1
    assert pairs[("category_focused", "weekend_shopper")] == 0
    assert set(result["as_of_date"].to_list()) == {DAY}


def test_overlap_empty_profiles() -> None:
    assert compute_segment_overlap(_profiles([])).height == 0
    result = compute_segment_overlap(_profiles([]), as_of_date=DAY)
    assert result.height == 28 and result["user_count"].sum() == 0


def test_overlap_reports_each_day_of_the_profiles() -> None:
    later = date(2024, 6, 3)
    two_days = pl.concat([_profiles(USERS), _profiles(USERS[:1]).with_columns(as_of_date=later)])
    result = compute_segment_overlap(two_days)
    assert result.height == 56
    rows = {(d, a, b): n for d, a, b, n in result.iter_rows()}
    assert rows[(DAY, "frequent_shopper", "high_spender")] == 1
    assert rows[(later, "frequent_shopper", "high_spender")] == 1
    assert rows[(later, "frequent_shopper", "inactive")] == 0
    assert rows[(DAY, "frequent_shopper", "inactive")] == 1


def test_segments_from_real_profiles_are_consistent() -> None:
    """Counts per pattern equal the profile lists; spends add up to the cent."""
    rows = []
    for user in range(1, 30):
        for i in range(user % 5 + 1):
            rows.append(
                {
                    "transaction_id": f"{user}-{i}",
                    "user_id": user,
                    "amount_cents": 137 * user + i,
                    "occurred_at": datetime(2024, 5, 1 + (user + i) % 30, 12, tzinfo=UTC),
                    "currency": "USD",
                    "category": "ab"[user % 2],
                    "merchant_id": None,
                    "location_id": "xyz"[i % 3],
                }
            )
    profiles = compute_profiles(pl.LazyFrame(rows), as_of_end=END, thresholds=PatternThresholds())
    segments = _by_pattern(compute_segments(profiles, as_of_date=DAY, as_of_end=END))
    for pattern in PATTERNS:
        members = profiles.filter(pl.col("detected_patterns").list.contains(pattern))
        assert segments[pattern]["user_count"] == members.height
        assert segments[pattern]["total_spend"] == sum(members["total_spent"], Decimal(0))


def test_tables_round_trip_through_the_warehouse(warehouse: Warehouse) -> None:
    """The frames load into the migrated tables on both backends and read back equal."""
    rows = [
        {
            "transaction_id": f"t{i}",
            "user_id": 1 + i % 3,
            "amount_cents": [1999, -500, 0, 250, 12345][i % 5],
            "occurred_at": datetime(2024, 5, 3 + i, 18, tzinfo=UTC),
            "currency": "USD",
            "category": ['it\'s "quoted"', "b", None][i % 3],
            "merchant_id": None,
            "location_id": ["x", "y"][i % 2],
        }
        for i in range(12)
    ]
    profiles = compute_profiles(pl.LazyFrame(rows), as_of_end=END, thresholds=PatternThresholds())
    segments = compute_segments(profiles, as_of_date=DAY, as_of_end=END)
    overlap = compute_segment_overlap(profiles)
    for table, frame in [
        ("behavioral_profiles", profiles),
        ("user_segments", segments),
        ("segment_overlap", overlap),
    ]:
        warehouse.replace_partition(table, frame, partition_value=DAY)
        warehouse.replace_partition(table, frame, partition_value=DAY)  # rerun: same rows
        back = warehouse.read(f"SELECT * FROM {table} ORDER BY 1, 2, 3")
        assert back.height == frame.height
    back = warehouse.read("SELECT * FROM behavioral_profiles ORDER BY user_id")
    assert back["detected_patterns"].to_list() == profiles["detected_patterns"].to_list()
    assert back["top_category"].to_list() == profiles["top_category"].to_list()
    assert [json.loads(e) for e in back["pattern_evidence"]] == [
        json.loads(e) for e in profiles["pattern_evidence"]
    ]
    assert back["total_spent"].cast(pl.String).to_list() == (
        profiles["total_spent"].cast(pl.String).to_list()
    )
