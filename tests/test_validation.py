"""Validation: every kind of bad row gets its own clear reason; nothing is lost."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from transforms.columns import STAGED_TRANSACTION_SCHEMA
from transforms.validation import REASONS, validate_transactions

NOW = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)
GOOD_TS = "2026-03-01T10:00:00Z"


def _raw(rows: list[tuple]) -> pl.DataFrame:
    return pl.DataFrame(
        rows, schema={"transaction_id": pl.String, "user_id": pl.String, "amount": pl.String,
                      "occurred_at": pl.String},
        orient="row",
    )


@pytest.mark.parametrize(
    ("row", "expected_code"),
    [
        ((None, "1", "10.00", GOOD_TS), "missing_transaction_id"),
        (("  ", "1", "10.00", GOOD_TS), "missing_transaction_id"),
        (("t1", None, "10.00", GOOD_TS), "missing_user_id"),
        (("t1", "abc", "10.00", GOOD_TS), "invalid_user_id"),
        (("t1", "1", None, GOOD_TS), "missing_amount"),
        (("t1", "1", "ten", GOOD_TS), "non_numeric_amount"),
        (("t1", "1", "NaN", GOOD_TS), "non_finite_amount"),
        (("t1", "1", "inf", GOOD_TS), "non_finite_amount"),
        (("t1", "1", "10.00", None), "missing_timestamp"),
        (("t1", "1", "10.00", "yesterday"), "unparseable_timestamp"),
        (("t1", "1", "10.00", "2026-03-01 10:00:00"), "naive_timestamp"),
        (("t1", "1", "10.00", "2099-01-01T00:00:00Z"), "future_timestamp"),
    ],
)
def test_each_bad_row_kind_has_its_reason(row: tuple, expected_code: str) -> None:
    good = ("ok", "2", "5.00", GOOD_TS)
    outcome = validate_transactions(_raw([good, row]), latest_allowed=NOW)
    assert outcome.accepted["transaction_id"].to_list() == ["ok"]
    assert outcome.rejected["reason_code"].to_list() == [expected_code]
    assert REASONS[expected_code] in outcome.rejected["reason"][0]


def test_duplicate_ids_keep_the_first_and_reject_the_rest() -> None:
    rows = [("a", "1", "1.00", GOOD_TS), ("a", "1", "2.00", GOOD_TS), ("a", "2", "3.00", GOOD_TS)]
    outcome = validate_transactions(_raw(rows), latest_allowed=NOW)
    assert outcome.accepted["amount_cents"].to_list() == [100]
    assert outcome.rejected["source_row"].to_list() == [1, 2]
    assert set(outcome.rejected["reason_code"]) == {"duplicate_transaction_id"}


def test_a_row_with_several_problems_lists_them_all() -> None:
    outcome = validate_transactions(_raw([(None, None, "x", "bad")]), latest_allowed=NOW)
    reason = outcome.rejected["reason"][0]
    assert outcome.rejected["reason_code"][0] == "missing_transaction_id"
    for code in ("missing_user_id", "non_numeric_amount", "unparseable_timestamp"):
        assert REASONS[code] in reason


def test_counts_reconcile_and_raw_values_are_kept() -> None:
    rows = [(f"t{i}", str(i), "1.25" if i % 3 else "oops", GOOD_TS) for i in range(30)]
    outcome = validate_transactions(_raw(rows), latest_allowed=NOW)
    assert outcome.accepted.height + outcome.rejected.height == outcome.rows_read == 30
    assert outcome.rejected.height == 10
    assert set(outcome.rejected["amount"]) == {"oops"}


def test_accepted_rows_have_the_staging_schema_and_exact_cents() -> None:
    rows = [("a", "7", "0.29", "2026-03-01T10:00:00+02:00"), ("b", "7", "-12.50", GOOD_TS),
            ("c", "8", "0", GOOD_TS)]
    outcome = validate_transactions(_raw(rows), latest_allowed=NOW)
    assert dict(outcome.accepted.schema) == STAGED_TRANSACTION_SCHEMA
    assert outcome.accepted["amount_cents"].to_list() == [29, -1250, 0]
    assert outcome.accepted["occurred_at"][0] == dt.datetime(2026, 3, 1, 8, tzinfo=dt.UTC)


def test_typed_database_columns_are_validated_too() -> None:
    raw = pl.DataFrame({
        "transaction_id": ["a", "b", "c"],
        "user_id": [1, None, 3],
        "amount": [1.5, 2.0, float("nan")],
        "occurred_at": [NOW - dt.timedelta(hours=1)] * 3,
        "category": ["dining", None, "travel"],
    })
    outcome = validate_transactions(raw, latest_allowed=NOW)
    assert outcome.accepted["transaction_id"].to_list() == ["a"]
    assert outcome.rejected["reason_code"].to_list() == ["missing_user_id", "non_finite_amount"]


def test_naive_typed_timestamps_are_rejected() -> None:
    raw = pl.DataFrame({"transaction_id": ["a"], "user_id": [1], "amount": [1.0],
                        "occurred_at": [dt.datetime(2026, 3, 1, 9)]})
    outcome = validate_transactions(raw, latest_allowed=NOW)
    assert outcome.rejected["reason_code"].to_list() == ["naive_timestamp"]


def test_missing_required_column_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="lacks required columns \\['amount'\\]"):
        validate_transactions(pl.DataFrame({"transaction_id": ["a"], "user_id": [1],
                                            "occurred_at": [NOW]}), latest_allowed=NOW)
