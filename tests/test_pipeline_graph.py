"""The whole asset graph end to end, on both warehouses: results, checks, idempotent reruns."""

from __future__ import annotations

import datetime as dt
import uuid

import polars as pl
import pytest

from devkit.fake_together import FakeTogether
from pipelines.campaign_ops import UnknownCampaign, set_campaign_status
from pipelines.jobs import ALL_ASSETS_JOB
from resources.staging import StagingStore
from tests.pipeline_helpers import PipelineUnderTest, generated_source, last_day
from transforms.lifecycle import InvalidTransition
from transforms.thresholds import PATTERNS

DAYS = 40
LAST = last_day(DAYS)
FIRST_ANALYZED = LAST - dt.timedelta(days=3)
NOW = dt.datetime.combine(LAST, dt.time(18), tzinfo=dt.UTC)
RESULT_TABLES = {
    "behavioral_profiles": "as_of_date", "user_segments": "as_of_date",
    "segment_overlap": "as_of_date", "ai_campaigns": "as_of_date",
    "campaign_audience": "as_of_date", "campaign_metrics": "metric_date",
    "campaign_incrementality": "as_of_date", "campaign_recommendations": "as_of_date",
    "campaign_copy": "as_of_date", "campaign_status": "as_of_date",
}


@pytest.fixture(scope="module", params=["duckdb", "postgres"])
def graph(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
          ) -> tuple[PipelineUnderTest, list]:
    """Four days of the whole graph over 40 days of generated history."""
    root = tmp_path_factory.mktemp(f"graph_{request.param}")
    warehouse_url, schema = None, "marketing"
    if request.param == "postgres":
        warehouse_url = request.getfixturevalue("postgres_url")
        schema = f"g_{uuid.uuid4().hex[:8]}"
    pipeline = generated_source(root, f"duckdb:///{root}/source.duckdb", users=400, days=DAYS,
                                warehouse_url=warehouse_url, warehouse_schema=schema)
    results = pipeline.run_graph_days(FIRST_ANALYZED, LAST, NOW)
    return pipeline, results


def _table(pipeline: PipelineUnderTest, table: str, column: str, day: dt.date) -> pl.DataFrame:
    frame = pipeline.warehouse.read(f"SELECT * FROM {table} WHERE {column} = :day", {"day": day})
    return frame.sort(frame.columns[:3])


def test_every_asset_check_passes(graph) -> None:
    _, results = graph
    evaluations = [evaluation for result in results
                   for evaluation in result.get_asset_check_evaluations()]
    assert evaluations, "the graph declares asset checks; none ran"
    failed = [(e.asset_key.to_user_string(), e.check_name) for e in evaluations if not e.passed]
    assert failed == []


def test_profiles_cover_exactly_the_users_with_a_purchase(graph) -> None:
    pipeline, _ = graph
    end = NOW  # the last day is "today": its window ends at the run's time
    staged = StagingStore(base_dir=pipeline.settings.staging_dir).scan_days(
        pipeline.settings.first_partition_date, LAST).collect()
    buyers = set(staged.filter((pl.col("amount_cents") > 0)
                               & (pl.col("occurred_at") < end))["user_id"])
    profiles = _table(pipeline, "behavioral_profiles", "as_of_date", LAST)
    assert set(profiles["user_id"]) == buyers
    assert profiles["as_of_end"].max() == end


def test_segments_agree_with_profiles(graph) -> None:
    pipeline, _ = graph
    profiles = _table(pipeline, "behavioral_profiles", "as_of_date", LAST)
    segments = _table(pipeline, "user_segments", "as_of_date", LAST)
    assert sorted(segments["behavior_pattern"]) == sorted(PATTERNS)
    for row in segments.iter_rows(named=True):
        carriers = profiles.filter(pl.col("detected_patterns").list.contains(
            row["behavior_pattern"]))
        assert row["user_count"] == carriers.height
        assert row["share_of_users"] == pytest.approx(carriers.height / profiles.height)


def test_campaigns_target_only_opted_in_users_once_a_day(graph) -> None:
    pipeline, _ = graph
    campaigns = pipeline.warehouse.read("SELECT * FROM ai_campaigns")
    assert campaigns.height > 0
    assert campaigns["campaign_id"].is_unique().all()
    audience = pipeline.warehouse.read("SELECT * FROM campaign_audience")
    opted_in = set(pipeline.users.filter(pl.col("marketing_opt_in"))["user_id"])
    assert set(audience["user_id"]) <= opted_in
    treated = audience.filter(~pl.col("is_holdout"))
    assert treated.group_by("as_of_date", "user_id").len()["len"].max() == 1
    per_campaign = treated.group_by("campaign_id").len()
    sizes = campaigns.join(per_campaign, on="campaign_id", how="left")
    assert (sizes["audience_size"] == sizes["len"].fill_null(0)).all()


