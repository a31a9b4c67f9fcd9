"""Segment endpoints over pipeline-produced data, on DuckDB and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import polars as pl
from fastapi.testclient import TestClient

from transforms.thresholds import PATTERNS

if TYPE_CHECKING:
    from tests.api_fixtures import Materialized

pytest_plugins = ["tests.api_fixtures"]
API = "/api/marketing"


def _latest_day(data: Materialized) -> dt.date:
    return data.read("SELECT max(as_of_date) AS d FROM user_segments")["d"][0]


def test_segments_default_to_the_latest_day(api_client: TestClient, api_auth: dict,
                                            api_data: Materialized) -> None:
    day = _latest_day(api_data)
    expected = api_data.read("SELECT * FROM user_segments WHERE as_of_date = :d", {"d": day})
    body = api_client.get(f"{API}/segments", headers=api_auth).json()
    assert body["status"] == "success"
    assert body["as_of_date"] == day.isoformat()
    assert body["total"] == len(PATTERNS) == expected.height
    counts = {s["behavior_pattern"]: s["user_count"] for s in body["segments"]}
    assert counts == dict(zip(expected["behavior_pattern"], expected["user_count"], strict=True))
    sizes = [s["user_count"] for s in body["segments"]]
    assert sizes == sorted(sizes, reverse=True)
    assert sum(sizes) > 0


def test_segments_of_an_earlier_day(api_client: TestClient, api_auth: dict,
                                    api_data: Materialized) -> None:
    days = sorted(set(api_data.read("SELECT as_of_date FROM user_segments")["as_of_date"]))
    assert len(days) >= 2
    body = api_client.get(f"{API}/segments", params={"as_of": days[0].isoformat()},
                          headers=api_auth).json()
    assert body["as_of_date"] == days[0].isoformat()
    assert {s["as_of_date"] for s in body["segments"]} == {days[0].isoformat()}


def test_a_day_without_segments_is_404_naming_the_latest(api_client: TestClient, api_auth: dict,
                                                         api_data: Materialized) -> None:
    answer = api_client.get(f"{API}/segments", params={"as_of": "2020-01-01"}, headers=api_auth)
    assert answer.status_code == 404
    assert _latest_day(api_data).isoformat() in answer.json()["detail"]


def test_segment_detail_overlap_history_and_campaigns(
        api_client: TestClient, api_auth: dict, api_data: Materialized) -> None:
    day = _latest_day(api_data)
    pattern = api_data.read(
        "SELECT behavior_pattern FROM user_segments WHERE as_of_date = :d "
        "ORDER BY user_count DESC, behavior_pattern LIMIT 1", {"d": day})["behavior_pattern"][0]
    body = api_client.get(f"{API}/segments/{pattern}", headers=api_auth).json()
    assert body["segment"]["behavior_pattern"] == pattern
    overlap = api_data.read(
        "SELECT * FROM segment_overlap WHERE as_of_date = :d AND (pattern_a = :p OR "
        "pattern_b = :p)", {"d": day, "p": pattern})
    expected = {(row["pattern_b"] if row["pattern_a"] == pattern else row["pattern_a"]):
                row["user_count"] for row in overlap.iter_rows(named=True)}
    assert {o["pattern"]: o["user_count"] for o in body["overlap"]} == expected
    assert len(body["overlap"]) == len(PATTERNS) - 1
    history_days = api_data.read(
        "SELECT as_of_date FROM user_segments WHERE behavior_pattern = :p ORDER BY as_of_date",
        {"p": pattern})["as_of_date"]
    assert [h["as_of_date"] for h in body["history"]] == [d.isoformat() for d in history_days]
    assert body["history"][-1]["user_count"] == body["segment"]["user_count"]
    campaigns = api_data.read("SELECT status FROM ai_campaigns WHERE target_pattern = :p",
                              {"p": pattern})
    by_status = campaigns.group_by("status").len()
    assert body["campaigns_by_status"] == dict(zip(by_status["status"], by_status["len"],
                                                   strict=True))


def test_an_unknown_pattern_is_404_listing_the_known_ones(api_client: TestClient,
                                                          api_auth: dict) -> None:
    answer = api_client.get(f"{API}/segments/big_spender", headers=api_auth)
    assert answer.status_code == 404
    assert "big_spender" in answer.json()["detail"]
    assert all(pattern in answer.json()["detail"] for pattern in PATTERNS)


def test_every_pattern_is_served(api_client: TestClient, api_auth: dict,
                                 api_data: Materialized) -> None:
    day = _latest_day(api_data)
    stored = api_data.read("SELECT behavior_pattern, user_count FROM user_segments "
                           "WHERE as_of_date = :d", {"d": day})
    for pattern, users in stored.iter_rows():
        body = api_client.get(f"{API}/segments/{pattern}", headers=api_auth).json()
        assert body["segment"]["user_count"] == users
    assert set(stored["behavior_pattern"]) == set(PATTERNS)
    assert stored.filter(pl.col("user_count") > 0).height >= 3
