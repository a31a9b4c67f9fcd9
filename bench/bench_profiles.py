"""Benchmark of the behavioural-profile transform against DuckDB SQL and pandas.

    python -m bench.bench_profiles --users 500000 --transactions 10000000

All three engines read the same staged data: 90 daily Parquet files of the window (the
shape ``StagingStore`` writes) plus the per-user purchase-history Parquet of the days before
it, and produce the same profile table. Timed in one process, repetitions interleaved
(polars, duckdb, pandas, polars, ...) so a noisy neighbour hurts all three alike; medians
are reported. Peak RSS of each is measured in a fresh subprocess (``ru_maxrss``), and the
three results are compared user by user: a benchmark of wrong answers proves nothing.

Data comes from the shared generator (``datagen``) when it is importable, else from a
local synthetic builder of the same shape; it is cached under ``--data-dir``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from datagen.config import DEFAULT_CATEGORIES
from transforms.columns import STAGED_TRANSACTION_SCHEMA
from transforms.profiles import (
    PURCHASE_HISTORY_SCHEMA,
    compute_profiles,
    summarize_purchase_history,
)
from transforms.thresholds import PATTERNS, PatternThresholds

US_PER_DAY = 86_400_000_000
HISTORY_DAYS = 30  # generated days before the window (first/last purchase "ever")
START_DATE = date(2024, 1, 1)
THRESHOLDS = PatternThresholds()


# --------------------------------------------------------------------------- data


def _generated_with_datagen(users: int, transactions: int, seed: int) -> pl.DataFrame | None:
    """Staged-schema transactions from the shared generator, or None if it is absent."""
    try:
        from datagen.config import GeneratorConfig
        from datagen.generator import generate_transactions, generate_users
    except ImportError:
        return None
    days = THRESHOLDS.lookback_days + HISTORY_DAYS
    # ~10 % more than asked over the window, then an exact sample: row count is the knob
    rate = 1.1 * transactions / (users * THRESHOLDS.lookback_days)
    cfg = GeneratorConfig(
        seed=seed,
        users=users,
        days=days,
        start_date=START_DATE,
        transactions_per_user_per_day=rate,
        broken_rows=0,
    )
    raw = generate_transactions(cfg, generate_users(cfg))
    return raw.select(
        "transaction_id",
        pl.col("user_id").cast(pl.Int64),
        amount_cents=(pl.col("amount") * 100).round().cast(pl.Int64),
        occurred_at=pl.col("occurred_at").cast(STAGED_TRANSACTION_SCHEMA["occurred_at"]),
        currency="currency",
        category="category",
        merchant_id="merchant_id",
        location_id="location_id",
    )


def _generated_locally(users: int, transactions: int, seed: int) -> pl.DataFrame:
    """Fallback builder with the generator's shape: heavy-tailed users and amounts, a weekly
    rhythm, favourite categories and home locations, ~2 % refunds, a few zero rows."""
    rng = np.random.default_rng(seed)
    days = THRESHOLDS.lookback_days + HISTORY_DAYS
    n = int(transactions * days / THRESHOLDS.lookback_days * 1.1)
    weights = rng.pareto(1.5, users) + 1.0
    owner = rng.choice(users, size=n, p=weights / weights.sum())
    day = rng.integers(0, days, n)
    weekend_boost = rng.random(n) < 0.15
    day = np.where(weekend_boost, day - (day % 7) + 5, day).clip(0, days - 1)
    start_us = int(datetime.combine(START_DATE, datetime.min.time(), UTC).timestamp()) * 10**6
    at_us = start_us + day * US_PER_DAY + rng.integers(0, US_PER_DAY, n)
    cents = (rng.lognormal(3.3, 1.0, n) * 100).astype(np.int64) + 1
    kind = rng.random(n)
    cents = np.where(kind < 0.02, -cents, np.where(kind < 0.0205, 0, cents))
    categories = np.array(DEFAULT_CATEGORIES)
    favourite = rng.integers(0, len(categories), users)
    category = np.where(rng.random(n) < 0.5, favourite[owner], rng.integers(0, 8, n))
    home = rng.integers(0, 40, users)
    location = np.where(rng.random(n) < 0.6, home[owner], rng.integers(0, 40, n))
    return pl.DataFrame(
        {
            "transaction_id": pl.int_range(0, n, eager=True).cast(pl.String),
            "user_id": owner.astype(np.int64) + 1,
            "amount_cents": cents,
            "occurred_at": pl.Series(at_us).cast(STAGED_TRANSACTION_SCHEMA["occurred_at"]),
            "currency": pl.repeat("USD", n, eager=True),
            "category": categories[category],
            "merchant_id": pl.repeat(None, n, dtype=pl.String, eager=True),
            "location_id": pl.Series([f"loc{i:02d}" for i in range(40)]).gather(location),
        }
    ).sort("occurred_at")


def as_of_end() -> datetime:
    """The end of the benchmark's window: the day after the generated history."""
    days = THRESHOLDS.lookback_days + HISTORY_DAYS
    return datetime.combine(START_DATE, datetime.min.time(), UTC) + timedelta(days=days)


