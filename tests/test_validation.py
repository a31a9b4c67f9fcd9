"""Validation: every kind of bad row gets its own clear reason; nothing is lost."""

from __future__ import annotations

import datetime as dt
import json

import polars as pl
import pytest

from transforms.columns import STAGED_TRANSACTION_SCHEMA
from transforms.ingest_policy import IngestPolicy
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
        (("t1", "u" * 257, "10.00", GOOD_TS), "invalid_user_id"),
        (("t1", "1", None, GOOD_TS), "missing_amount"),
        (("t1", "1", "ten", GOOD_TS), "non_numeric_amount"),
        (("t1", "1", "NaN", GOOD_TS), "non_finite_amount"),
        (("t1", "1", "inf", GOOD_TS), "non_finite_amount"),
        (("t1", "1", "10.00", None), "missing_timestamp"),
        (("t1", "1", "10.00", "yesterday"), "unparseable_timestamp"),
        (("t1", "-3", "10.00", GOOD_TS), "negative_user_id"),
        (("t1", "1", "1e12", GOOD_TS), "amount_out_of_range"),
        (("t1", "1", "9.2e+16", GOOD_TS), "amount_out_of_range"),
        (("t1", "1", "-1000000000000.00", GOOD_TS), "amount_out_of_range"),
        (("t1", "1", "1.005", GOOD_TS), "sub_cent_amount"),
        (("t1", "1", "12.345", GOOD_TS), "sub_cent_amount"),
        (("t1", "1", "10.00", "2099-01-01T00:00:00Z"), "future_timestamp"),
    ],
)
def test_each_bad_row_kind_has_its_reason(row: tuple, expected_code: str) -> None:
    good = ("ok", "2", "5.00", GOOD_TS)
    outcome = validate_transactions(_raw([good, row]), latest_allowed=NOW)
    assert outcome.accepted["transaction_id"].to_list() == ["ok"]
    assert outcome.rejected["reason_code"].to_list() == [expected_code]
    assert REASONS[expected_code] in outcome.rejected["reason"][0]


@pytest.mark.parametrize("user_id", ["abc", "+1", "007", "7.0", "1e3",
                                     "550e8400-e29b-41d4-a716-446655440000"])
def test_integer_only_policy_refuses_every_id_that_is_not_a_canonical_integer(
        user_id: str) -> None:
    policy = IngestPolicy(user_ids="integer")
    outcome = validate_transactions(_raw([("ok", "2", "5.00", GOOD_TS),
                                          ("t1", user_id, "10.00", GOOD_TS)]),
                                    latest_allowed=NOW, policy=policy)
    assert outcome.accepted["user_id"].to_list() == [2]
    assert outcome.rejected["reason_code"].to_list() == ["invalid_user_id"]
    assert outcome.rejected["user_id"].to_list() == [user_id]


def test_text_and_uuid_ids_are_users_of_their_own_never_merged_with_integers() -> None:
    """`7`, `007`, `+7` and a UUID are four users (the first release merged the first
    three); the same text is the same user in every row; padding is not part of an id."""
    uuid = "550e8400-E29B-41d4-a716-446655440000"
    rows = [("a", "7", "1.00", GOOD_TS), ("b", "007", "2.00", GOOD_TS),
            ("c", " +7 ", "3.00", GOOD_TS), ("d", uuid, "4.00", GOOD_TS),
            ("e", f" {uuid}", "5.00", GOOD_TS), ("f", uuid.lower(), "6.00", GOOD_TS)]
    outcome = validate_transactions(_raw(rows), latest_allowed=NOW)
    assert outcome.rejected.is_empty()
    keys = dict(zip(outcome.accepted["transaction_id"], outcome.accepted["user_id"],
                    strict=True))
    assert keys["a"] == 7
    assert keys["d"] == keys["e"]  # the same id, padded in one row
    assert len({keys["a"], keys["b"], keys["c"], keys["d"], keys["f"]}) == 5  # case counts
    assert all(keys[name] < 0 for name in "bcdef")  # text keys never meet integer ids
    entries = dict(outcome.user_keys.iter_rows())
    assert entries == {keys["b"]: "007", keys["c"]: "+7", keys["d"]: uuid,
                       keys["f"]: uuid.lower()}


