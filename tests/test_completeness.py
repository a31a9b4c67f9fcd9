"""Completeness is checked, not assumed (docs/consistency.md): a profile partition whose
window or history has a hole, or was built from a day since re-staged, is refused by a
blocking check naming the days; an export that is mostly rejected fails ingest's blocking
check naming the top reasons; in range runs every partition gets its own check results
and metadata.

DuckDB warehouse, generated sources; the refusals are the subject, so each test breaks one
input on purpose and looks for that input's day in the evidence.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from assets.partitions import AS_OF_NOW_TAG
from datagen.writers import write_source
from pipelines.definitions import build_assets, build_resources
from pipelines.jobs import INGEST_JOB
from pipelines.schedules import RANGE_END_TAG, RANGE_START_TAG
from resources.staging import StagingStore, content_token
from tests.pipeline_helpers import START, PipelineUnderTest, generated_source, last_day
from tests.step_runs import whole_steps

DAYS = 8
LAST = last_day(DAYS)
NOW = dt.datetime.combine(LAST + dt.timedelta(days=1), dt.time(6), tzinfo=dt.UTC)
INGEST_ASSETS = ["valid_transactions", "rejected_transactions"]  # one step, not subsettable


def _materialize(pipeline: PipelineUnderTest, selection: list[str], first: dt.date,
                 last: dt.date) -> dg.ExecuteInProcessResult:
    """Materialize only `selection` over [first, last] in one run (no exception on failure:
    the tests read the failed run's check evaluations)."""
    return dg.materialize(
        build_assets(pipeline.settings), selection=whole_steps(selection),
        resources=build_resources(pipeline.settings), instance=pipeline.instance,
        tags={RANGE_START_TAG: first.isoformat(), RANGE_END_TAG: last.isoformat(),
              AS_OF_NOW_TAG: NOW.isoformat()},
        raise_on_error=False,
    )


def _evaluations(result: dg.ExecuteInProcessResult, check: str
                 ) -> dict[str, dg.AssetCheckEvaluation]:
    """The check's evaluations by partition key."""
    found = {}
    for event in result.all_events:
        if event.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION:
            evaluation = event.asset_check_evaluation_data
            if evaluation.check_name == check:
                found[evaluation.partition] = evaluation
    return found


def _text(evaluation: dg.AssetCheckEvaluation) -> str:
    return " ".join(str(value.value) for value in evaluation.metadata.values())


@pytest.fixture
def staged(tmp_path: Path) -> PipelineUnderTest:
    """Every day validated, staged and summarised into the purchase history."""
    pipeline = generated_source(tmp_path, f"duckdb:///{tmp_path}/source.duckdb", days=DAYS)
    pipeline.run(INGEST_JOB, START, LAST, NOW)
    return pipeline


def test_a_window_with_an_unstaged_day_is_refused_naming_the_day(
        staged: PipelineUnderTest) -> None:
    hole = START + dt.timedelta(days=3)
    StagingStore(base_dir=staged.settings.staging_dir).path_for(hole).unlink()
    result = _materialize(staged, ["behavioral_profiles"], LAST - dt.timedelta(days=1), LAST)
    assert not result.success
    evaluations = _evaluations(result, "inputs_complete")
    # One evaluation per partition of the range, each naming the missing day.
    assert set(evaluations) == {str(LAST - dt.timedelta(days=1)), str(LAST)}
    for evaluation in evaluations.values():
        assert not evaluation.passed and evaluation.blocking
        assert str(hole) in _text(evaluation)
        assert evaluation.metadata["missing_or_stale"].value >= 1
    assert staged.warehouse.read("SELECT count(*) AS n FROM behavioral_profiles")["n"][0] == 0


def test_a_complete_window_passes_the_same_check(staged: PipelineUnderTest) -> None:
    """The control for the test above: nothing removed, the same run succeeds."""
    result = _materialize(staged, ["behavioral_profiles"], LAST - dt.timedelta(days=1), LAST)
    assert result.success
    evaluations = _evaluations(result, "inputs_complete")
    assert set(evaluations) == {str(LAST - dt.timedelta(days=1)), str(LAST)}
    assert all(evaluation.passed for evaluation in evaluations.values())


def test_a_restaged_earlier_day_makes_the_later_history_stale(
        staged: PipelineUnderTest) -> None:
    """Day 3 is re-ingested with one more purchase: the history of days 4.. was built from
    the old day 3, so a profile of the last day is refused until the chain is rebuilt."""
    changed = START + dt.timedelta(days=2)
    extra = staged.transactions.filter(
        pl.col("occurred_at").dt.date() == changed).head(1).with_columns(
        pl.lit("late-arrival-1").alias("transaction_id"))
    write_source(staged.settings.source_url,
                 {"transactions": pl.concat([staged.transactions, extra])})
    staged.run(INGEST_JOB, changed, changed, NOW)
    refused = _materialize(staged, ["behavioral_profiles"], LAST, LAST)
    assert not refused.success
    (evaluation,) = _evaluations(refused, "inputs_complete").values()
    assert str(changed + dt.timedelta(days=1)) in _text(evaluation)

    staged.run(INGEST_JOB, changed, LAST, NOW)  # the documented repair: re-run from there
    assert _materialize(staged, ["behavioral_profiles"], LAST, LAST).success


def test_an_export_whose_every_row_is_rejected_fails_ingest_naming_the_reason(
        tmp_path: Path) -> None:
    """An export whose amounts are all text (`n/a`): every row is rejected as
    `non_numeric_amount`. That is a broken export, not a quiet day: the blocking check
    fails and names the reason with its count."""
    pipeline = generated_source(tmp_path, str(tmp_path / "exports"), file_format="csv",
                                days=DAYS)
    export = Path(pipeline.settings.source_url) / "transactions.csv"
    rows = pl.read_csv(export, infer_schema=False)
    rows.with_columns(pl.lit("n/a").alias("amount")).write_csv(export)
    result = _materialize(pipeline, INGEST_ASSETS,
                          START, START + dt.timedelta(days=1))
    assert not result.success
    evaluations = _evaluations(result, "rejections_below_limit")
    assert set(evaluations) == {str(START), str(START + dt.timedelta(days=1))}
    failed = [evaluation for evaluation in evaluations.values() if not evaluation.passed]
    assert failed
    for evaluation in failed:
        assert evaluation.blocking
        assert evaluation.metadata["rows_accepted"].value == 0
        assert evaluation.metadata["rows_rejected"].value > 0
        assert "non_numeric_amount" in str(evaluation.metadata["top_reasons"].value)


def test_the_rejection_limit_is_configurable(tmp_path: Path) -> None:
    """A day with a quarter of its rows broken passes at the default (50%) and fails at
    10%: the limit is read from the settings, not fixed."""
    pipeline = generated_source(tmp_path, f"duckdb:///{tmp_path}/source.duckdb", days=DAYS)
    day_rows = pipeline.transactions.filter(pl.col("occurred_at").dt.date() == LAST)
    broken = day_rows.head(day_rows.height // 3).with_columns(
        pl.lit(None, dtype=pl.Int64).alias("user_id"))
    others = pipeline.transactions.filter(
        pl.col("occurred_at").is_null() | (pl.col("occurred_at").dt.date() != LAST))
    write_source(pipeline.settings.source_url, {"transactions": pl.concat(
        [others, broken, day_rows.tail(day_rows.height - broken.height)])})
    assert _materialize(pipeline, INGEST_ASSETS, LAST, LAST).success
    strict = PipelineUnderTest(
        pipeline.settings.model_copy(update={"max_rejected_share": 0.1}), pipeline.users,
        pipeline.transactions, pipeline.source_rows, pipeline.instance)
    result = _materialize(strict, INGEST_ASSETS, LAST, LAST)
    assert not result.success
    (evaluation,) = _evaluations(result, "rejections_below_limit").values()
    assert evaluation.metadata["limit"].value == 0.1
    assert "missing_user_id" in str(evaluation.metadata["top_reasons"].value)


def test_range_runs_report_every_partition_on_its_own(staged: PipelineUnderTest) -> None:
    """A three-day run: each day's materialization carries that day's counts, each check
    one evaluation per day, not one for the range."""
    first = LAST - dt.timedelta(days=2)
    result = _materialize(staged, ["behavioral_profiles", "user_segments"], first, LAST)
    assert result.success
    days = {str(first + dt.timedelta(days=offset)) for offset in range(3)}
    for check in ("inputs_complete", "one_row_per_user", "known_patterns_only"):
        assert set(_evaluations(result, check)) == days, check
    users = {}
    for materialization in result.asset_materializations_for_node("behavioral_profiles"):
        if materialization.partition in days and "users" in materialization.metadata:
            users[materialization.partition] = materialization.metadata["users"].value
    assert set(users) == days
    stored = staged.warehouse.read(
        "SELECT as_of_date, count(*) AS n FROM behavioral_profiles GROUP BY as_of_date")
    assert users == {str(day): n for day, n in zip(stored["as_of_date"], stored["n"],
                                                    strict=True)}


def test_equal_rows_get_equal_tokens_whatever_their_order(tmp_path: Path) -> None:
    """The staged-day token is a digest of the rows: the order they came in does not
    matter, one changed amount does, and re-staging the same rows leaves the file alone."""
    pipeline = generated_source(tmp_path, f"duckdb:///{tmp_path}/source.duckdb", days=2)
    frame = pipeline.transactions.filter(
        (pl.col("occurred_at").dt.date() == START) & pl.col("amount").is_finite()).select(
        "transaction_id", "user_id", "occurred_at", "currency", "category", "merchant_id",
        "location_id", (pl.col("amount") * 100).round().cast(pl.Int64).alias("amount_cents"))
    assert content_token(frame) == content_token(frame.reverse())
    assert content_token(frame) != content_token(
        frame.with_columns(pl.col("amount_cents") + (pl.int_range(pl.len()) == 0)))
    store = StagingStore(base_dir=str(tmp_path / "staged"))
    first = store.write_day(START, frame)
    modified = store.path_for(START).stat().st_mtime_ns
    again = store.write_day(START, frame.reverse())
    assert (again.token, again.changed) == (first.token, False)
    assert store.path_for(START).stat().st_mtime_ns == modified