def prepare_data(users: int, transactions: int, seed: int, data_dir: Path) -> Path:
    """Write (once) the window's daily Parquet files and the history summary."""
    target = data_dir / f"profiles-u{users}-t{transactions}-s{seed}"
    if (target / "meta.json").is_file():
        return target
    staged = _generated_with_datagen(users, transactions, seed)
    source = "datagen"
    if staged is None:
        staged, source = _generated_locally(users, transactions, seed), "local builder"
    end = as_of_end()
    start = end - timedelta(days=THRESHOLDS.lookback_days)
    window = staged.filter(pl.col("occurred_at").is_between(start, end, closed="left"))
    if window.height > transactions:
        window = window.sample(n=transactions, seed=seed).sort("occurred_at")
    history = summarize_purchase_history(
        staged.filter(pl.col("occurred_at") < start).lazy(), before=start
    ).collect()
    (target / "window").mkdir(parents=True, exist_ok=True)
    for (day,), part in (
        window.with_columns(_day=pl.col("occurred_at").dt.date())
        .partition_by("_day", as_dict=True)
        .items()
    ):
        part.drop("_day").write_parquet(target / "window" / f"{day}.parquet")
    history.cast(PURCHASE_HISTORY_SCHEMA).write_parquet(target / "history.parquet")  # type: ignore[arg-type]
    meta = {
        "source": source,
        "rows": window.height,
        "users": window["user_id"].n_unique(),
        "history_users": history.height,
    }
    (target / "meta.json").write_text(json.dumps(meta))
    return target


# --------------------------------------------------------------------------- (a) polars


def run_polars(data: Path) -> pl.DataFrame:
    """The shipped transform, exactly as the asset calls it."""
    return compute_profiles(
        pl.scan_parquet(data / "window" / "*.parquet"),
        as_of_end=as_of_end(),
        thresholds=THRESHOLDS,
        history=pl.scan_parquet(data / "history.parquet"),
    )


# --------------------------------------------------------------------------- (b) duckdb


def _ratio_sql(numerator: str, denominator: str, threshold: float) -> str:
    """numerator / denominator >= threshold, exactly, in HUGEINT."""
    f = Fraction(repr(threshold))
    return (
        f"(CAST({numerator} AS HUGEINT) * {f.denominator} "
        f">= CAST({denominator} AS HUGEINT) * {f.numerator})"
    )