def test_text_keys_are_the_same_in_every_run_and_process() -> None:
    """The key is a pure function of the text (BLAKE2b), not of a run's order or a
    process's hash seed: a fresh interpreter computes the same keys."""
    import subprocess
    import sys
    ids = ["007", "usr_42", "550e8400-e29b-41d4-a716-446655440000"]
    here = validate_transactions(_raw([(f"t{i}", uid, "1.00", GOOD_TS)
                                       for i, uid in enumerate(ids)]),
                                 latest_allowed=NOW).accepted["user_id"].to_list()
    reversed_run = validate_transactions(_raw([(f"t{i}", uid, "1.00", GOOD_TS)
                                               for i, uid in enumerate(reversed(ids))]),
                                         latest_allowed=NOW).accepted["user_id"].to_list()
    assert reversed_run == list(reversed(here))
    script = ("import polars as pl; from transforms.user_keys import user_keys; "
              f"print(user_keys(pl.Series({ids!r})).to_list())")
    printed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                             check=True, env={"PYTHONHASHSEED": "123", "PATH": ""}).stdout
    assert printed.strip() == str(here)


def test_a_hash_collision_is_refused_not_merged() -> None:
    from transforms.user_keys import UserKeyCollision, refuse_collisions
    clashing = pl.DataFrame({"user_id": [-5, -5, -6], "source_user_id": ["a", "b", "c"]})
    with pytest.raises(UserKeyCollision, match="would be merged"):
        refuse_collisions(clashing)


def test_duplicate_ids_keep_the_first_and_reject_the_rest() -> None:
    rows = [("a", "1", "1.00", GOOD_TS), ("a", "1", "2.00", GOOD_TS), ("a", "2", "3.00", GOOD_TS)]
    outcome = validate_transactions(_raw(rows), latest_allowed=NOW)
    assert outcome.accepted["amount_cents"].to_list() == [100]
    assert outcome.rejected["source_row"].to_list() == [2, 3]  # 1-based, as in the file
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


def test_naive_typed_timestamps_are_rejected_when_the_policy_says_so() -> None:
    raw = pl.DataFrame({"transaction_id": ["a"], "user_id": [1], "amount": [1.0],
                        "occurred_at": [dt.datetime(2026, 3, 1, 9)]})
    outcome = validate_transactions(raw, latest_allowed=NOW,
                                    policy=IngestPolicy(naive_timestamps="reject"))
    assert outcome.rejected["reason_code"].to_list() == ["naive_timestamp"]
    assert REASONS["naive_timestamp"] in outcome.rejected["reason"][0]


def test_missing_required_column_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="lacks required columns \\['amount'\\]"):
        validate_transactions(pl.DataFrame({"transaction_id": ["a"], "user_id": [1],
                                            "occurred_at": [NOW]}), latest_allowed=NOW)


def _typed(**columns: list) -> pl.DataFrame:
    base = {"transaction_id": [f"t{i}" for i in range(len(next(iter(columns.values()))))]}
    return pl.DataFrame({**base, **columns})


def test_amounts_at_the_numeric_14_2_bound_are_exact() -> None:
    rows = [("a", "1", "999999999999.99", GOOD_TS), ("b", "1", "-999999999999.99", GOOD_TS),
            ("c", "1", "0.1", GOOD_TS), ("d", "1", "1.10", GOOD_TS)]
    outcome = validate_transactions(_raw(rows), latest_allowed=NOW)
    assert outcome.accepted["amount_cents"].to_list() == [
        99_999_999_999_999, -99_999_999_999_999, 10, 110]


def test_typed_float_amounts_are_bounded_and_sub_cents_detected() -> None:
    raw = _typed(user_id=[1, 1, 1, 1], amount=[12.34, 1e12, 9.3e16, 1.005],
                 occurred_at=[NOW - dt.timedelta(hours=1)] * 4)
    outcome = validate_transactions(raw, latest_allowed=NOW)
    assert outcome.accepted["amount_cents"].to_list() == [1234]
    assert outcome.rejected["reason_code"].to_list() == [
        "amount_out_of_range", "amount_out_of_range", "sub_cent_amount"]


def test_sub_cent_rounding_policy_rounds_half_away_from_zero_and_counts() -> None:
    rows = [("a", "1", "1.005", GOOD_TS), ("b", "1", "-1.005", GOOD_TS),
            ("c", "1", "12.344", GOOD_TS), ("d", "1", "2.50", GOOD_TS),
            ("e", "1", "999999999999.995", GOOD_TS)]
    outcome = validate_transactions(_raw(rows), latest_allowed=NOW,
                                    policy=IngestPolicy(sub_cent_amounts="round"))
    assert outcome.accepted["amount_cents"].to_list() == [101, -101, 1234, 250]
    # rounding 999999999999.995 up would leave NUMERIC(14,2): refused, not overflowed
    assert outcome.rejected["reason_code"].to_list() == ["amount_out_of_range"]
    assert outcome.notes["rounded_amount"] == 3


