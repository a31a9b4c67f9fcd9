"""0003_campaigns.sql runs unchanged on DuckDB and PostgreSQL and matches the frames' schemas."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import polars as pl
import psycopg
import pytest

from devkit.databases import throwaway_database
from resources.warehouse import Warehouse
from tests.test_campaign_helpers import D, campaign, campaigns, metrics, metrics_row
from transforms.audience import AUDIENCE_SCHEMA
from transforms.campaign_metrics import DELIVERY_SCHEMA, INCREMENTALITY_SCHEMA, METRICS_SCHEMA
from transforms.campaign_selection import AI_CAMPAIGN_SCHEMA
from transforms.lifecycle import OVERRIDE_SCHEMA, STATUS_SCHEMA
from transforms.recommendations import RECOMMENDATION_SCHEMA

SQL = (Path(__file__).parents[1] / "sql" / "migrations" / "0003_campaigns.sql").read_text()
TABLES = {
    "ai_campaigns": AI_CAMPAIGN_SCHEMA,
    "campaign_audience": AUDIENCE_SCHEMA,
    "campaign_delivery": DELIVERY_SCHEMA,
    "campaign_metrics": METRICS_SCHEMA,
    "campaign_incrementality": INCREMENTALITY_SCHEMA,
    "campaign_recommendations": RECOMMENDATION_SCHEMA,
    "campaign_status_overrides": OVERRIDE_SCHEMA,
    "campaign_status": STATUS_SCHEMA,
}
ORIGINAL = {
    "ai_campaigns": ["campaign_id", "campaign_name", "campaign_type", "status",
                     "target_pattern", "audience_size", "expected_roi", "created_at",
                     "updated_at"],
    "campaign_metrics": ["metric_id", "campaign_id", "impressions", "clicks", "conversions",
                         "revenue", "recorded_at"],
    "campaign_delivery": ["delivery_id", "campaign_id", "user_id", "delivered_at", "opened",
                          "clicked"],
}
COLUMNS_SQL = ("SELECT table_name, column_name FROM information_schema.columns "
               "WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position")


@pytest.fixture(scope="module")
def pg_url(postgres_server_url: str) -> Iterator[str]:
    """A throwaway database for this module (the migration is applied raw, to `public`)."""
    with throwaway_database(postgres_server_url, "campaign_sql") as url:
        yield url


def _columns(rows: list[tuple[str, str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for table, column in rows:
        out.setdefault(table, []).append(column)
    return out


def _check(columns: dict[str, list[str]]) -> None:
    for table, schema in TABLES.items():
        assert columns[table] == list(schema), table
    for table, original in ORIGINAL.items():
        assert set(original) <= set(columns[table]), table


def test_migration_on_duckdb_in_memory_twice() -> None:
    connection = duckdb.connect()
    connection.execute(SQL)
    connection.execute(SQL)  # IF NOT EXISTS everywhere: a second run changes nothing
    _check(_columns(connection.execute(COLUMNS_SQL).fetchall()))


def test_migration_on_postgres_twice(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as connection:
        connection.execute(SQL)  # type: ignore[arg-type]
        connection.execute(SQL)  # type: ignore[arg-type]
        _check(_columns(connection.execute(COLUMNS_SQL).fetchall()))  # type: ignore[arg-type]


def test_frames_round_trip_through_the_warehouse(warehouse: Warehouse) -> None:
    plan = campaigns(campaign("c1", "weekend_shopper", D, D, as_of_date=D),
                     campaign("c2", "inactive", D, D, as_of_date=D))
    daily = metrics(metrics_row("c1", D, impressions=10, clicks=2, conversions=1,
                                revenue="12.34", cost="5.00"))
    for _ in range(2):  # a rerun replaces the partition: same rows, no duplicate keys
        warehouse.replace_partition("ai_campaigns", plan, partition_value=D)
        warehouse.replace_partition("campaign_metrics", daily, partition_value=D,
                                    partition_column="metric_date")
    back = warehouse.read("SELECT * FROM ai_campaigns ORDER BY campaign_id")
    assert back["campaign_id"].to_list() == ["c1", "c2"]
    assert back["budget"].cast(pl.String).to_list() == ["100.00", "100.00"]
    assert back["offer_json"].to_list() == plan["offer_json"].to_list()
    row = warehouse.read("SELECT revenue, cost, impressions FROM campaign_metrics").row(0)
    assert [str(row[0]), str(row[1]), row[2]] == ["12.34", "5.00", 10]


def test_the_current_status_and_since_when_come_from_the_status_history(
        warehouse: Warehouse) -> None:
    """`apply_campaign_status`: ai_campaigns gets the latest day's status, and `updated_at`
    is the end of the first day of that status's unbroken run (the latest day's end when
    it began that day), on both engines; an older day's statuses never win."""
    import datetime as dt

    days = [D + dt.timedelta(days=offset) for offset in range(5)]
    warehouse.replace_partition("ai_campaigns", campaigns(
        campaign("c1", "inactive", days[1], days[4], as_of_date=days[0])), partition_value=days[0])
    history = ["scheduled", "active", "active", "paused", "paused"]
    for day, status in zip(days, history, strict=True):
        warehouse.replace_partition("campaign_status", pl.DataFrame(
            [{"campaign_id": "c1", "as_of_date": day, "status": status, "status_reason": "t"}],
            schema=STATUS_SCHEMA), partition_value=day)

    def apply(day: dt.date, end: dt.datetime) -> tuple[str, dt.datetime]:
        warehouse.execute_named("apply_campaign_status", {"day": day, "day_end": end})
        return warehouse.read("SELECT status, updated_at FROM ai_campaigns").row(0)

    midnight = dt.time(tzinfo=dt.UTC)
    noon = dt.datetime.combine(days[4], dt.time(12), dt.UTC)
    # paused since days[3]: the end of days[3] is midnight before days[4]
    assert apply(days[4], noon) == ("paused", dt.datetime.combine(days[4], midnight))
    # as of days[2], active since days[1]
    assert apply(days[2], dt.datetime.combine(days[3], midnight)) == (
        "active", dt.datetime.combine(days[2], midnight))
    # a status that began on the day itself: that day's end, even mid-day
    assert apply(days[3], noon) == ("paused", noon)