def duckdb_sql(data: Path) -> str:
    """A hand-written DuckDB query with the semantics of docs/patterns.md."""
    t = THRESHOLDS
    end = as_of_end()
    end_us = int(end.timestamp()) * 10**6
    start_us = end_us - t.lookback_days * US_PER_DAY
    edge1 = start_us + t.bucket_days * US_PER_DAY
    edge2 = start_us + 2 * t.bucket_days * US_PER_DAY
    week = 7 * US_PER_DAY
    p = Fraction(repr(t.high_spender_percentile))
    window_glob = (data / "window" / "*.parquet").as_posix()
    history = (data / "history.parquet").as_posix()
    enough = f"cnt >= {t.min_purchases}"
    rules = {
        "high_spender": "total > 0 AND total >= cut",
        "frequent_shopper": _ratio_sql(
            f"cnt * {week}", f"greatest(obs_us, {week})", t.frequent_purchases_per_week
        ),
        "weekend_shopper": f"{enough} AND {_ratio_sql('wk', 'cnt', t.weekend_share)}",
        "category_focused": f"{enough} AND top_cs IS NOT NULL AND "
        + _ratio_sql("top_cs", "total", t.category_share),
        "location_clustered": f"{enough} AND unknown_loc = 0 AND nloc BETWEEN 1 AND "
        f"{t.max_locations}",
        "new_shopper": f"first_us >= {end_us - t.new_shopper_days * US_PER_DAY}",
        "inactive": f"last_us < {end_us - t.inactive_days * US_PER_DAY}",
        "seasonal_spender": "least(b1, b2, b3) > 0 AND "
        + _ratio_sql("greatest(b1, b2, b3)", "least(b1, b2, b3)", t.seasonal_ratio),
    }
    figures = {
        "high_spender": ("total_spent", "total / 100.0", "cut / 100.0"),
        "frequent_shopper": ("purchases_per_week", "ppw", t.frequent_purchases_per_week),
        "weekend_shopper": ("weekend_share", "wk / cnt", t.weekend_share),
        "category_focused": ("top_category_share", "top_cs / total", t.category_share),
        "location_clustered": ("distinct_locations", "nloc", t.max_locations),
        "new_shopper": (
            "days_since_first_purchase",
            f"({end_us} - first_us) / {US_PER_DAY}",
            t.new_shopper_days,
        ),
        "inactive": ("days_since_last_purchase", "days_last", t.inactive_days),
        "seasonal_spender": ("seasonal_ratio", "seasonal", t.seasonal_ratio),
    }
    flags = ",\n        ".join(f"({rule}) AS is_{name}" for name, rule in rules.items())
    names = ", ".join(f"CASE WHEN is_{n} THEN '{n}' END" for n in PATTERNS)
    members = ", ".join(
        f"CASE WHEN is_{n} THEN '\"{n}\":' || json_object('metric', '{m}', 'value', {v}, "
        f"'threshold', {th})::VARCHAR END"
        for n, (m, v, th) in figures.items()
    )
    money = "CAST(CAST({} AS DECIMAL(18,2)) * 0.01 AS DECIMAL(14,2))"
    return f"""
WITH rows AS (
    SELECT user_id, amount_cents, epoch_us(occurred_at) AS at_us, category, location_id
    FROM read_parquet('{window_glob}')
    WHERE epoch_us(occurred_at) < {end_us}
), p AS (
    SELECT user_id, min(at_us) AS first_us, max(at_us) AS last_us,
        count(*) FILTER (WHERE at_us >= {start_us}) AS cnt,
        count(*) FILTER (WHERE at_us >= {start_us} AND (at_us // {US_PER_DAY} + 3) % 7 >= 5)
            AS wk,
        coalesce(sum(amount_cents) FILTER (WHERE at_us >= {start_us} AND at_us < {edge1}), 0)
            AS b1,
        coalesce(sum(amount_cents) FILTER (WHERE at_us >= {edge1} AND at_us < {edge2}), 0)
            AS b2,
        coalesce(sum(amount_cents) FILTER (WHERE at_us >= {edge2}), 0) AS b3,
        count(DISTINCT location_id) FILTER (WHERE at_us >= {start_us}) AS nloc,
        count(*) FILTER (WHERE at_us >= {start_us} AND location_id IS NULL) AS unknown_loc
    FROM rows WHERE amount_cents > 0 GROUP BY user_id
), h AS (
    SELECT user_id, epoch_us(first_purchase_at) AS first_us, epoch_us(last_purchase_at) AS last_us
    FROM read_parquet('{history}') WHERE epoch_us(first_purchase_at) < {end_us}
), c AS (
    SELECT user_id, category, sum(amount_cents) AS cs FROM rows
    WHERE amount_cents > 0 AND at_us >= {start_us} AND category IS NOT NULL
    GROUP BY user_id, category
), top AS (
    SELECT user_id, first(category ORDER BY cs DESC, category ASC) AS top_category,
        max(cs) AS top_cs
    FROM c GROUP BY user_id
), r AS (
    SELECT user_id, count(*) FILTER (WHERE amount_cents < 0) AS refund_count,
        sum(amount_cents) AS refund_cents, count(*) FILTER (WHERE amount_cents = 0) AS zeros
    FROM rows WHERE amount_cents <= 0 AND at_us >= {start_us} GROUP BY user_id
), u AS (
    SELECT user_id, least(p.first_us, h.first_us) AS first_us,
        greatest(p.last_us, h.last_us) AS last_us,
        coalesce(cnt, 0) AS cnt, coalesce(wk, 0) AS wk, coalesce(b1, 0) AS b1,
        coalesce(b2, 0) AS b2, coalesce(b3, 0) AS b3, coalesce(nloc, 0) AS nloc,
        coalesce(unknown_loc, 0) AS unknown_loc
    FROM p FULL OUTER JOIN h USING (user_id)
), f AS (
    SELECT u.*, top_category, top_cs, coalesce(refund_count, 0) AS refund_count,
        coalesce(refund_cents, 0) AS refund_cents, coalesce(zeros, 0) AS zeros,
        b1 + b2 + b3 AS total, {end_us} - greatest(first_us, {start_us}) AS obs_us,
        ({end_us} - last_us) / {US_PER_DAY} AS days_last,
        CASE WHEN least(b1, b2, b3) > 0 THEN greatest(b1, b2, b3) / least(b1, b2, b3) END
            AS seasonal,
        count(*) OVER () AS n,
        rank() OVER (ORDER BY last_us) AS r_rank,
        rank() OVER (ORDER BY cnt) AS f_rank,
        rank() OVER (ORDER BY b1 + b2 + b3) AS m_rank
    FROM u LEFT JOIN top USING (user_id) LEFT JOIN r USING (user_id)
), positive AS (
    SELECT total, row_number() OVER (ORDER BY total) AS k, count(*) OVER () AS npos
    FROM f WHERE total > 0
), cut AS (
    SELECT total AS cut FROM positive
    WHERE k = ({p.numerator} * npos + {p.denominator} - 1) // {p.denominator}
), g AS (
    SELECT f.*, cut.cut, cnt / greatest(obs_us / {week}, 1.0) AS ppw,
        1 + (5 * (r_rank - 1)) // n AS rs, 1 + (5 * (f_rank - 1)) // n AS fs,
        1 + (5 * (m_rank - 1)) // n AS ms
    FROM f LEFT JOIN cut ON TRUE
), flagged AS (
    SELECT *, {flags} FROM g
)
SELECT
    DATE '{(end - timedelta(microseconds=1)).date()}' AS as_of_date, user_id,
    {money.format("total")} AS total_spent, CAST(cnt AS INTEGER) AS transaction_count,
    greatest(obs_us / {week}, 1.0) AS observed_weeks, ppw AS purchases_per_week,
    CASE WHEN cnt > 0 THEN wk / cnt END AS weekend_share, top_category,
    top_cs / nullif(total, 0) AS top_category_share, CAST(nloc AS INTEGER) AS distinct_locations,
    make_timestamptz(first_us) AS first_purchase_at, make_timestamptz(last_us) AS last_purchase_at,
    days_last AS days_since_last_purchase, {money.format("b1")} AS spend_bucket_1,
    {money.format("b2")} AS spend_bucket_2, {money.format("b3")} AS spend_bucket_3,
    seasonal AS seasonal_ratio, CAST(refund_count AS INTEGER) AS refund_count,
    {money.format("-refund_cents")} AS refund_amount, CAST(zeros AS INTEGER) AS zero_amount_count,
    {money.format("total + refund_cents")} AS net_spend,
    CAST(rs AS TINYINT) AS recency_score, CAST(fs AS TINYINT) AS frequency_score,
    CAST(ms AS TINYINT) AS monetary_score, rs::VARCHAR || fs::VARCHAR || ms::VARCHAR AS rfm_segment,
    list_filter([{names}], lambda x: x IS NOT NULL) AS detected_patterns,
    '{{' || concat_ws(',', {members}) || '}}' AS pattern_evidence,
    make_timestamptz({end_us}) AS as_of_end
FROM flagged
ORDER BY user_id
"""


