"""Tests of the seeded demo data generator and its writers (DuckDB, CSV, Parquet, PostgreSQL)."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
import psycopg
import pytest
from polars.testing import assert_frame_equal
from psycopg import sql

from datagen.config import GeneratorConfig
from datagen.generator import (
    BROKEN_ROW_KINDS,
    broken_kind_counts,
    generate_tables,
    generate_transactions,
    generate_users,
)
from datagen.writers import CSV_ONLY_BROKEN_ROW_KINDS, Target, parse_target, write_source
from transforms.columns import CAMPAIGN_EVENT_SCHEMA

START = date(2026, 7, 29)
DAY = timedelta(days=1)
TRANSACTION_SCHEMA = {
    "transaction_id": pl.String(),
    "user_id": pl.Int64(),
    "amount": pl.Float64(),
    "occurred_at": pl.Datetime("us", "UTC"),
    "currency": pl.String(),
    "category": pl.String(),
    "merchant_id": pl.String(),
    "location_id": pl.String(),
}


Demo = tuple[GeneratorConfig, dict[str, pl.DataFrame]]


@pytest.fixture(scope="module")
def demo() -> Demo:
    """The default demo (5,000 users, 120 days) on a fixed start date."""
    cfg = GeneratorConfig(start_date=START)
    return cfg, generate_tables(cfg)


@pytest.fixture(scope="module")
def small() -> dict[str, pl.DataFrame]:
    """A small data set for the writer round trips (broken rows included), with a few
    campaign events since the writers take them too."""
    tables = generate_tables(GeneratorConfig(users=300, days=40, start_date=START, seed=3))
    events = pl.DataFrame(
        {
            "event_id": ["e1", "e2", "e3"],
            "campaign_id": ["c1", "c1", "c1"],
            "user_id": [1, 1, 2],
            "event_type": ["delivered", "converted", "delivered"],
            "occurred_at": [datetime(2026, 8, 1, 9, tzinfo=UTC)] * 3,
            "revenue_cents": [None, 4_250, None],
        },
        schema=CAMPAIGN_EVENT_SCHEMA,
    )
    return tables | {"campaign_events": events}


# --------------------------------------------------------------------------- generator


def test_same_config_gives_identical_frames() -> None:
    cfg = GeneratorConfig(users=400, days=50, start_date=START, seed=11)
    first, second = generate_tables(cfg), generate_tables(cfg)
    for name in ("users", "transactions"):
        assert first[name].equals(second[name]), name
    other = generate_tables(GeneratorConfig(users=400, days=50, start_date=START, seed=12))
    assert not first["transactions"].equals(other["transactions"])


def test_default_start_date_ends_history_today() -> None:
    cfg = GeneratorConfig(days=10)
    assert cfg.end_date - DAY == datetime.now(UTC).date()


def test_columns_and_dtypes(demo: Demo) -> None:
    _, tables = demo
    assert dict(tables["transactions"].schema) == TRANSACTION_SCHEMA
    assert dict(tables["users"].schema) == {
        "user_id": pl.Int64(),
        "signed_up_at": pl.Datetime("us", "UTC"),
        "marketing_opt_in": pl.Boolean(),
        "email": pl.String(),
    }


def test_sizes_scale_with_config() -> None:
    for user_count, days in ((2_000, 60), (4_000, 60), (2_000, 120)):
        cfg = GeneratorConfig(
            users=user_count, days=days, start_date=START, transactions_per_user_per_day=0.2
        )
        users = generate_users(cfg)
        clean = generate_transactions(cfg, users).height - cfg.broken_rows
        assert users.height == user_count
        assert abs(clean / cfg.expected_transactions - 1) < 0.1


def test_default_demo_size(demo: Demo) -> None:
    cfg, tables = demo
    assert 150_000 <= tables["transactions"].height <= 250_000
    assert tables["users"].height == cfg.users
    opt_in = tables["users"]["marketing_opt_in"].mean()
    assert 0.65 < opt_in < 0.75  # type: ignore[operator]


def test_every_broken_kind_present(demo: Demo) -> None:
    cfg, tables = demo
    tx = tables["transactions"]
    expected = broken_kind_counts(cfg.broken_rows)
    assert set(expected) == set(BROKEN_ROW_KINDS)
    assert all(count >= 3 for count in expected.values())
    ids = pl.col("transaction_id")
    duplicated = tx.filter(ids.is_duplicated() & ids.is_not_null())
    found = {
        "duplicate_transaction_id": duplicated["transaction_id"].n_unique(),
        "null_transaction_id": tx["transaction_id"].null_count(),
        "null_user_id": tx["user_id"].null_count(),
        "nan_amount": int(tx["amount"].is_nan().sum()),
        "null_amount": tx["amount"].null_count(),
        "future_occurred_at": tx.filter(pl.col("occurred_at").dt.year() == 2099).height,
        "null_occurred_at": tx["occurred_at"].null_count(),
    }
    assert found == expected
    # A duplicate is the same id (and time) with another amount.
    per_id = duplicated.group_by("transaction_id").agg(
        pl.col("amount").n_unique(), pl.col("occurred_at").n_unique().alias("times")
    )
    assert (per_id["amount"] == 2).all() and (per_id["times"] == 1).all()


def test_sorted_by_time_with_nulls_last(demo: Demo) -> None:
    occurred = demo[1]["transactions"]["occurred_at"]
    dated = occurred.drop_nulls()
    assert dated.is_sorted()
    assert occurred.tail(occurred.null_count()).is_null().all()


def test_history_window_and_signup(demo: Demo) -> None:
    cfg, tables = demo
    tx = tables["transactions"].filter(
        pl.col("occurred_at").dt.year() < 2099, pl.col("user_id").is_not_null()
    )
    assert tx["occurred_at"].min() >= cfg.start_at  # type: ignore[operator]
    assert tx["occurred_at"].max() < cfg.end_at  # type: ignore[operator]
    joined = tx.join(tables["users"], on="user_id", how="left")
    assert joined["signed_up_at"].null_count() == 0
    assert (joined["occurred_at"] >= joined["signed_up_at"]).all()


def test_spend_is_heavy_tailed(demo: Demo) -> None:
    spend = (
        _purchases(demo[1]["transactions"], demo[0].end_at)
        .group_by("user_id")
        .agg(pl.col("cents").sum())["cents"]
        .sort(descending=True)
    )
    top = spend.head(math.ceil(0.2 * spend.len())).sum()
    assert top / spend.sum() > 0.5


def test_refunds_zeros_currencies(demo: Demo) -> None:
    tx = demo[1]["transactions"].filter(pl.col("amount").is_not_nan())
    refund_share = (tx["amount"] < 0).mean()
    assert 0.01 < refund_share < 0.03  # type: ignore[operator]
    assert (tx["amount"] == 0).sum() > 0
    assert (tx["currency"] == "USD").mean() > 0.9  # type: ignore[operator]
    assert tx["category"].n_unique() == 8


def test_weekly_rhythm(demo: Demo) -> None:
    weekday = demo[1]["transactions"]["occurred_at"].drop_nulls().dt.weekday()
    saturday, tuesday = (weekday == 6).sum(), (weekday == 2).sum()
    assert saturday > 1.3 * tuesday


def test_every_pattern_shows_up_on_the_last_day(
    demo: Demo,
) -> None:
    """Check against an independent, compact reading of DESIGN.md's eight rules."""
    cfg, tables = demo
    counts = _pattern_counts(tables["transactions"], cfg.end_at)
    profiled = counts.pop("profiled_users")
    assert profiled > 0.9 * cfg.users
    for pattern, users in counts.items():
        assert users >= 0.02 * profiled, (pattern, users, counts)


