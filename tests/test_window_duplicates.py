"""An id staged on two days: found from the files' id ranges or by reading the ids."""

from __future__ import annotations

import datetime as dt

import polars as pl

from resources.staging import StagingStore
from transforms.columns import STAGED_TRANSACTION_SCHEMA
from transforms.window_duplicates import (
    find_window_duplicates,
    ranges_overlap,
    without_duplicates,
)

DAY = dt.date(2026, 3, 1)


def _day(ids: list[str], day: dt.date, cents: int = 100) -> pl.DataFrame:
    at = dt.datetime.combine(day, dt.time(9), tzinfo=dt.UTC)
    return pl.DataFrame({"transaction_id": ids, "user_id": [1] * len(ids),
                         "amount_cents": [cents] * len(ids), "occurred_at": [at] * len(ids)},
                        schema_overrides={"occurred_at": pl.Datetime("us", "UTC")}
                        ).with_columns(pl.lit(None, dtype=pl.String).alias(column)
                                       for column in ("currency", "category", "merchant_id",
                                                      "location_id")
                                       ).select(list(STAGED_TRANSACTION_SCHEMA))


def test_ranges_overlap_only_when_two_days_could_share_an_id() -> None:
    assert not ranges_overlap([("t05", "t09"), ("t01", "t04"), ("t10", "t12")])
    assert ranges_overlap([("t01", "t05"), ("t05", "t09")])  # t05 could be on both
    assert ranges_overlap([("a", "z"), ("m", "n")])
    assert not ranges_overlap([])


def test_staged_footers_carry_each_days_id_range(tmp_path) -> None:
    staging = StagingStore(base_dir=str(tmp_path))
    staging.write_day(DAY, _day(["t3", "t1", "t2"], DAY))
    staging.write_day(DAY + dt.timedelta(days=1),
                      _day([], DAY + dt.timedelta(days=1)))
    staging.write_day(DAY + dt.timedelta(days=2), _day(["t4", "t9"], DAY + dt.timedelta(days=2)))
    assert staging.id_ranges(DAY, DAY + dt.timedelta(days=2)) == [("t1", "t3"), ("t4", "t9")]


def test_a_shared_id_is_found_and_its_later_copy_dropped(tmp_path) -> None:
    staging = StagingStore(base_dir=str(tmp_path))
    later = DAY + dt.timedelta(days=3)
    staging.write_day(DAY, _day(["a1", "shared"], DAY, cents=100))
    staging.write_day(later, _day(["b1", "shared"], later, cents=700))
    window = staging.scan_days(DAY, later)
    ranges = staging.id_ranges(DAY, later)
    assert ranges is not None and ranges_overlap(ranges)
    for given in (ranges, None):  # from the footers, or by reading every id
        duplicates = find_window_duplicates(window, given)
        assert (duplicates.ids, duplicates.rows_dropped) == (1, 1)
        assert duplicates.examples() == f"shared (dropped copy on {later})"
        kept = without_duplicates(window, duplicates).collect()
        assert kept.filter(pl.col("transaction_id") == "shared")["amount_cents"].to_list() \
            == [100]
        assert kept.height == 3


def test_disjoint_ranges_need_no_read(tmp_path) -> None:
    """The footer ranges decide: a window whose ranges are disjoint is not read (a frame
    that would fail if collected proves it)."""
    broken = pl.LazyFrame({"transaction_id": ["x"], "occurred_at": ["not a time"]}).select(
        pl.col("transaction_id"), pl.col("occurred_at").str.to_datetime(time_zone="UTC"))
    duplicates = find_window_duplicates(broken, [("t1", "t3"), ("t4", "t9")])
    assert duplicates.ids == 0