def run_duckdb(data: Path) -> pl.DataFrame:
    import duckdb  # imported here: the polars RSS child must not carry it

    con = duckdb.connect()
    con.execute(f"SET threads = {os.cpu_count() or 1}")
    con.execute("SET TimeZone = 'UTC'")
    table = con.sql(duckdb_sql(data)).to_arrow_table()
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return frame


# --------------------------------------------------------------------------- (c) pandas


def _exact_at_least(numerator: Any, denominator: Any, threshold: float) -> Any:
    """Vectorised exact ratio test on int64 (object ints where products may overflow)."""
    f = Fraction(repr(threshold))
    return numerator.astype(object) * f.denominator >= denominator.astype(object) * f.numerator


def _pandas_aggregates(data: Path) -> Any:
    import pandas as pd

    t = THRESHOLDS
    end_us = int(as_of_end().timestamp()) * 10**6
    start_us = end_us - t.lookback_days * US_PER_DAY
    df = pd.read_parquet(
        data / "window",
        columns=["user_id", "amount_cents", "occurred_at", "category", "location_id"],
    )
    df["at_us"] = df["occurred_at"].astype("int64")
    df = df[df["at_us"] < end_us]
    buy = df[df["amount_cents"] > 0].copy()
    inside = buy["at_us"] >= start_us
    bucket = (buy["at_us"] - start_us) // (t.bucket_days * US_PER_DAY)
    buy["in_w"] = inside.astype("int64")
    buy["wk"] = (inside & ((buy["at_us"] // US_PER_DAY + 3) % 7 >= 5)).astype("int64")
    for i in range(3):
        buy[f"b{i + 1}"] = buy["amount_cents"].where(bucket == i, 0)
    buy["loc"] = buy["location_id"].where(inside)
    buy["unknown"] = (inside & buy["location_id"].isna()).astype("int64")
    grouped = buy.groupby("user_id")
    users = grouped.agg(
        first_us=("at_us", "min"),
        last_us=("at_us", "max"),
        cnt=("in_w", "sum"),
        wk=("wk", "sum"),
        b1=("b1", "sum"),
        b2=("b2", "sum"),
        b3=("b3", "sum"),
        nloc=("loc", "nunique"),
        unknown=("unknown", "sum"),
    )
    history = pd.read_parquet(data / "history.parquet")
    history = pd.DataFrame(
        {
            "user_id": history["user_id"],
            "h_first": history["first_purchase_at"].astype("int64"),
            "h_last": history["last_purchase_at"].astype("int64"),
        }
    ).set_index("user_id")
    users = users.join(history, how="outer")
    users["first_us"] = users[["first_us", "h_first"]].min(axis=1).astype("int64")
    users["last_us"] = users[["last_us", "h_last"]].max(axis=1).astype("int64")
    users = users.drop(columns=["h_first", "h_last"]).fillna(0)
    cats = (
        buy[inside & buy["category"].notna()]
        .groupby(["user_id", "category"])["amount_cents"]
        .sum()
        .reset_index()
    )
    cats = cats.sort_values(
        ["user_id", "amount_cents", "category"], ascending=[True, False, True]
    ).drop_duplicates("user_id")
    users = users.join(
        cats.set_index("user_id").rename(
            columns={"category": "top_category", "amount_cents": "top_cs"}
        )
    )
    back = df[(df["amount_cents"] <= 0) & (df["at_us"] >= start_us)]
    refunds = (
        back.assign(
            refund=(back["amount_cents"] < 0).astype("int64"),
            zero=(back["amount_cents"] == 0).astype("int64"),
        )
        .groupby("user_id")
        .agg(
            refund_count=("refund", "sum"),
            refund_cents=("amount_cents", "sum"),
            zeros=("zero", "sum"),
        )
    )
    users = users.join(refunds).fillna({"refund_count": 0, "refund_cents": 0, "zeros": 0})
    return users, end_us, start_us


def run_pandas(data: Path) -> pl.DataFrame:
    """The same profile with pandas groupby (vectorised; lists/JSON built per row)."""
    import pandas as pd

    t = THRESHOLDS
    u, end_us, start_us = _pandas_aggregates(data)
    week = 7 * US_PER_DAY
    ints = [
        "cnt",
        "wk",
        "b1",
        "b2",
        "b3",
        "nloc",
        "unknown",
        "refund_count",
        "refund_cents",
        "zeros",
    ]
    u[ints] = u[ints].astype("int64")
    total = u["b1"] + u["b2"] + u["b3"]
    obs = end_us - np.maximum(u["first_us"], start_us)
    smallest = u[["b1", "b2", "b3"]].min(axis=1)
    largest = u[["b1", "b2", "b3"]].max(axis=1)
    positive = np.sort(total[total > 0].to_numpy())
    p = Fraction(repr(t.high_spender_percentile))
    cut = positive[-(-p.numerator * len(positive) // p.denominator) - 1] if len(positive) else None
    enough = u["cnt"] >= t.min_purchases
    top_cs = u["top_cs"].fillna(0).astype("int64")
    flags = pd.DataFrame(
        {
            "high_spender": (total > 0) & (total >= (cut if cut is not None else np.inf)),
            "frequent_shopper": _exact_at_least(
                u["cnt"] * week, np.maximum(obs, week), t.frequent_purchases_per_week
            ),
            "weekend_shopper": enough & _exact_at_least(u["wk"], u["cnt"], t.weekend_share),
            "category_focused": enough
            & u["top_category"].notna()
            & _exact_at_least(top_cs, total, t.category_share),
            "location_clustered": enough
            & (u["unknown"] == 0)
            & u["nloc"].between(1, t.max_locations),
            "new_shopper": u["first_us"] >= end_us - t.new_shopper_days * US_PER_DAY,
            "inactive": u["last_us"] < end_us - t.inactive_days * US_PER_DAY,
            "seasonal_spender": (smallest > 0)
            & _exact_at_least(largest, smallest.where(smallest > 0, 1), t.seasonal_ratio),
        }
    )
    n = len(u)
    score = {
        name: (1 + (5 * (col.rank(method="min").astype("int64") - 1)) // n)
        for name, col in [("r", u["last_us"]), ("f", u["cnt"]), ("m", total)]
    }
    detected = [
        [name for name, flag in zip(PATTERNS, row, strict=True) if flag] for row in flags.to_numpy()
    ]
    out = pd.DataFrame(
        {
            "user_id": u.index.astype("int64"),
            "total_cents": total.to_numpy(),
            "transaction_count": u["cnt"].to_numpy(),
            "top_category": u["top_category"].to_numpy(),
            "distinct_locations": u["nloc"].to_numpy(),
            "refund_count": u["refund_count"].to_numpy(),
            "recency_score": score["r"].to_numpy(),
            "frequency_score": score["f"].to_numpy(),
            "monetary_score": score["m"].to_numpy(),
            "detected_patterns": detected,
            "observed_weeks": np.maximum(obs / week, 1.0).to_numpy(),
        }
    )
    return pl.from_pandas(out)


# --------------------------------------------------------------------------- comparison


COMPARED = [
    "transaction_count",
    "top_category",
    "distinct_locations",
    "refund_count",
    "recency_score",
    "frequency_score",
    "monetary_score",
    "detected_patterns",
]


def _normalised(frame: pl.DataFrame) -> pl.DataFrame:
    if "total_cents" not in frame.columns:
        frame = frame.with_columns(total_cents=(pl.col("total_spent") * 100).cast(pl.Int64))
    return frame.select(
        pl.col("user_id").cast(pl.Int64),
        pl.col("total_cents").cast(pl.Int64),
        *[
            pl.col(c).cast(
                pl.List(pl.String)
                if c == "detected_patterns"
                else pl.String
                if c == "top_category"
                else pl.Int64
            )
            for c in COMPARED
        ],
    ).sort("user_id")


def disagreements(reference: pl.DataFrame, other: pl.DataFrame) -> int:
    """Users whose compared figures differ (or who are missing on one side)."""
    a, b = _normalised(reference), _normalised(other)
    joined = a.join(b, on="user_id", how="full", suffix="_o", coalesce=True, nulls_equal=True)
    different = pl.lit(False)
    for column in ["total_cents", *COMPARED]:
        different = different | pl.col(column).ne_missing(pl.col(f"{column}_o"))
    return joined.filter(different).height


# --------------------------------------------------------------------------- harness


ENGINES: dict[str, Callable[[Path], pl.DataFrame]] = {
    "polars": run_polars,
    "duckdb": run_duckdb,
    "pandas": run_pandas,
}


def _peak_rss_mb(engine: str, data: Path) -> dict[str, float]:
    """Run one engine once in a fresh interpreter and report its peak resident memory."""
    output = subprocess.run(
        [sys.executable, "-m", "bench.bench_profiles", "--child", engine, "--data", str(data)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def _cpu_seconds() -> float:
    """User + system CPU time of this process, all threads (DuckDB's and Polars' too)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _vm_hwm_mb() -> float:
    """Peak RSS of this process from /proc (VmHWM). Not ru_maxrss: Linux carries that
    across exec, so a child of a big parent would report the parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child(engine: str, data: Path) -> None:
    """Peak RSS of one engine; only that engine's library is imported (besides polars,
    which this module needs), so the baseline is what the pipeline process would carry."""
    if engine != "polars":
        __import__(engine)
    baseline = _vm_hwm_mb()
    started = time.perf_counter()
    ENGINES[engine](data)
    elapsed = time.perf_counter() - started
    print(
        json.dumps(
            {
                "baseline_mb": round(baseline),
                "peak_mb": round(_vm_hwm_mb()),
                "seconds": round(elapsed, 3),
            }
        )
    )


def machine() -> dict[str, str]:
    import duckdb
    import pandas
    import pyarrow

    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    mem_kb = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal")
    )
    return {
        "cpus": str(os.cpu_count()),
        "cpu": model,
        "ram": f"{mem_kb / 1024 / 1024:.1f} GiB",
        "kernel": platform.release(),
        "python": platform.python_version(),
        "polars": pl.__version__,
        "duckdb": duckdb.__version__,
        "pandas": pandas.__version__,
        "pyarrow": pyarrow.__version__,
    }


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=500_000)
    parser.add_argument("--transactions", type=int, default=10_000_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per engine")
    parser.add_argument("--engines", default="polars,duckdb,pandas")
    parser.add_argument("--data-dir", type=Path, default=Path("data/bench"))
    parser.add_argument("--no-rss", action="store_true", help="skip the RSS subprocesses")
    parser.add_argument("--child", choices=sorted(ENGINES), help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = _parse_args(argv)
    if args.child:
        _child(args.child, args.data)
        return
    engines = [e for e in args.engines.split(",") if e]
    started = time.perf_counter()
    data = prepare_data(args.users, args.transactions, args.seed, args.data_dir)
    meta = json.loads((data / "meta.json").read_text())
    print(f"data: {meta} ({time.perf_counter() - started:.1f} s) in {data}")
    print(f"machine: {machine()}")
    print(f"load average before: {os.getloadavg()}")
    times: dict[str, list[float]] = {e: [] for e in engines}
    cpu: dict[str, list[float]] = {e: [] for e in engines}
    results: dict[str, pl.DataFrame] = {}
    for _ in range(args.repeat):
        for engine in engines:
            began, cpu_began = time.perf_counter(), _cpu_seconds()
            results[engine] = ENGINES[engine](data)
            times[engine].append(time.perf_counter() - began)
            cpu[engine].append(_cpu_seconds() - cpu_began)
    print(f"load average after: {os.getloadavg()}")
    base = statistics.median(times[engines[0]])
    for engine in engines:
        median = statistics.median(times[engine])
        runs = ", ".join(f"{s:.2f}" for s in times[engine])
        print(
            f"{engine:7s} median {median:6.2f} s  x{median / base:5.2f} vs {engines[0]}  "
            f"cpu {statistics.median(cpu[engine]):6.2f} s  runs [{runs}]  "
            f"rows {results[engine].height:,}"
        )
    for engine in engines[1:]:
        print(
            f"users differing {engines[0]} vs {engine}: "
            f"{disagreements(results[engines[0]], results[engine])}"
        )
    if not args.no_rss:
        for engine in engines:
            print(f"peak RSS {engine}: {_peak_rss_mb(engine, data)}")


if __name__ == "__main__":
    main()
