"""Real exports are messy: every kind of bad value and bad file gets a clear, counted outcome.

The test builds the export itself: a generated CSV history plus, in `transactions/`, one
file of bad values and one file of each broken-file kind. Then it runs ingest (and the
profiles of the bad day) through Dagster on both warehouses and reads what was stored.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import uuid
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from assets.partitions import AS_OF_NOW_TAG
from pipelines.definitions import build_assets, build_resources
from pipelines.jobs import ALL_ASSETS_JOB, INGEST_JOB
from pipelines.runner import run_job_for_days
from pipelines.schedules import RANGE_END_TAG, RANGE_START_TAG
from resources.source_files import read_transaction_files
from resources.staging import LEFTOVER_AGE_SECONDS, StagingStore
from tests.pipeline_helpers import START, PipelineUnderTest, generated_source
from tests.step_runs import whole_steps
from transforms.columns import STAGED_TRANSACTION_SCHEMA
from transforms.validation import validate_transactions

DAYS = 6
LAST = START + dt.timedelta(days=DAYS - 1)
NOW = dt.datetime.combine(LAST + dt.timedelta(days=1), dt.time(6), tzinfo=dt.UTC)
BAD_DAY = START + dt.timedelta(days=2)
HEADER = ["transaction_id", "user_id", "amount", "occurred_at", "currency", "category",
          "merchant_id", "location_id"]
MAX_AMOUNT = "999999999999.99"


def _at(hour: int) -> str:
    return f"{BAD_DAY.isoformat()}T{hour:02d}:00:00+00:00"


def _bad_value_rows(user: int) -> list[tuple[list[str], str | None]]:
    """(row, expected reason code or None when it must be accepted)."""
    def row(tid: str, user_id: str = str(user), amount: str = "10.00", at: str = _at(9),
            currency: str = "USD", category: str = "dining") -> list[str]:
        return [tid, user_id, amount, at, currency, category, "m1", "l1"]
    return [
        (row("x_big", amount="1000000000000"), "amount_out_of_range"),
        (row("x_huge", amount="9.2e+16"), "amount_out_of_range"),
        (row("x_subcent", amount="1.005"), "sub_cent_amount"),
        (row("x_max1", amount=MAX_AMOUNT), None),
        (row("x_max2", amount=MAX_AMOUNT, at=_at(10)), None),
        (row("x_blank_category", category="   "), None),
        (row("x_negative", user_id="-5"), "negative_user_id"),
        (row("x_padded", user_id=f"00{user}"), None),  # a text id of its own, not `user`
        (row("x_overlong", user_id="u" * 300), "invalid_user_id"),
        (row("x_unknown", user_id="987654321"), None),
        (row("x_date_only", at=BAD_DAY.isoformat()), None),
        (row("x_eur", currency="EUR"), "unconverted_currency"),
    ]


def _write_csv(path: Path, rows: list[list[str]]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        writer.writerows(rows)


BROKEN_FILES = {
    "empty.csv": "empty_file",
    "latin1.csv": "not_utf8",
    "no_time.csv": "missing_columns",
}


def _write_broken_files(folder: Path, user: int) -> None:
    (folder / "empty.csv").write_bytes(b"")
    (folder / "latin1.csv").write_bytes(
        (",".join(HEADER) + f"\nx_latin,{user},5.00,{_at(8)},USD,caf\xe9,m1,l1\n")
        .encode("latin-1"))
    (folder / "no_time.csv").write_text("transaction_id,user_id,amount\nx_nt,1,2.00\n")


@pytest.fixture(params=["duckdb", "postgres"])
def messy(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[PipelineUnderTest, int]:
    warehouse_url, schema = None, "marketing"
    if request.param == "postgres":
        warehouse_url = request.getfixturevalue("postgres_url")
        schema = f"m_{uuid.uuid4().hex[:10]}"
    pipeline = generated_source(tmp_path, str(tmp_path / "exports"), file_format="csv",
                                days=DAYS, warehouse_url=warehouse_url,
                                warehouse_schema=schema)
    user = int(pipeline.users["user_id"][0])
    folder = Path(pipeline.settings.source_url) / "transactions"
    folder.mkdir()
    _write_csv(folder / "bad_values.csv", [row for row, _ in _bad_value_rows(user)])
    _write_broken_files(folder, user)
    return pipeline, user


def test_bad_values_are_quarantined_or_counted_with_file_row_and_raw_row(
        messy: tuple[PipelineUnderTest, int]) -> None:
    pipeline, user = messy
    result = pipeline.run(INGEST_JOB, START, LAST, NOW)
    assert result.success
    warehouse = pipeline.warehouse
    rejected = warehouse.read(
        "SELECT * FROM rejected_transactions WHERE source_file = 'transactions/bad_values.csv'"
        " ORDER BY source_row")
    expected = {row[0]: code for row, code in _bad_value_rows(user) if code}
    assert dict(zip(rejected["transaction_id"], rejected["reason_code"], strict=True)) \
        == expected
    positions = {row[0]: index + 1 for index, (row, _) in enumerate(_bad_value_rows(user))}
    for tid, source_row, raw_row in rejected.select(
            "transaction_id", "source_row", "raw_row").iter_rows():
        assert source_row == positions[tid]  # its row in the file (header not counted)
        assert json.loads(raw_row)["transaction_id"] == tid
    assert set(rejected["as_of_date"]) == {BAD_DAY}

    staged = warehouse.read("SELECT * FROM staged_partitions WHERE as_of_date = :day",
                            {"day": BAD_DAY}).row(0, named=True)
    assert staged["rows_date_only"] == 1
    assert staged["rows_unknown_user"] == 2  # 987654321 and the padded id
    assert staged["rows_read"] == staged["rows_accepted"] + staged["rows_rejected"]
    day = StagingStore(base_dir=pipeline.settings.staging_dir).scan_days(BAD_DAY, BAD_DAY) \
        .filter(pl.col("transaction_id").str.starts_with("x_")).collect()
    accepted = {row[0] for row, code in _bad_value_rows(user) if code is None}
    assert set(day["transaction_id"]) == accepted
    blank = day.filter(pl.col("transaction_id") == "x_blank_category")["category"][0]
    assert blank is None
    date_only = day.filter(pl.col("transaction_id") == "x_date_only")["occurred_at"][0]
    assert date_only == dt.datetime.combine(BAD_DAY, dt.time(), tzinfo=dt.UTC)

    # two maximal amounts in one window: the profile's sum is past NUMERIC(14,2), and the
    # whole graph still runs for the day
    graph = pipeline.run(ALL_ASSETS_JOB, BAD_DAY, BAD_DAY, NOW)
    assert graph.success
    total = warehouse.read(
        "SELECT total_spent FROM behavioral_profiles WHERE as_of_date = :day AND user_id = :u",
        {"day": BAD_DAY, "u": user})["total_spent"][0]
    assert total >= 2 * 999_999_999_999.99 - 1
    padded = warehouse.read(
        "SELECT user_id, source_user_id, total_spent FROM behavioral_profiles "
        "WHERE as_of_date = :day AND source_user_id IN (:padded, :plain)",
        {"day": BAD_DAY, "padded": f"00{user}", "plain": str(user)})
    by_id = {row["source_user_id"]: row for row in padded.iter_rows(named=True)}
    assert by_id[str(user)]["user_id"] == user
    assert by_id[f"00{user}"]["user_id"] < 0 and float(by_id[f"00{user}"]["total_spent"]) == 10


def test_one_bad_file_is_listed_and_the_folder_still_ingests(
        messy: tuple[PipelineUnderTest, int]) -> None:
    pipeline, _ = messy
    result = pipeline.run(INGEST_JOB, START, LAST, NOW)
    assert result.success  # the good files are staged
    files = pipeline.warehouse.read("SELECT * FROM rejected_files ORDER BY as_of_date")
    by_file = dict(zip(files["source_file"], files["reason_code"], strict=False))
    assert by_file == {f"transactions/{name}": code for name, code in BROKEN_FILES.items()}
    assert files.height == len(BROKEN_FILES) * DAYS  # listed under every day of the run
    assert files.filter(pl.col("reason").str.len_chars() < 20).is_empty()

    checks = [evaluation for evaluation in result.get_asset_check_evaluations()
              if evaluation.check_name == "files_readable"]
    assert {evaluation.partition for evaluation in checks} == {
        (START + dt.timedelta(days=offset)).isoformat() for offset in range(DAYS)}
    assert not any(evaluation.passed for evaluation in checks)
    assert all("latin1.csv" in evaluation.description for evaluation in checks)
    staged = pipeline.warehouse.read("SELECT * FROM staged_partitions")
    assert (staged["files_rejected"] == len(BROKEN_FILES)).all()
    on_bad_day = pipeline.transactions.filter(
        pl.col("occurred_at").dt.date() == BAD_DAY).height
    bad_day = staged.filter(pl.col("as_of_date") == BAD_DAY)
    assert bad_day["rows_read"][0] == on_bad_day + len(_bad_value_rows(0))


def test_a_header_only_export_does_not_empty_staged_days(
        messy: tuple[PipelineUnderTest, int]) -> None:
    pipeline, _ = messy
    assert pipeline.run(INGEST_JOB, START, LAST, NOW).success
    staging = StagingStore(base_dir=pipeline.settings.staging_dir)
    before = {day: staging.rows_of_day(day) for day in staging.staged_days(START, LAST)}
    export = Path(pipeline.settings.source_url)
    for path in [export / "transactions.csv", *sorted((export / "transactions").glob("*"))]:
        path.write_text(",".join(HEADER) + "\n")
    refused = run_job_for_days(pipeline.definitions, INGEST_JOB, START, LAST,
                               instance=pipeline.instance, now=NOW, raise_on_error=False)
    assert not refused.success
    failures = [event for event in refused.all_events if event.is_step_failure]
    message = failures[0].step_failure_data.error.message
    assert "refusing to empty" in message and str(START) in message
    assert "MARKETING_ALLOW_EMPTYING_DAYS" in message
    assert len(refused.get_step_failure_events()) == 1
    assert {day: staging.rows_of_day(day) for day in before} == before
    # not retried: a header-only export does not get better by trying again
    retries = [event for event in refused.all_events
               if event.event_type == dg.DagsterEventType.STEP_RESTARTED]
    assert retries == []


def test_a_conflicting_duplicate_resolves_the_same_way_on_every_range_split(
        tmp_path: Path) -> None:
    """Same id and timestamp, different amounts, in two files: the kept copy is the first
    in (timestamp, id, file, row) order, whether the day runs alone or in a range."""
    results = []
    for split in ("range", "days"):
        root = tmp_path / split
        pipeline = generated_source(root, str(root / "exports"), file_format="csv",
                                    days=DAYS)
        folder = Path(pipeline.settings.source_url) / "transactions"
        folder.mkdir()
        user = str(pipeline.users["user_id"][0])
        _write_csv(folder / "b.csv", [["dup", user, "30.00", _at(12), "USD", "x", "m", "l"]])
        _write_csv(folder / "a.csv", [["dup", user, "20.00", _at(12), "USD", "x", "m", "l"]])
        if split == "range":
            assert pipeline.run(INGEST_JOB, START, LAST, NOW).success
        else:
            day = START
            while day <= LAST:
                assert pipeline.run(INGEST_JOB, day, day, NOW).success
                day += dt.timedelta(days=1)
        kept = StagingStore(base_dir=pipeline.settings.staging_dir).scan_days(
            BAD_DAY, BAD_DAY).filter(pl.col("transaction_id") == "dup").collect()
        rejected = pipeline.warehouse.read(
            "SELECT source_file, amount FROM rejected_transactions "
            "WHERE transaction_id = 'dup'")
        results.append((kept["amount_cents"].to_list(), rejected.rows()))
    assert results[0] == results[1] == ([2000], [("transactions/b.csv", "30.00")])


def _materialize(pipeline: PipelineUnderTest, selection: list[str], first: dt.date,
                 last: dt.date) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        build_assets(pipeline.settings), selection=whole_steps(selection),
        resources=build_resources(pipeline.settings), instance=pipeline.instance,
        tags={RANGE_START_TAG: first.isoformat(), RANGE_END_TAG: last.isoformat(),
              AS_OF_NOW_TAG: NOW.isoformat()})


def test_a_killed_writers_temporary_file_is_swept_by_the_next_write(tmp_path: Path) -> None:
    staging = StagingStore(base_dir=str(tmp_path))
    folder = staging.path_for(START).parent
    folder.mkdir(parents=True)
    old, fresh = folder / ".0123abcd.tmp", folder / ".4567ef01.tmp"
    old.write_bytes(b"half a parquet file")
    fresh.write_bytes(b"a concurrent writer's file")
    stale = dt.datetime.now().timestamp() - LEFTOVER_AGE_SECONDS - 60
    os.utime(old, (stale, stale))
    staging.write_day(START, pl.DataFrame(schema=STAGED_TRANSACTION_SCHEMA))
    assert not old.exists()
    assert fresh.exists()  # young: may belong to a writer still running
    assert staging.rows_of_day(START) == 0


def test_parquet_exports_with_a_truncated_file_and_mixed_types(tmp_path: Path) -> None:
    """A truncated Parquet file is refused by name; files whose column types differ (an
    integer `user_id` in one, text in the next) are read together as text, not refused."""
    folder = tmp_path / "transactions"
    folder.mkdir()
    at = dt.datetime.combine(BAD_DAY, dt.time(9), tzinfo=dt.UTC)
    typed = pl.DataFrame({"transaction_id": ["a1", "a2"], "user_id": [1, 2],
                          "amount": [1.5, 2.25], "occurred_at": [at, at]})
    typed.write_parquet(folder / "a.parquet")
    typed.with_columns(pl.col("user_id").cast(pl.String),
                       pl.Series("transaction_id", ["b1", "b2"])).write_parquet(
        folder / "b.parquet")
    whole = (folder / "a.parquet").read_bytes()
    (folder / "c.parquet").write_bytes(whole[: len(whole) // 2])
    start = dt.datetime.combine(BAD_DAY, dt.time(), tzinfo=dt.UTC)
    rows = read_transaction_files(str(tmp_path), start, start + dt.timedelta(days=1),
                                  include_later=False, include_undated=False)
    assert [(file.path, file.reason_code) for file in rows.rejected_files] == [
        ("transactions/c.parquet", "unreadable_file")]
    assert rows.files_read == 2
    assert rows.frame["transaction_id"].to_list() == ["a1", "a2", "b1", "b2"]  # (time, id)
    outcome = validate_transactions(rows.frame, latest_allowed=NOW)
    assert outcome.accepted["user_id"].to_list() == [1, 2, 1, 2]
    assert outcome.accepted["amount_cents"].to_list() == [150, 225, 150, 225]
    assert set(outcome.rejected["reason_code"]) == set()


@pytest.mark.parametrize(("order", "warehouse"), [("day_by_day", "duckdb"),
                                                  ("later_day_first", "duckdb"),
                                                  ("later_day_first", "postgres")])
def test_an_id_staged_on_two_days_counts_once_in_the_window_whatever_the_order(
        order: str, warehouse: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """The same transaction id on two days (a re-sent export with a corrected time): the
    profile counts its earliest copy once, reports the other, and gives the same table
    whether the days were ingested in order or the later one first."""
    url, schema = None, "marketing"
    if warehouse == "postgres":
        url, schema = request.getfixturevalue("postgres_url"), f"m_{uuid.uuid4().hex[:10]}"
    pipeline = generated_source(tmp_path, str(tmp_path / "exports"), file_format="csv",
                                days=DAYS, warehouse_url=url, warehouse_schema=schema)
    user = str(pipeline.users["user_id"][0])
    folder = Path(pipeline.settings.source_url) / "transactions"
    folder.mkdir()
    late = BAD_DAY + dt.timedelta(days=2)
    _write_csv(folder / "first.csv", [["twice", user, "10.00", _at(9), "USD", "x", "m", "l"]])
    _write_csv(folder / "resent.csv", [["twice", user, "30.00",
                                        f"{late.isoformat()}T09:00:00+00:00", "USD", "x",
                                        "m", "l"]])
    days = [START + dt.timedelta(days=offset) for offset in range(DAYS)]
    if order == "later_day_first":  # staging only: the purchase history is built in order
        for day in [late] + [day for day in days if day != late]:
            assert _materialize(pipeline, ["valid_transactions", "rejected_transactions"],
                                day, day).success
        assert _materialize(pipeline, ["purchase_history"], START, LAST).success
    else:
        for day in days:
            assert pipeline.run(INGEST_JOB, day, day, NOW).success
    result = pipeline.run(ALL_ASSETS_JOB, late, late, NOW)
    assert result.success  # a warning, not a failure
    check = next(evaluation for evaluation in result.get_asset_check_evaluations()
                 if evaluation.check_name == "transaction_ids_once_in_window")
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert check.metadata["ids_on_several_days"].value == 1
    assert check.metadata["copies_not_counted"].value == 1
    assert f"twice (dropped copy on {late})" in check.metadata["examples"].value

    profile = pipeline.warehouse.read(
        "SELECT total_spent, transaction_count FROM behavioral_profiles "
        "WHERE as_of_date = :day AND user_id = :user", {"day": late, "user": int(user)})
    history = pipeline.transactions.filter(
        (pl.col("user_id") == int(user)) & (pl.col("occurred_at").dt.date() <= late)
        & (pl.col("amount") > 0) & pl.col("transaction_id").is_not_null())
    assert profile["transaction_count"][0] == history.height + 1  # `twice` counted once
    assert float(profile["total_spent"][0]) == pytest.approx(  # its earliest copy: 10.00
        history["amount"].sum() + 10.00, abs=0.005)
    staged = StagingStore(base_dir=pipeline.settings.staging_dir).scan_days(START, LAST) \
        .filter(pl.col("transaction_id") == "twice").collect()
    assert staged.height == 2  # staging keeps both copies; only the profile dedupes