def test_metrics_measure_the_simulated_events(graph) -> None:
    pipeline, _ = graph
    metrics = pipeline.warehouse.read("SELECT * FROM campaign_metrics")
    assert metrics["impressions"].sum() > 0
    assert metrics["clicks"].sum() > 0
    with_clicks = metrics.filter(pl.col("impressions") > 0)
    assert ((with_clicks["ctr"] - with_clicks["clicks"] / with_clicks["impressions"]).abs()
            < 1e-9).all()


def test_copy_without_a_key_is_template_copy_with_the_reason(graph) -> None:
    pipeline, _ = graph
    copy = pipeline.warehouse.read("SELECT * FROM campaign_copy")
    campaigns = pipeline.warehouse.read("SELECT campaign_id, as_of_date FROM ai_campaigns")
    assert copy.select("campaign_id", "as_of_date").sort("campaign_id").equals(
        campaigns.sort("campaign_id"))
    assert set(copy["copy_source"]) == {"template"}
    assert copy["fallback_reason"].str.contains("key").all()


def test_rerunning_a_day_gives_identical_tables(graph) -> None:
    pipeline, _ = graph
    before = {table: _table(pipeline, table, column, LAST)
              for table, column in RESULT_TABLES.items()}
    pipeline.run(ALL_ASSETS_JOB, LAST, LAST, NOW)
    for table, column in RESULT_TABLES.items():
        after = _table(pipeline, table, column, LAST)
        assert after.equals(before[table]), table
    assert before["behavioral_profiles"].height > 0


def test_operator_can_pause_and_resume_but_not_pause_twice(graph) -> None:
    pipeline, _ = graph
    warehouse = pipeline.warehouse
    running = warehouse.read("SELECT campaign_id FROM ai_campaigns "
                             "WHERE status IN ('active', 'scheduled') ORDER BY campaign_id")
    campaign_id = running["campaign_id"][0]
    assert set_campaign_status(warehouse, campaign_id, "paused", reason="test",
                               set_by="pytest", now=NOW) == "paused"
    with pytest.raises(InvalidTransition, match="cannot set a paused campaign to paused"):
        set_campaign_status(warehouse, campaign_id, "paused", set_by="pytest", now=NOW)
    with pytest.raises(UnknownCampaign):
        set_campaign_status(warehouse, "no-such-id", "paused", set_by="pytest", now=NOW)
    # The next materialization keeps the pause (it re-derives status from the override).
    pipeline.run(ALL_ASSETS_JOB, LAST, LAST, NOW + dt.timedelta(minutes=1))
    status = warehouse.read("SELECT status FROM ai_campaigns WHERE campaign_id = :id",
                            {"id": campaign_id})["status"][0]
    assert status == "paused"
    resumed = set_campaign_status(warehouse, campaign_id, "active", set_by="pytest",
                                  now=NOW + dt.timedelta(minutes=2))
    assert resumed in ("active", "scheduled")
    audit = warehouse.read("SELECT status FROM campaign_status_overrides WHERE campaign_id = :id "
                           "ORDER BY set_at", {"id": campaign_id})
    assert audit["status"].to_list() == ["paused", "active"]




def test_llm_copy_through_the_asset_then_served_from_the_cache(graph, monkeypatch) -> None:
    """Runs last in this module: it turns the first analyzed day's copy into LLM copy."""
    pipeline, _ = graph
    day = FIRST_ANALYZED  # campaigns are planned on the first day; later days are blocked
    assert _table(pipeline, "ai_campaigns", "as_of_date", day).height > 0
    with FakeTogether() as server:
        monkeypatch.setenv("TOGETHER_API_KEY", "test-key-not-secret")
        monkeypatch.setenv("TOGETHER_BASE_URL", server.base_url)
        # One range run over the analyzed days, as a backfill runs them: each partition's
        # metadata carries that day's calls and campaigns only, and they add up.
        result = pipeline.run(ALL_ASSETS_JOB, day, LAST, NOW)
        first_calls = server.calls
        copy = _table(pipeline, "campaign_copy", "as_of_date", day)
        pipeline.run(ALL_ASSETS_JOB, day, day, NOW)
        assert server.calls == first_calls  # an unchanged partition makes no call
    assert first_calls >= 1
    per_day = {materialization.partition: materialization.metadata
               for materialization in result.asset_materializations_for_node("campaign_copy")
               if "calls_made" in materialization.metadata}
    analyzed = {str(day + dt.timedelta(days=offset)) for offset in range((LAST - day).days + 1)}
    assert set(per_day) == analyzed
    assert sum(meta["calls_made"].value for meta in per_day.values()) == first_calls
    for partition, meta in per_day.items():
        planned = _table(pipeline, "ai_campaigns", "as_of_date", dt.date.fromisoformat(partition))
        assert meta["campaigns"].value == planned.height, partition
    assert per_day[str(day)]["calls_made"].value >= 1
    assert set(copy["copy_source"]) == {"llm"}
    assert copy["model"].is_not_null().all()
    assert set(_table(pipeline, "campaign_copy", "as_of_date", day)["copy_source"]) == {"cache"}
