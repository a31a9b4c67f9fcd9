"""Analytics, readiness and the OpenAPI schema; the same answers from both backends."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import TYPE_CHECKING

import polars as pl
import pytest
from fastapi.testclient import TestClient

if TYPE_CHECKING:
    from tests.api_fixtures import FixtureDays, MakeClient, Materialized

pytest_plugins = ["tests.api_fixtures"]
API = "/api/marketing"


def _metric_days(data: Materialized) -> list[dt.date]:
    return sorted(set(data.read("SELECT metric_date FROM campaign_metrics")["metric_date"]))


def test_roi_by_type_matches_the_metrics_and_plans(api_client: TestClient, api_auth: dict,
                                                   api_data: Materialized) -> None:
    joined = api_data.read(
        "SELECT c.campaign_type, m.campaign_id, m.revenue, m.cost, m.conversions "
        "FROM campaign_metrics m JOIN ai_campaigns c ON c.campaign_id = m.campaign_id")
    body = api_client.get(f"{API}/analytics/roi", headers=api_auth).json()
    days = _metric_days(api_data)
    assert body["end_date"] == days[-1].isoformat()  # default: ends at the latest metrics
    assert dt.date.fromisoformat(body["start_date"]) == days[-1] - dt.timedelta(days=29)
    groups = {g["group"]: g for g in body["groups"]}
    expected = joined.group_by("campaign_type").agg(
        pl.col("campaign_id").n_unique().alias("campaigns"), pl.col("revenue").sum(),
        pl.col("cost").sum(), pl.col("conversions").sum())
    assert set(groups) == set(expected["campaign_type"])
    for row in expected.iter_rows(named=True):
        group = groups[row["campaign_type"]]
        assert group["campaigns"] == row["campaigns"]
        assert group["conversions"] == row["conversions"]
        assert group["revenue"] == float(row["revenue"])
        if row["cost"]:
            assert group["roi"] == pytest.approx(float(Decimal(row["revenue"]) / row["cost"]))
        else:
            assert group["roi"] is None
    total_revenue = Decimal(str(joined["revenue"].sum()))
    assert body["totals"]["revenue"] == float(total_revenue)
    assert body["totals"]["campaigns"] == joined["campaign_id"].n_unique()
    assert body["top_campaigns"], "some campaign had a cost, so it has an ROI"
    rois = [c["roi"] for c in body["top_campaigns"]]
    assert rois == sorted(rois, reverse=True)


def test_roi_by_pattern_and_date_range(api_client: TestClient, api_auth: dict,
                                       api_data: Materialized) -> None:
    day = _metric_days(api_data)[0]
    body = api_client.get(f"{API}/analytics/roi", headers=api_auth, params={
                          "group_by": "target_pattern", "start_date": day.isoformat(),
        "end_date": day.isoformat()}).json()
    expected = api_data.read(
        "SELECT c.target_pattern, sum(m.revenue) AS revenue FROM campaign_metrics m "
        "JOIN ai_campaigns c ON c.campaign_id = m.campaign_id WHERE m.metric_date = :d "
        "GROUP BY 1", {"d": day})
    assert body["group_by"] == "target_pattern"
    assert {g["group"]: g["revenue"] for g in body["groups"]} == {
        row["target_pattern"]: float(row["revenue"]) for row in expected.iter_rows(named=True)}


def test_engagement_and_conversion_sum_the_days(api_client: TestClient, api_auth: dict,
                                                api_data: Materialized) -> None:
    daily = api_data.read(
        "SELECT metric_date, sum(impressions) AS impressions, sum(opens) AS opens, "
        "sum(clicks) AS clicks, sum(conversions) AS conversions, sum(revenue) AS revenue "
        "FROM campaign_metrics GROUP BY metric_date ORDER BY metric_date")
    engagement = api_client.get(f"{API}/analytics/engagement", headers=api_auth).json()
    assert [d["date"] for d in engagement["daily"]] == [
        d.isoformat() for d in daily["metric_date"]]
    assert [d["opens"] for d in engagement["daily"]] == daily["opens"].to_list()
    totals = engagement["totals"]
    assert totals["impressions"] == daily["impressions"].sum() > 0
    assert totals["open_rate"] == pytest.approx(totals["opens"] / totals["impressions"])
    assert totals["ctr"] == pytest.approx(totals["clicks"] / totals["impressions"])
    conversion = api_client.get(f"{API}/analytics/conversion", headers=api_auth).json()
    assert conversion["totals"]["conversions"] == daily["conversions"].sum()
    assert conversion["totals"]["revenue"] == float(Decimal(str(daily["revenue"].sum())))
    lift = api_data.read(
        "SELECT * FROM campaign_incrementality WHERE as_of_date = "
        "(SELECT max(as_of_date) FROM campaign_incrementality)")
    assert conversion["incrementality"]["treated_users"] == lift["treated_users"].sum()
    assert conversion["incrementality"]["campaigns"] == lift.height


@pytest.mark.parametrize("endpoint", ["roi", "engagement", "conversion"])
def test_analytics_reject_bad_ranges(api_client: TestClient, api_auth: dict,
                                     endpoint: str) -> None:
    url = f"{API}/analytics/{endpoint}"
    reversed_range = api_client.get(url, headers=api_auth,
                                    params={"start_date": "2026-02-10", "end_date": "2026-02-01"})
    assert reversed_range.status_code == 422
    assert reversed_range.json()["errors"][0]["parameter"] == "start_date"
    too_long = api_client.get(url, headers=api_auth,
                              params={"start_date": "2020-01-01", "end_date": "2026-02-01"})
    assert too_long.status_code == 422 and "at most 366 days" in too_long.json()["detail"]
    not_a_date = api_client.get(url, headers=api_auth, params={"start_date": "yesterday"})
    assert not_a_date.status_code == 422
    assert not_a_date.json()["errors"][0]["parameter"] == "start_date"


def test_ready_needs_no_token_and_dates_every_daily_step(api_client: TestClient,
                                                         api_data: Materialized,
                                                         api_days: FixtureDays) -> None:
    """The fixture ran every step through `api_days.last`, but plans campaigns only on
    `api_days.first`: readiness must say the data is complete through the last day, not
    stop at the last plan (it used to take the minimum over tables, plans included)."""
    answer = api_client.get("/ready")  # probes send no token
    assert answer.status_code == 200
    body = answer.json()
    version = api_data.read("SELECT max(version) AS v FROM schema_migrations")["v"][0]
    assert body["status"] == "ready"
    assert body["database"] == api_data.backend
    assert body["schema_version"] == version
    last = api_days.last.isoformat()
    assert body["latest_by_step"] == {
        "staged_partitions": last, "user_segments": last, "campaign_cycle": last}
    assert body["latest_partition"] == last
    assert body["latest_plan"] == api_days.first.isoformat()
    assert body["latest_metrics"] == _metric_days(api_data)[-1].isoformat()
    # On PostgreSQL the API connects with the read-only role, and says so.
    assert body["read_only"] is True


@pytest.mark.parametrize("path", ["/health", "/ready"])
def test_probes_answer_head_without_a_body(api_client: TestClient, path: str) -> None:
    answer = api_client.head(path)
    assert answer.status_code == 200 and answer.content == b""


def test_both_backends_give_the_same_answers(api_duckdb: Materialized,
                                             api_postgres: Materialized,
                                             make_api_client: MakeClient,
                                             api_auth: dict) -> None:
    """The same pipeline run (same seed) on DuckDB and PostgreSQL, read through the same
    SQL files: every endpoint must answer byte for byte the same JSON."""
    on_duckdb = make_api_client(api_duckdb)
    on_postgres = make_api_client(api_postgres)
    ids = api_duckdb.read("SELECT campaign_id FROM ai_campaigns")["campaign_id"]
    paths = [f"{API}/campaigns?limit=200", f"{API}/campaigns?status=active&limit=2&offset=1",
             f"{API}/segments", f"{API}/segments/new_shopper", f"{API}/analytics/roi",
             f"{API}/analytics/roi?group_by=target_pattern", f"{API}/analytics/engagement",
             f"{API}/analytics/conversion"]
    for campaign_id in ids:
        paths += [f"{API}/campaigns/{campaign_id}{suffix}"
                  for suffix in ("", "/metrics", "/recommendations", "/copy")]
    for path in paths:
        duck, pg = on_duckdb.get(path, headers=api_auth), on_postgres.get(
            path, headers=api_auth)
        assert duck.status_code == pg.status_code, path
        assert _comparable(path, duck.json()) == _comparable(path, pg.json()), path


def _comparable(path: str, body: dict) -> dict:
    """Template copy is stamped with the wall clock of the run that wrote it; every other
    figure of the two runs is deterministic."""
    return {k: v for k, v in body.items() if k != "created_at"} if path.endswith("/copy") else body


def test_openapi_documents_every_endpoint_with_models_and_auth(api_client: TestClient) -> None:
    schema = api_client.get("/openapi.json").json()
    expected = {"/campaigns", "/campaigns/{campaign_id}", "/campaigns/{campaign_id}/metrics",
                "/campaigns/{campaign_id}/recommendations", "/campaigns/{campaign_id}/copy",
                "/segments", "/segments/{pattern}", "/analytics/roi", "/analytics/engagement",
                "/analytics/conversion"}
    paths = schema["paths"]
    assert {f"{API}{path}" for path in expected} <= set(paths)
    for path, operations in paths.items():
        answer = operations["get"]["responses"]["200"]["content"]["application/json"]["schema"]
        assert answer.get("$ref", "").startswith("#/components/schemas/"), path
        if path.startswith(API):
            assert operations["get"]["security"] == [{"HTTPBearer": []}], path
            assert {"401", "403", "422", "429", "503"} <= set(operations["get"]["responses"])
    assert "HTTPBearer" in schema["components"]["securitySchemes"]
    campaign_list = schema["components"]["schemas"]["CampaignList"]["properties"]
    assert {"status", "total", "campaigns"} <= set(campaign_list)
