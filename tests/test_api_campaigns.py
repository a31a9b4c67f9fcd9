"""Campaign endpoints over pipeline-produced data, on DuckDB and PostgreSQL.

Expectations are read from the warehouse the pipeline wrote (as the owner), so the API
is checked against the data, not against numbers copied into the test.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import TYPE_CHECKING

import polars as pl
import pytest
from fastapi.testclient import TestClient

if TYPE_CHECKING:
    from tests.api_fixtures import FixtureDays, Materialized

pytest_plugins = ["tests.api_fixtures"]
API = "/api/marketing"
EXAMPLE_1_FIELDS = {"campaign_id", "campaign_name", "campaign_type", "status", "target_pattern",
                    "audience_size", "expected_roi", "created_at"}
EXAMPLE_3_METRICS = {"impressions", "clicks", "conversions", "ctr", "conversion_rate", "revenue",
                     "roi", "cost"}


def _campaigns(data: Materialized) -> pl.DataFrame:
    return data.read("SELECT * FROM ai_campaigns ORDER BY created_at DESC, campaign_id")


def _measured_campaign(data: Materialized) -> str:
    """The campaign with the most impressions: the one every figure is non-trivial for."""
    frame = data.read("SELECT campaign_id, sum(impressions) AS n FROM campaign_metrics "
                      "GROUP BY campaign_id ORDER BY n DESC, campaign_id LIMIT 1")
    assert frame["n"][0] > 0, "the pipeline produced no impressions: the fixture is too small"
    return frame["campaign_id"][0]


def test_list_has_the_original_shape_and_every_campaign(api_client: TestClient, api_auth: dict,
                                                        api_data: Materialized) -> None:
    expected = _campaigns(api_data)
    assert expected.height >= 3
    body = api_client.get(f"{API}/campaigns", headers=api_auth).json()
    assert body["status"] == "success"
    assert body["total"] == expected.height
    assert [c["campaign_id"] for c in body["campaigns"]] == expected["campaign_id"].to_list()
    first = body["campaigns"][0]
    assert set(first) >= EXAMPLE_1_FIELDS
    row = expected.row(0, named=True)
    assert first["expected_roi"] == pytest.approx(row["expected_roi"])
    assert first["audience_size"] == row["audience_size"]
    assert dt.datetime.fromisoformat(first["created_at"]) == row["created_at"]


def test_pages_cover_every_campaign_once_in_order(api_client: TestClient, api_auth: dict,
                                                  api_data: Materialized) -> None:
    expected = _campaigns(api_data)["campaign_id"].to_list()
    seen: list[str] = []
    for offset in range(0, len(expected), 2):
        page = api_client.get(f"{API}/campaigns", params={"limit": 2, "offset": offset},
                              headers=api_auth).json()
        assert page["total"] == len(expected)
        assert (page["limit"], page["offset"]) == (2, offset)
        seen += [c["campaign_id"] for c in page["campaigns"]]
    assert seen == expected
    past_the_end = api_client.get(f"{API}/campaigns", params={"offset": len(expected) + 5},
                                  headers=api_auth).json()
    assert past_the_end["campaigns"] == []
    assert past_the_end["total"] == len(expected)


@pytest.mark.parametrize(("param", "column"), [("status", "status"), ("type", "campaign_type"),
                                               ("pattern", "target_pattern")])
def test_filters_match_the_warehouse(api_client: TestClient, api_auth: dict,
                                     api_data: Materialized, param: str, column: str) -> None:
    campaigns = _campaigns(api_data)
    value = campaigns[column][0]
    body = api_client.get(f"{API}/campaigns", params={param: value}, headers=api_auth).json()
    matching = campaigns.filter(pl.col(column) == value)
    assert body["total"] == matching.height
    assert {c["campaign_id"] for c in body["campaigns"]} == set(matching["campaign_id"])
    assert all(c[column] == value for c in body["campaigns"])


def test_filters_combine_and_a_valid_value_with_no_match_gives_zero(
        api_client: TestClient, api_auth: dict, api_data: Materialized) -> None:
    row = _campaigns(api_data).row(0, named=True)
    both = api_client.get(f"{API}/campaigns", headers=api_auth, params={
                          "type": row["campaign_type"], "pattern": row["target_pattern"]}).json()
    assert row["campaign_id"] in {c["campaign_id"] for c in both["campaigns"]}
    assert all(c["campaign_type"] == row["campaign_type"] for c in both["campaigns"])
    statuses = set(_campaigns(api_data)["status"])
    absent = next(s for s in ("archived", "paused", "scheduled", "expired") if s not in statuses)
    none = api_client.get(f"{API}/campaigns", params={"status": absent}, headers=api_auth)
    assert none.json()["total"] == 0 and none.json()["campaigns"] == []


def test_campaign_detail_matches_the_plan(api_client: TestClient, api_auth: dict,
                                          api_data: Materialized) -> None:
    row = _campaigns(api_data).row(0, named=True)
    body = api_client.get(f"{API}/campaigns/{row['campaign_id']}", headers=api_auth).json()
    campaign = body["campaign"]
    assert body["status"] == "success"
    assert campaign["offer"] == json.loads(row["offer_json"])
    assert campaign["budget"] == float(row["budget"])
    assert campaign["selection_reason"] == row["selection_reason"]
    assert dt.date.fromisoformat(campaign["start_date"]) == row["start_date"]
    assert campaign["status_reason"]  # the lifecycle says why it has its status


def test_metrics_follow_example_3_and_sum_the_daily_rows(
        api_client: TestClient, api_auth: dict, api_data: Materialized) -> None:
    campaign_id = _measured_campaign(api_data)
    daily = api_data.read("SELECT * FROM campaign_metrics WHERE campaign_id = :c "
                          "ORDER BY metric_date", {"c": campaign_id})
    body = api_client.get(f"{API}/campaigns/{campaign_id}/metrics", headers=api_auth).json()
    assert {"campaign_id", "metrics", "daily_breakdown"} <= set(body)
    metrics = body["metrics"]
    assert set(metrics) >= EXAMPLE_3_METRICS
    assert metrics["impressions"] == daily["impressions"].sum()
    assert metrics["clicks"] == daily["clicks"].sum()
    assert metrics["conversions"] == daily["conversions"].sum()
    revenue, cost = Decimal(str(daily["revenue"].sum())), Decimal(str(daily["cost"].sum()))
    assert metrics["revenue"] == float(revenue) and metrics["cost"] == float(cost)
    # DESIGN.md's definitions, from the sums (not an average of daily ratios):
    assert metrics["ctr"] == pytest.approx(metrics["clicks"] / metrics["impressions"])
    if metrics["clicks"]:
        assert metrics["conversion_rate"] == pytest.approx(
            metrics["conversions"] / metrics["clicks"])
    assert metrics["roi"] == pytest.approx(float(revenue / cost))
    days = body["daily_breakdown"]
    assert [d["date"] for d in days] == [d.isoformat() for d in daily["metric_date"]]
    assert [d["impressions"] for d in days] == daily["impressions"].to_list()
    lift = api_data.read("SELECT * FROM campaign_incrementality WHERE campaign_id = :c "
                         "ORDER BY as_of_date DESC LIMIT 1", {"c": campaign_id})
    assert body["incrementality"]["treated_users"] == lift["treated_users"][0]
    assert body["incrementality"]["as_of_date"] == lift["as_of_date"][0].isoformat()


def test_metrics_date_range_keeps_only_those_days(api_client: TestClient, api_auth: dict,
                                                  api_data: Materialized) -> None:
    campaign_id = _measured_campaign(api_data)
    day = api_data.read("SELECT min(metric_date) AS d FROM campaign_metrics")["d"][0]
    one_day = {"start_date": day.isoformat(), "end_date": day.isoformat()}
    body = api_client.get(f"{API}/campaigns/{campaign_id}/metrics", headers=api_auth,
                          params=one_day).json()
    assert [d["date"] for d in body["daily_breakdown"]] == [day.isoformat()]
    assert body["metrics"]["impressions"] == body["daily_breakdown"][0]["impressions"]


def test_recommendations_are_the_current_days_with_evidence(
        api_client: TestClient, api_auth: dict, api_data: Materialized) -> None:
    recs = api_data.read("SELECT * FROM campaign_recommendations ORDER BY as_of_date")
    assert recs.height, "the pipeline produced no recommendation: the fixture is too small"
    first = recs.row(0, named=True)
    url = f"{API}/campaigns/{first['campaign_id']}/recommendations"
    then = api_client.get(url, params={"as_of": first["as_of_date"].isoformat()},
                          headers=api_auth).json()
    assert then["as_of_date"] == first["as_of_date"].isoformat()
    rule = next(r for r in then["recommendations"] if r["rule"] == first["rule"])
    assert rule["evidence"] == json.loads(first["evidence"])
    assert rule["severity"] == first["severity"]
    current = api_client.get(url, headers=api_auth).json()
    latest_metrics = api_data.read("SELECT max(metric_date) AS d FROM campaign_metrics")
    assert current["as_of_date"] == latest_metrics["d"][0].isoformat()
    expected = recs.filter((pl.col("campaign_id") == first["campaign_id"])
                           & (pl.col("as_of_date") == latest_metrics["d"][0]))
    assert sorted(r["rule"] for r in current["recommendations"]) == sorted(expected["rule"])


def test_copy_has_example_2_fields(api_client: TestClient, api_auth: dict,
                                   api_data: Materialized) -> None:
    row = api_data.read("SELECT * FROM campaign_copy ORDER BY campaign_id LIMIT 1").row(
        0, named=True)
    body = api_client.get(f"{API}/campaigns/{row['campaign_id']}/copy", headers=api_auth).json()
    assert body["status"] == "success"
    assert body["headline"] == row["headline"]
    assert body["email_body"] == row["email_body"]
    assert body["ctas"] == list(row["ctas"]) and len(body["ctas"]) == 3
    assert body["subject_lines"] == list(row["subject_lines"])
    assert body["copy_source"] == row["copy_source"]


@pytest.mark.parametrize("suffix", ["", "/metrics", "/recommendations", "/copy"])
def test_an_unknown_campaign_is_404(api_client: TestClient, api_auth: dict, suffix: str) -> None:
    answer = api_client.get(f"{API}/campaigns/00000000-0000-4000-8000-000000000000{suffix}",
                            headers=api_auth)
    assert answer.status_code == 404
    assert answer.json()["code"] == "not_found"
    assert "00000000-0000-4000-8000-000000000000" in answer.json()["detail"]


def test_the_analysed_days_are_the_fixture_days(api_data: Materialized,
                                                api_days: FixtureDays) -> None:
    """Guards the other tests' premise: campaigns were planned inside the analysed days."""
    planned = set(api_data.read("SELECT DISTINCT as_of_date FROM ai_campaigns")["as_of_date"])
    first, last = api_days.first, api_days.last
    assert planned and planned <= {first + dt.timedelta(days=i)
                                   for i in range((last - first).days + 1)}
