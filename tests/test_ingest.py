"""Ingest end to end through Dagster: every source kind, reconciliation, idempotent reruns."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

import polars as pl
import pytest

from pipelines.jobs import INGEST_JOB
from resources.staging import StagingStore
from resources.warehouse import Warehouse
from tests.pipeline_helpers import START, PipelineUnderTest, generated_source, last_day
from transforms.validation import REASONS

LAST = last_day()
# "Now" is 20:00 of the last day: it is the latest partition, so the 2099 rows are read
# (and quarantined), and the rest of that day has not happened yet.
NOW = dt.datetime.combine(LAST, dt.time(20), tzinfo=dt.UTC)
TYPED_REASONS = {"duplicate_transaction_id", "missing_transaction_id", "missing_user_id",
                 "non_finite_amount", "missing_amount", "future_timestamp", "missing_timestamp"}
CSV_ONLY_REASONS = {"non_numeric_amount", "unparseable_timestamp", "invalid_user_id"}


def _warehouse(pipeline: PipelineUnderTest) -> Warehouse:
    settings = pipeline.settings
    return Warehouse(url=settings.warehouse_url, schema_name=settings.warehouse_schema)


def _source_url(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> tuple[str, str]:
    if kind == "duckdb":
        return f"duckdb:///{tmp_path}/source.duckdb", "parquet"
    if kind == "postgres":
        return request.getfixturevalue("postgres_url"), "parquet"
    return str(tmp_path / "exports"), kind


@pytest.mark.parametrize("kind", ["duckdb", "postgres", "csv", "parquet"])
def test_every_source_row_is_staged_or_quarantined(kind: str, tmp_path: Path,
                                                   request: pytest.FixtureRequest) -> None:
    url, file_format = _source_url(kind, tmp_path, request)
    schema = f"src_{uuid.uuid4().hex[:8]}" if kind == "postgres" else None
    pipeline = generated_source(tmp_path, url, file_format=file_format, source_schema=schema)
    pipeline.run(INGEST_JOB, START, LAST, NOW)

    warehouse = _warehouse(pipeline)
    staged = warehouse.read("SELECT * FROM staged_partitions ORDER BY as_of_date")
    rejected = warehouse.read("SELECT * FROM rejected_transactions")
    assert staged.height == (LAST - START).days + 1
    assert staged["rows_read"].sum() == pipeline.source_rows
    assert (staged["rows_read"] == staged["rows_accepted"] + staged["rows_rejected"]).all()
    assert rejected.height == staged["rows_rejected"].sum()

    files = StagingStore(base_dir=pipeline.settings.staging_dir)
    parquet_rows = files.scan_days(START, LAST).select(pl.len()).collect().item()
    assert parquet_rows == staged["rows_accepted"].sum()

    expected = TYPED_REASONS | (CSV_ONLY_REASONS if kind == "csv" else set())
    assert set(rejected["reason_code"]) >= expected
    assert rejected["reason"].null_count() == 0


def test_later_rows_are_future_and_undated_rows_go_to_the_first_day(tmp_path: Path) -> None:
    pipeline = generated_source(tmp_path, f"duckdb:///{tmp_path}/source.duckdb")
    pipeline.run(INGEST_JOB, START, LAST, NOW)
    rejected = _warehouse(pipeline).read("SELECT as_of_date, reason_code, reason "
                                         "FROM rejected_transactions")
    undated = rejected.filter(pl.col("reason_code") == "missing_timestamp")
    assert set(undated["as_of_date"]) == {START}
    # A row can fail several checks; its reason lists them all.
    future = rejected.filter(pl.col("reason").str.contains(REASONS["future_timestamp"]))
    assert set(future["as_of_date"]) == {LAST}
    generated_later_today = pipeline.transactions.filter(
        (pl.col("occurred_at") > NOW + dt.timedelta(minutes=5))
        & (pl.col("occurred_at").dt.date() == LAST)
    ).height
    far_future = pipeline.transactions.filter(pl.col("occurred_at").dt.year() >= 2099).height
    assert future.height == generated_later_today + far_future


def test_rerunning_a_partition_gives_identical_tables_and_files(tmp_path: Path) -> None:
    pipeline = generated_source(tmp_path, f"duckdb:///{tmp_path}/source.duckdb")
    warehouse = _warehouse(pipeline)
    files = StagingStore(base_dir=pipeline.settings.staging_dir)

    def snapshot() -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
        return (
            warehouse.read("SELECT * FROM rejected_transactions ORDER BY as_of_date, source_row"),
            warehouse.read("SELECT * FROM staged_partitions ORDER BY as_of_date"),
            files.scan_days(START, LAST).collect(),
        )

    pipeline.run(INGEST_JOB, START, LAST, NOW)
    first = snapshot()
    pipeline.run(INGEST_JOB, START, START, NOW)  # one day again
    pipeline.run(INGEST_JOB, START, LAST, NOW)  # and the whole range again
    second = snapshot()
    for before, after in zip(first, second, strict=True):
        assert after.equals(before)
    assert first[2].height > 0


def test_postgres_warehouse_holds_the_same_results_as_duckdb(tmp_path: Path,
                                                             postgres_url: str) -> None:
    source = f"duckdb:///{tmp_path}/source.duckdb"
    on_duckdb = generated_source(tmp_path / "a", source)
    on_postgres = generated_source(tmp_path / "b", source, warehouse_url=postgres_url,
                                   warehouse_schema=f"wh_{uuid.uuid4().hex[:8]}")
    for pipeline in (on_duckdb, on_postgres):
        pipeline.run(INGEST_JOB, START, LAST, NOW)
    query = "SELECT * FROM rejected_transactions ORDER BY as_of_date, source_row"
    assert _warehouse(on_postgres).read(query).equals(_warehouse(on_duckdb).read(query))