def test_custom_categories_and_small_history() -> None:
    cfg = GeneratorConfig(
        users=200,
        days=10,
        start_date=START,
        categories=("a", "b", "c"),
        merchants=30,
        broken_rows=0,
    )
    tx = generate_tables(cfg)["transactions"]
    assert set(tx["category"].unique()) <= {"a", "b", "c"}
    assert tx["transaction_id"].is_unique().all()


def test_config_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        GeneratorConfig(users=0)
    with pytest.raises(ValueError):
        GeneratorConfig(refund_share=1.5)


# --------------------------------------------------------------------------- writers


def test_parse_target(tmp_path: Path) -> None:
    assert parse_target("duckdb:///data/demo.duckdb") == Target("duckdb", "data/demo.duckdb")
    absolute = Target("duckdb", f"{tmp_path}/x.duckdb")
    assert parse_target(f"duckdb:///{tmp_path}/x.duckdb") == absolute
    assert parse_target("postgresql+psycopg://u@h/db").kind == "postgres"
    assert parse_target("file:///exports") == Target("directory", "/exports")
    assert parse_target("exports") == Target("directory", "exports")
    with pytest.raises(ValueError):
        parse_target("s3://bucket/exports")


def test_write_source_rejects_unknown_table_or_format(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        write_source(str(tmp_path), {"orders": pl.DataFrame()})
    with pytest.raises(ValueError):
        write_source(str(tmp_path), {}, file_format="xlsx")


def test_duckdb_round_trip(tmp_path: Path, small: dict[str, pl.DataFrame]) -> None:
    target = f"duckdb:///{tmp_path}/source.duckdb"
    write_source(target, small)
    counts = write_source(target, small)  # a rerun replaces, never appends
    assert counts == {name: frame.height for name, frame in small.items()}
    with duckdb.connect(f"{tmp_path}/source.duckdb", read_only=True) as con:
        for name, frame in small.items():
            # DuckDB hands TIMESTAMPTZ back in its session zone, here spelled "Etc/UTC".
            back = (
                con.sql(f"SELECT * FROM main.{name}")
                .pl()
                .with_columns(pl.col(pl.Datetime).dt.convert_time_zone("UTC"))
            )
            assert_frame_equal(back, frame, check_row_order=False)


def test_parquet_round_trip(tmp_path: Path, small: dict[str, pl.DataFrame]) -> None:
    counts = write_source(f"file://{tmp_path}/exports", small, file_format="parquet")
    assert counts == {name: frame.height for name, frame in small.items()}
    for name, frame in small.items():
        assert_frame_equal(pl.read_parquet(tmp_path / "exports" / f"{name}.parquet"), frame)
    assert sorted(p.name for p in (tmp_path / "exports").iterdir()) == [
        "campaign_events.parquet",
        "transactions.parquet",
        "users.parquet",
    ]


def test_csv_round_trip_with_text_only_breakage(
    tmp_path: Path, small: dict[str, pl.DataFrame]
) -> None:
    counts = write_source(str(tmp_path), small, file_format="csv")
    transactions = small["transactions"]
    assert counts["transactions"] == transactions.height + len(CSV_ONLY_BROKEN_ROW_KINDS)
    text = pl.read_csv(tmp_path / "transactions.csv", infer_schema=False)
    is_extra = pl.col("transaction_id").str.starts_with("tcsv_").fill_null(False)
    extra = text.filter(is_extra)
    assert extra["amount"].to_list().count("abc") == 1
    assert "not-a-date" in extra["occurred_at"].to_list()
    overlong = extra.filter(pl.col("transaction_id") == "tcsv_overlong_user_id")["user_id"][0]
    assert len(overlong) == 300
    typed = text.filter(~is_extra).with_columns(
        pl.col("user_id").cast(pl.Int64),
        pl.col("amount").cast(pl.Float64),
        pl.col("occurred_at").str.to_datetime("%Y-%m-%dT%H:%M:%S%.f%:z", time_unit="us"),
    )
    assert_frame_equal(typed, transactions)
    users = pl.read_csv(tmp_path / "users.csv", try_parse_dates=True)
    assert_frame_equal(users, small["users"], check_dtypes=False)


def test_postgres_round_trip(postgres_url: str, small: dict[str, pl.DataFrame]) -> None:
    """Uses the shared session database (tests/conftest.py), which fails loudly, not skips."""
    pg_url = postgres_url
    write_source(pg_url, small, pg_schema="app")
    counts = write_source(pg_url, small, pg_schema="app")  # drop-and-recreate: idempotent
    assert counts == {name: frame.height for name, frame in small.items()}
    with psycopg.connect(pg_url) as conn:
        for name, frame in small.items():
            cur = conn.execute(sql.SQL("SELECT * FROM app.{}").format(sql.Identifier(name)))
            rows = cur.fetchall()
            back = pl.DataFrame(rows, schema=frame.schema, orient="row")
            assert_frame_equal(back, frame, check_row_order=False)
        types = dict(
            conn.execute(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = 'app' AND table_name = 'transactions'"
            ).fetchall()
        )
        indexes = conn.execute(
            "SELECT indexname FROM pg_indexes "
            "WHERE schemaname = 'app' AND tablename = 'transactions'"
        ).fetchall()
    assert types["amount"] == "double precision"
    assert types["occurred_at"] == "timestamp with time zone"
    assert types["user_id"] == "bigint"
    assert indexes == [("transactions_occurred_at_idx",)]


# --------------------------------------------------------------------------- pattern oracle


def _purchases(transactions: pl.DataFrame, as_of_end: datetime) -> pl.DataFrame:
    """Valid purchases before as_of_end, first copy of a duplicated id, money in cents."""
    return (
        transactions.filter(
            pl.col("transaction_id").is_not_null(),
            pl.col("user_id").is_not_null(),
            pl.col("amount").is_not_null() & pl.col("amount").is_not_nan(),
            pl.col("occurred_at") < as_of_end,
        )
        .unique("transaction_id", keep="first", maintain_order=True)
        .filter(pl.col("amount") > 0)
        .with_columns(cents=(pl.col("amount") * 100).round().cast(pl.Int64))
    )


def _window_figures(purchases: pl.DataFrame, start: datetime) -> pl.DataFrame:
    window = purchases.filter(pl.col("occurred_at") >= start)
    bucket = (pl.col("occurred_at") - start).dt.total_days() // 30
    figures = window.group_by("user_id").agg(
        n=pl.len(),
        spend=pl.col("cents").sum(),
        weekend=(pl.col("occurred_at").dt.weekday() >= 6).mean(),
        locations=pl.col("location_id").n_unique(),
        **{f"b{i}": pl.col("cents").filter(bucket == i).sum() for i in range(3)},
    )
    top_category = (
        window.group_by("user_id", "category")
        .agg(pl.col("cents").sum())
        .group_by("user_id")
        .agg(top=pl.col("cents").max())
    )
    return figures.join(top_category, on="user_id")


def _pattern_counts(transactions: pl.DataFrame, as_of_end: datetime) -> dict[str, int]:
    """Users per pattern for the partition ending at as_of_end (DESIGN.md defaults)."""
    purchases = _purchases(transactions, as_of_end)
    start = as_of_end - 90 * DAY
    ever = purchases.group_by("user_id").agg(
        first=pl.col("occurred_at").min(), last=pl.col("occurred_at").max()
    )
    profile = ever.join(_window_figures(purchases, start), on="user_id", how="left").fill_null(0)
    spend = profile.filter(pl.col("spend") > 0)["spend"].sort()
    cut = spend[math.ceil(0.8 * spend.len()) - 1]
    weeks = (
        (as_of_end - pl.max_horizontal("first", pl.lit(start))).dt.total_seconds() / 86_400 / 7
    ).clip(lower_bound=1)
    low, high = pl.min_horizontal("b0", "b1", "b2"), pl.max_horizontal("b0", "b1", "b2")
    enough = pl.col("n") >= 3
    flags = profile.select(
        high_spender=(pl.col("spend") > 0) & (pl.col("spend") >= cut),
        frequent_shopper=pl.col("n") / weeks >= 2,
        weekend_shopper=enough & (pl.col("weekend") >= 0.7),
        category_focused=enough & (pl.col("top") * 2 >= pl.col("spend")),
        location_clustered=enough & (pl.col("locations") <= 2),
        new_shopper=pl.col("first") >= as_of_end - 30 * DAY,
        inactive=pl.col("last") < as_of_end - 30 * DAY,
        seasonal_spender=(low > 0) & (high >= 3 * low),
    )
    counts = {name: int(flags[name].sum()) for name in flags.columns}
    return counts | {"profiled_users": profile.height}
