"""Text and UUID user ids end to end: an app keyed by UUIDs gets the same answers.

The same generated history is written twice: once with the generator's integer ids, once
with every id replaced by a UUID (users, transactions; on PostgreSQL the column is of
type `uuid`). Both run through the whole graph day by day. The profiles and segments must
be identical, user by user through the id mapping; every per-user output carries the id
as the source wrote it; the notification service's events, logged with those ids, are
measured.
"""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

import polars as pl
import psycopg
import pytest
from polars.testing import assert_frame_equal

from datagen.writers import write_source
from tests.pipeline_helpers import START, PipelineUnderTest, generated_source

DAYS = 10
LAST = START + dt.timedelta(days=DAYS - 1)
FIRST_GRAPH_DAY = LAST - dt.timedelta(days=2)
NOW = dt.datetime.combine(LAST + dt.timedelta(days=1), dt.time(6), tzinfo=dt.UTC)
PROFILE_COLUMNS_COMPARED = ["as_of_date", "source_user_id", "total_spent", "transaction_count",
                            "purchases_per_week", "top_category", "detected_patterns",
                            "rfm_segment", "net_spend"]


def _uuid_of(user_id: int) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"user/{user_id}"))


def _with_uuid_ids(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(pl.col("user_id").map_elements(
        lambda value: None if value is None else _uuid_of(value), return_dtype=pl.String))


def _run(pipeline: PipelineUnderTest) -> None:
    assert all(result.success
               for result in pipeline.run_graph_days(FIRST_GRAPH_DAY, LAST, NOW))


def _profiles(pipeline: PipelineUnderTest, mapping: dict[str, str] | None = None
              ) -> pl.DataFrame:
    frame = pipeline.warehouse.read("SELECT * FROM behavioral_profiles")
    if mapping is not None:
        frame = frame.with_columns(pl.col("source_user_id").replace_strict(mapping))
    return frame.select(PROFILE_COLUMNS_COMPARED).with_columns(
        pl.col("total_spent", "net_spend").cast(pl.Float64)).sort("as_of_date",
                                                                  "source_user_id")


@pytest.fixture(scope="module")
def integer_run(tmp_path_factory: pytest.TempPathFactory) -> PipelineUnderTest:
    root = tmp_path_factory.mktemp("integer_ids")
    pipeline = generated_source(root, f"duckdb:///{root}/source.duckdb", days=DAYS)
    _run(pipeline)
    return pipeline


def _uuid_source(root: Path, warehouse: str, request: pytest.FixtureRequest
                 ) -> PipelineUnderTest:
    if warehouse == "postgres":
        url = request.getfixturevalue("postgres_url")
        schema = f"t_{uuid.uuid4().hex[:10]}"
        pipeline = generated_source(root, url, days=DAYS, warehouse_url=url,
                                    warehouse_schema=f"{schema}_w", source_schema=schema)
    else:
        pipeline = generated_source(root, f"duckdb:///{root}/source.duckdb", days=DAYS)
        schema = "public"
    users, transactions = _with_uuid_ids(pipeline.users), _with_uuid_ids(pipeline.transactions)
    write_source(pipeline.settings.source_url, {"users": users, "transactions": transactions},
                 pg_schema=schema)
    if warehouse == "postgres":  # the app's own column type, read as text by the source
        with psycopg.connect(pipeline.settings.source_url, autocommit=True) as connection:
            for table in ("users", "transactions"):
                connection.execute(f"ALTER TABLE {schema}.{table} ALTER COLUMN user_id "
                                   "TYPE uuid USING user_id::uuid")
    pipeline.users, pipeline.transactions = users, transactions
    return pipeline


@pytest.mark.parametrize("warehouse", ["duckdb", "postgres"])
def test_uuid_ids_give_the_integer_run_answers_with_the_ids_as_written(
        warehouse: str, integer_run: PipelineUnderTest, tmp_path: Path,
        request: pytest.FixtureRequest) -> None:
    pipeline = _uuid_source(tmp_path, warehouse, request)
    _run(pipeline)
    to_uuid = {str(user): _uuid_of(user) for user in integer_run.users["user_id"]}

    expected = _profiles(integer_run, to_uuid)
    actual = _profiles(pipeline)
    assert actual.height > 100
    assert_frame_equal(actual, expected)
    keys = pipeline.warehouse.read("SELECT DISTINCT user_id, source_user_id "
                                   "FROM behavioral_profiles")
    assert (keys["user_id"] < 0).all()  # text ids: text keys
    assert keys["user_id"].n_unique() == keys["source_user_id"].n_unique() == keys.height

    segments = ["as_of_date", "behavior_pattern", "user_count", "total_spend", "median_spend"]
    query = "SELECT * FROM user_segments ORDER BY as_of_date, behavior_pattern"
    money = pl.col("total_spend", "median_spend").cast(pl.Float64)
    assert_frame_equal(pipeline.warehouse.read(query).select(segments).with_columns(money),
                       integer_run.warehouse.read(query).select(segments).with_columns(money))

    known = set(pipeline.users["user_id"])
    audience = pipeline.warehouse.read("SELECT * FROM campaign_audience")
    assert audience.height and set(audience["source_user_id"]) <= known
    expected_members = integer_run.warehouse.read(
        "SELECT campaign_id, source_user_id FROM campaign_audience").with_columns(
        pl.col("source_user_id").replace_strict(to_uuid))
    assert_frame_equal(audience.select("campaign_id", "source_user_id").sort(pl.all()),
                       expected_members.sort(pl.all()))  # who is reached: same people
    deliveries = pipeline.warehouse.read("SELECT * FROM campaign_delivery")
    assert deliveries.height and set(deliveries["source_user_id"]) <= known
    dictionary = pipeline.warehouse.read("SELECT * FROM user_keys")
    assert set(dictionary["source_user_id"]) <= known
    staged = integer_run.warehouse.read("SELECT * FROM user_keys")
    assert staged.is_empty()  # integer ids need no dictionary
