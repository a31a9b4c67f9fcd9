"""Both warehouse backends through the same tests: migrations, partition writes, reads."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from resources.migrations import discover_migrations
from resources.warehouse import Warehouse

DAY = dt.date(2026, 3, 1)
OTHER_DAY = dt.date(2026, 3, 2)


def _rejected(day: dt.date, rows: int, reason: str = "amount is missing") -> pl.DataFrame:
    return pl.DataFrame({
        "as_of_date": [day] * rows,
        "source_file": ["transactions"] * rows,
        "source_row": list(range(rows)),
        "transaction_id": [f"t{i}" for i in range(rows)],
        "amount": [None] * rows,
        "reason_code": ["missing_amount"] * rows,
        "reason": [reason] * rows,
    }, schema_overrides={"amount": pl.String})


def _table(warehouse: Warehouse, table: str) -> pl.DataFrame:
    return warehouse.read(f"SELECT * FROM {table} ORDER BY as_of_date, source_row")


def test_migrations_are_idempotent_and_versioned(warehouse: Warehouse) -> None:
    assert warehouse.migrate() == []
    latest = discover_migrations(warehouse.dialect)[-1].version
    assert warehouse.schema_version() == latest


def test_partition_rewrite_twice_gives_identical_table(warehouse: Warehouse) -> None:
    warehouse.replace_partition("rejected_transactions", _rejected(DAY, 3), partition_value=DAY)
    first = _table(warehouse, "rejected_transactions")
    warehouse.replace_partition("rejected_transactions", _rejected(DAY, 3), partition_value=DAY)
    assert _table(warehouse, "rejected_transactions").equals(first)
    assert first.height == 3


def test_partition_write_replaces_only_its_partition(warehouse: Warehouse) -> None:
    warehouse.replace_partition("rejected_transactions", _rejected(DAY, 3), partition_value=DAY)
    warehouse.replace_partition("rejected_transactions", _rejected(OTHER_DAY, 2),
                                partition_value=OTHER_DAY)
    warehouse.replace_partition("rejected_transactions", _rejected(DAY, 1, "changed"),
                                partition_value=DAY)
    table = _table(warehouse, "rejected_transactions")
    per_day = dict(table.group_by("as_of_date").len().iter_rows())
    assert per_day == {DAY: 1, OTHER_DAY: 2}
    assert table.filter(pl.col("as_of_date") == DAY)["reason"].to_list() == ["changed"]


def test_empty_frame_clears_the_partition(warehouse: Warehouse) -> None:
    warehouse.replace_partition("rejected_transactions", _rejected(DAY, 3), partition_value=DAY)
    warehouse.replace_partition("rejected_transactions", _rejected(DAY, 0), partition_value=DAY)
    assert _table(warehouse, "rejected_transactions").height == 0


def test_rows_of_another_partition_are_refused(warehouse: Warehouse) -> None:
    with pytest.raises(ValueError, match="only contain that partition"):
        warehouse.replace_partition("rejected_transactions", _rejected(OTHER_DAY, 1),
                                    partition_value=DAY)


def test_failed_write_leaves_previous_partition_intact(warehouse: Warehouse) -> None:
    warehouse.replace_partition("rejected_transactions", _rejected(DAY, 3), partition_value=DAY)
    duplicate_keys = pl.concat([_rejected(DAY, 2), _rejected(DAY, 2)])
    with pytest.raises(Exception):  # noqa: B017 - each engine raises its own error type
        warehouse.replace_partition("rejected_transactions", duplicate_keys, partition_value=DAY)
    assert _table(warehouse, "rejected_transactions").height == 3


def test_unknown_columns_are_refused(warehouse: Warehouse) -> None:
    frame = _rejected(DAY, 1).with_columns(pl.lit(1).alias("not_a_column"))
    with pytest.raises(ValueError, match="not_a_column"):
        warehouse.replace_partition("rejected_transactions", frame, partition_value=DAY)


def test_special_values_round_trip(warehouse: Warehouse) -> None:
    tricky = ['comma, "quote"', "back\\slash", "", "new\nline"]
    frame = _rejected(DAY, len(tricky)).with_columns(pl.Series("transaction_id", tricky))
    warehouse.replace_partition("rejected_transactions", frame, partition_value=DAY)
    assert _table(warehouse, "rejected_transactions")["transaction_id"].to_list() == tricky
    assert _table(warehouse, "rejected_transactions")["amount"].null_count() == len(tricky)


def test_bound_parameters_are_not_interpolated(warehouse: Warehouse) -> None:
    warehouse.replace_partition("rejected_transactions", _rejected(DAY, 2), partition_value=DAY)
    hostile = "t0' OR '1'='1"
    found = warehouse.read(
        "SELECT count(*) AS n FROM rejected_transactions WHERE transaction_id = :tid",
        {"tid": hostile},
    )
    assert found["n"][0] == 0
