"""The `customer_value` assets on both warehouses: what the tables hold, that they agree with
an independent count of the staged purchases, and that a fit that does not converge fails
its check and writes no scores."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections import defaultdict

import dagster as dg
import polars as pl
import pytest

from assets.customer_value import CONVERGED_CHECK, CUSTOMER_VALUE, MODELS, TIERS
from assets.partitions import AS_OF_NOW_TAG
from pipelines.jobs import ALL_ASSETS_JOB, INGEST_JOB
from pipelines.runner import QUIET_LOGS
from resources.staging import StagingStore
from tests.pipeline_helpers import START, PipelineUnderTest, generated_source, last_day
from transforms.value_tiers import VALUE_TIERS

DAYS = 40  # 20 days show no dropout: the BG/NBD fit runs to a = 0 and fails its check
LAST = last_day(DAYS)
NOW = dt.datetime.combine(LAST + dt.timedelta(days=1), dt.time(0, 5), tzinfo=dt.UTC)
SCORE_DAYS = (LAST - dt.timedelta(days=1), LAST)


@pytest.fixture(scope="module", params=["duckdb", "postgres"])
def scored(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
           ) -> PipelineUnderTest:
    root = tmp_path_factory.mktemp(f"value_{request.param}")
    warehouse_url, schema = f"duckdb:///{root}/warehouse.duckdb", "marketing"
    if request.param == "postgres":
        warehouse_url = request.getfixturevalue("postgres_url")
        schema = f"value_{uuid.uuid4().hex[:8]}"
    pipeline = generated_source(root, f"duckdb:///{root}/source.duckdb", users=300,
                                days=DAYS, warehouse_url=warehouse_url,
                                warehouse_schema=schema)
    pipeline.run(INGEST_JOB, START, LAST, NOW)
    pipeline.run(ALL_ASSETS_JOB, SCORE_DAYS[0], SCORE_DAYS[1], NOW)
    return pipeline


def _purchase_days_by_hand(pipeline: PipelineUnderTest, day: dt.date) -> dict[int, int]:
    """Distinct days with a positive purchase per user, up to `day`, counted over the staged
    transactions themselves (what ingest accepted), not through the purchase history."""
    staging = StagingStore(base_dir=pipeline.settings.staging_dir)
    days: dict[int, set[dt.date]] = defaultdict(set)
    rows = staging.scan_days(START, day).filter(pl.col("amount_cents") > 0).select(
        "user_id", pl.col("occurred_at").dt.date().alias("day")).collect()
    for user, bought in rows.iter_rows():
        days[user].add(bought)
    return {user: len(found) for user, found in days.items()}


def test_scores_follow_the_purchases_of_each_day(scored: PipelineUnderTest) -> None:
    warehouse = scored.warehouse
    for day in SCORE_DAYS:
        frame = warehouse.read("SELECT * FROM customer_value WHERE as_of_date = :day "
                               "ORDER BY user_id", {"day": day})
        by_hand = _purchase_days_by_hand(scored, day)
        assert frame.height > 250
        assert frame["user_id"].to_list() == sorted(by_hand)
        assert frame["frequency"].to_list() == [by_hand[user] - 1 for user in sorted(by_hand)]
        assert (frame["frequency"] > 0).sum() > 200
        assert frame["p_alive"].is_between(0, 1).all()
        assert (frame["expected_purchases_90d"] >= frame["expected_purchases_30d"]).all()
        assert (frame["clv"] >= 0).all() and frame["clv"].max() > 0
        assert set(frame["value_tier"]) == set(VALUE_TIERS)
        top = frame.filter(pl.col("value_tier") == "top")
        assert top["clv"].min() >= frame.filter(pl.col("value_tier") == "low")["clv"].max()
        assert frame["source_user_id"].to_list() == [str(user) for user in frame["user_id"]]
    # T grows by one day from one day to the next for a user who bought before both
    both = warehouse.read(
        "SELECT a.t_days AS t1, b.t_days AS t2 FROM customer_value a JOIN customer_value b "
        "ON a.user_id = b.user_id AND a.as_of_date = :first AND b.as_of_date = :second",
        {"first": SCORE_DAYS[0], "second": SCORE_DAYS[1]})
    assert both.height > 250 and (both["t2"] - both["t1"] == 1.0).all()


def test_models_are_stored_per_day_with_their_evidence(scored: PipelineUnderTest) -> None:
    models = scored.warehouse.read("SELECT * FROM customer_value_models ORDER BY as_of_date, "
                                   "model")
    assert models.height == 2 * len(SCORE_DAYS)
    assert models["converged"].all()
    assert set(models["model"]) == {"bg_nbd", "gamma_gamma"}
    for row in models.iter_rows(named=True):
        parameters = json.loads(row["parameters"])
        # b is absent in the NBD limit (a = 0: no dropout seen), where it is infinite
        assert set(parameters) - {"b"} == ({"r", "alpha", "a"} if row["model"] == "bg_nbd"
                                           else {"p", "q", "gamma"})
        assert all(value > 0 for name, value in parameters.items() if name != "a")
        assert parameters.get("a", 0.0) >= 0.0
        assert row["log_likelihood"] < 0 and row["customers"] > 0


def test_a_fit_that_does_not_converge_fails_the_check_and_writes_no_scores(
        scored: PipelineUnderTest) -> None:
    """One optimizer iteration cannot converge: the day's earlier scores go, its models
    rows say why, and the blocking check fails with that evidence."""
    day = SCORE_DAYS[1]
    assets = [dg.AssetKey(name) for name in (CUSTOMER_VALUE, TIERS, MODELS)]
    job = scored.definitions.resolve_job_def(ALL_ASSETS_JOB)
    result = job.execute_in_process(
        instance=scored.instance, partition_key=day.isoformat(), asset_selection=assets,
        run_config={**QUIET_LOGS, "ops": {CUSTOMER_VALUE: {"config": {"max_iterations": 1}}}},
        tags={AS_OF_NOW_TAG: NOW.isoformat()}, raise_on_error=False)
    evaluations = [evaluation for evaluation in result.get_asset_check_evaluations()
                   if evaluation.check_name == CONVERGED_CHECK]
    assert len(evaluations) == 1 and not evaluations[0].passed
    assert "bg_nbd_message" in evaluations[0].metadata
    warehouse = scored.warehouse
    assert warehouse.read("SELECT count(*) AS n FROM customer_value WHERE as_of_date = :day",
                          {"day": day})["n"][0] == 0
    models = warehouse.read("SELECT converged FROM customer_value_models WHERE "
                            "as_of_date = :day", {"day": day})
    assert models.height == 2 and not models["converged"].all()
    # the day before is untouched
    assert warehouse.read("SELECT count(*) AS n FROM customer_value WHERE as_of_date = :day",
                          {"day": SCORE_DAYS[0]})["n"][0] > 250
