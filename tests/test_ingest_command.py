"""`marketing ingest`: the first step of a fresh deployment stages the range in one run and
prints, per day, what was read, kept and rejected with the reasons; a broken export exits
non-zero naming the failed check."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest

from pipelines.cli import main
from tests.pipeline_helpers import START, PipelineUnderTest, generated_source, last_day

DAYS = 4
LAST = last_day(DAYS)


def _environment(monkeypatch: pytest.MonkeyPatch, pipeline: PipelineUnderTest) -> None:
    settings = pipeline.settings
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.delenv("MARKETING_SOURCE_SCHEMA", raising=False)
    for name, value in {
        "MARKETING_SOURCE_URL": settings.source_url,
        "MARKETING_WAREHOUSE_URL": settings.warehouse_url,
        "MARKETING_WAREHOUSE_SCHEMA": settings.warehouse_schema,
        "MARKETING_STAGING_DIR": settings.staging_dir,
        "MARKETING_FIRST_PARTITION_DATE": settings.first_partition_date.isoformat(),
    }.items():
        monkeypatch.setenv(name, value)


def test_ingest_prints_each_days_counts_and_they_match_the_warehouse(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    pipeline = generated_source(tmp_path, f"duckdb:///{tmp_path}/source.duckdb", days=DAYS)
    _environment(monkeypatch, pipeline)
    assert main(["ingest", START.isoformat(), LAST.isoformat()]) == 0
    printed = capsys.readouterr().out.splitlines()
    staged = pipeline.warehouse.read("SELECT * FROM staged_partitions ORDER BY as_of_date")
    assert staged.height == DAYS
    for row in staged.iter_rows(named=True):
        (line,) = [line for line in printed if line.startswith(str(row["as_of_date"]))]
        numbers = [int(word.replace(",", "")) for word in line.split()[1:4]]
        assert numbers == [row["rows_read"], row["rows_accepted"], row["rows_rejected"]]
    # The first day holds the generated broken rows: its reasons are printed with counts.
    reasons = pipeline.warehouse.read(
        "SELECT reason_code, count(*) AS n FROM rejected_transactions WHERE as_of_date = :day "
        "GROUP BY reason_code ORDER BY n DESC, reason_code LIMIT 1", {"day": START})
    first_line = next(line for line in printed if line.startswith(str(START)))
    assert f"{reasons['reason_code'][0]} {reasons['n'][0]:,}" in first_line
    total = next(line for line in printed if line.startswith("total"))
    assert f"{int(staged['rows_rejected'].sum()):,} rejected (reconciles)" in total


def test_ingest_of_a_broken_export_exits_non_zero_naming_the_check(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    pipeline = generated_source(tmp_path, str(tmp_path / "exports"), file_format="csv",
                                days=DAYS)
    export = Path(pipeline.settings.source_url) / "transactions.csv"
    rows = pl.read_csv(export, infer_schema=False)
    # text amounts: every row is quarantined as non_numeric_amount
    rows.with_columns(pl.lit("n/a").alias("amount")).write_csv(export)
    _environment(monkeypatch, pipeline)
    assert main(["ingest", START.isoformat(), (START + dt.timedelta(days=1)).isoformat()]) == 1
    captured = capsys.readouterr()
    assert "check failed" in captured.err and "rejections_below_limit" in captured.err
    assert "non_numeric_amount" in captured.err
    # The table is printed even though the check failed: nothing kept, all counted.
    total = next(line for line in captured.out.splitlines() if line.startswith("total"))
    assert " = 0 accepted + " in total and total.endswith("(reconciles)")
    assert any(line.startswith(str(START)) for line in captured.out.splitlines())