def test_empty_or_blank_text_is_a_missing_value() -> None:
    raw = _raw([("a", "1", "1.00", GOOD_TS), ("b", "1", "1.00", GOOD_TS)]).with_columns(
        category=pl.Series(["", "  "]), merchant_id=pl.Series([" ", "m1"]),
        location_id=pl.Series(["\t", None]))
    accepted = validate_transactions(raw, latest_allowed=NOW).accepted
    assert accepted["category"].to_list() == [None, None]
    assert accepted["merchant_id"].to_list() == [None, "m1"]
    assert accepted["location_id"].to_list() == [None, None]


def test_date_only_and_naive_timestamps_are_read_in_the_source_zone_and_counted() -> None:
    rows = [("a", "1", "1.00", "2026-03-01"), ("b", "1", "1.00", "2026-03-01 10:30:00"),
            ("c", "1", "1.00", GOOD_TS)]
    utc = validate_transactions(_raw(rows), latest_allowed=NOW)
    assert utc.accepted["occurred_at"].to_list() == [
        dt.datetime(2026, 3, 1, tzinfo=dt.UTC), dt.datetime(2026, 3, 1, 10, 30, tzinfo=dt.UTC),
        dt.datetime(2026, 3, 1, 10, tzinfo=dt.UTC)]
    assert utc.notes == {"date_only_timestamp": 1, "naive_timestamp_assumed": 1}
    berlin = validate_transactions(_raw(rows), latest_allowed=NOW,
                                   policy=IngestPolicy(source_time_zone="Europe/Berlin"))
    assert berlin.accepted["occurred_at"].to_list()[:2] == [
        dt.datetime(2026, 2, 28, 23, tzinfo=dt.UTC),
        dt.datetime(2026, 3, 1, 9, 30, tzinfo=dt.UTC)]


def test_foreign_currencies_are_converted_with_a_rate_or_quarantined() -> None:
    raw = _raw([("a", "1", "10.00", GOOD_TS), ("b", "1", "10.00", GOOD_TS),
                ("c", "1", "10.00", GOOD_TS), ("d", "1", "10.00", GOOD_TS)]).with_columns(
        currency=pl.Series(["USD", "eur", "JPY", None]))
    quarantined = validate_transactions(raw, latest_allowed=NOW)
    assert quarantined.accepted["transaction_id"].to_list() == ["a", "d"]
    assert quarantined.rejected["reason_code"].to_list() == ["unconverted_currency"] * 2
    converted = validate_transactions(raw, latest_allowed=NOW,
                                      policy=IngestPolicy(currency_rates="EUR=1.085,JPY=0.0067"))
    assert converted.accepted["amount_cents"].to_list() == [1000, 1085, 7, 1000]
    assert set(converted.accepted["currency"]) == {"USD"}  # every staged amount is in base
    assert converted.notes["converted_currency"] == 2


def test_unknown_users_are_flagged_or_quarantined() -> None:
    rows = [("a", "1", "1.00", GOOD_TS), ("b", "2", "1.00", GOOD_TS)]
    known = pl.Series([1, 5])
    flagged = validate_transactions(_raw(rows), latest_allowed=NOW, known_users=known)
    assert flagged.accepted.height == 2 and flagged.notes["unknown_user"] == 1
    refused = validate_transactions(_raw(rows), latest_allowed=NOW, known_users=known,
                                    policy=IngestPolicy(unknown_users="reject"))
    assert refused.rejected["transaction_id"].to_list() == ["b"]
    assert refused.rejected["reason_code"].to_list() == ["unknown_user"]


def test_rejections_keep_file_row_and_the_whole_raw_row() -> None:
    raw = _raw([("a", "1", "oops", GOOD_TS)]).with_columns(
        category=pl.lit("dining"), _source_file=pl.lit("transactions/2026-03.csv"),
        _source_row=pl.lit(41, dtype=pl.Int64))
    rejected = validate_transactions(raw, latest_allowed=NOW).rejected
    assert rejected.select("source_file", "source_row").row(0) == (
        "transactions/2026-03.csv", 41)
    assert json.loads(rejected["raw_row"][0]) == {
        "transaction_id": "a", "user_id": "1", "amount": "oops", "occurred_at": GOOD_TS,
        "category": "dining"}  # the source's own columns, nothing added


def test_policy_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="unknown time zone"):
        IngestPolicy(source_time_zone="Mars/Olympus")
    with pytest.raises(ValueError, match="positive and finite"):
        IngestPolicy(currency_rates="EUR=0")
    with pytest.raises(ValueError, match="CODE=RATE"):
        IngestPolicy(currency_rates="EUR")
