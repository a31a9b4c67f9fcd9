"""User segments (one row per behaviour pattern) and pattern overlap, from profiles.

Pure Polars, no Dagster. Inputs are the frames :func:`transforms.profiles.compute_profiles`
returns (``PROFILE_SCHEMA``); only ``user_id``, ``total_spent``, ``purchases_per_week`` and
``detected_patterns`` are read.

Money stays exact: spends are turned back into integer cents, summed as integers and
rounded once (half up) to cents for averages and medians.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from itertools import combinations

import polars as pl

from transforms.columns import MONEY, UTC_DATETIME
from transforms.thresholds import PATTERNS

# Fixed namespace so that segment ids are the same on every machine and every rerun:
# segment_id = uuid5(SEGMENT_NAMESPACE, f"{pattern}:{as_of_date.isoformat()}").
SEGMENT_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "marketing-pipeline/user_segments")

SEGMENT_SCHEMA: dict[str, pl.DataType] = {
    "segment_id": pl.String(),
    "as_of_date": pl.Date(),
    "behavior_pattern": pl.String(),
    "user_count": pl.Int64(),
    "share_of_users": pl.Float64(),
    "total_spend": MONEY,
    "avg_spend": MONEY,
    "median_spend": MONEY,
    "avg_purchases_per_week": pl.Float64(),
    "created_at": UTC_DATETIME,
}

OVERLAP_SCHEMA: dict[str, pl.DataType] = {
    "as_of_date": pl.Date(),
    "pattern_a": pl.String(),
    "pattern_b": pl.String(),
    "user_count": pl.Int64(),
}


def segment_id(pattern: str, as_of_date: date) -> str:
    """Deterministic id of a segment: reruns of a day overwrite the same ids."""
    return str(uuid.uuid5(SEGMENT_NAMESPACE, f"{pattern}:{as_of_date.isoformat()}"))


def _lazy(profiles: pl.DataFrame | pl.LazyFrame) -> pl.LazyFrame:
    return profiles.lazy() if isinstance(profiles, pl.DataFrame) else profiles


def _cents(money: pl.Expr) -> pl.Expr:
    """Decimal(14,2) -> exact integer cents."""
    return (money * 100).cast(pl.Int64)


def _money(cents: pl.Expr) -> pl.Expr:
    """Exact integer cents -> Decimal(14,2) (Decimal arithmetic, never float)."""
    return (cents.cast(pl.Decimal(38, 2)) * pl.lit(Decimal("0.01"))).cast(MONEY)


def _half_up_div(numerator: pl.Expr, denominator: pl.Expr) -> pl.Expr:
    """round(numerator / denominator) half up, in integers (both non-negative)."""
    return (2 * numerator + denominator) // (2 * denominator)


def _pattern_memberships(profiles: pl.LazyFrame) -> pl.LazyFrame:
    """One row per (user, detected pattern), with the user's spend in cents.

    Profiles are one row per user with a handful of patterns, so exploding the lists gives
    at most a few times the profile row count, far from the 10M-row transaction scale.
    """
    return (
        profiles.select(
            "user_id",
            "detected_patterns",
            spend_cents=_cents(pl.col("total_spent")),
            purchases_per_week=pl.col("purchases_per_week"),
        )
        .explode("detected_patterns")
        .drop_nulls("detected_patterns")
        .rename({"detected_patterns": "behavior_pattern"})
    )


def compute_segments(
    profiles: pl.DataFrame | pl.LazyFrame, *, as_of_date: date, as_of_end: datetime
) -> pl.DataFrame:
    """One row per pattern (all eight, in PATTERNS order, empty ones with user_count 0).

    ``share_of_users`` is over all profiled users (0.0 when there are none). ``avg_spend``
    and ``median_spend`` are rounded half up to the cent (the median of an even count is
    the mean of the two middle spends) and null for an empty segment, as is
    ``avg_purchases_per_week``. ``created_at`` is ``as_of_end`` so reruns are identical.
    """
    lazy = _lazy(profiles)
    stats = (
        _pattern_memberships(lazy)
        .group_by("behavior_pattern")
        .agg(
            user_count=pl.len().cast(pl.Int64),
            total_cents=pl.col("spend_cents").sum(),
            # the median of integers is (a + b) / 2: twice it is an exact integer
            twice_median=(pl.col("spend_cents").median() * 2).round().cast(pl.Int64),
            avg_purchases_per_week=pl.col("purchases_per_week").mean(),
        )
    )
    total_users = lazy.select(_all_users=pl.len().cast(pl.Int64))
    frame = pl.LazyFrame(
        {
            "_order": list(range(len(PATTERNS))),
            "behavior_pattern": list(PATTERNS),
            "segment_id": [segment_id(p, as_of_date) for p in PATTERNS],
        }
    )
    count = pl.col("user_count")
    result = (
        frame.join(stats, on="behavior_pattern", how="left")
        .join(total_users, how="cross")
        .sort("_order")
        .with_columns(count.fill_null(0), pl.col("total_cents").fill_null(0))
        .select(
            pl.col("segment_id"),
            pl.lit(as_of_date, dtype=pl.Date()).alias("as_of_date"),
            pl.col("behavior_pattern"),
            count,
            pl.when(pl.col("_all_users") > 0)
            .then(count / pl.col("_all_users"))
            .otherwise(0.0)
            .alias("share_of_users"),
            _money(pl.col("total_cents")).alias("total_spend"),
            pl.when(count > 0)
            .then(_money(_half_up_div(pl.col("total_cents"), count)))
            .alias("avg_spend"),
            _money(_half_up_div(pl.col("twice_median"), pl.lit(2))).alias("median_spend"),
            pl.col("avg_purchases_per_week"),
            pl.lit(as_of_end, dtype=UTC_DATETIME).alias("created_at"),
        )
    )
    return result.collect().cast(SEGMENT_SCHEMA)  # type: ignore[arg-type]


def compute_segment_overlap(
    profiles: pl.DataFrame | pl.LazyFrame, *, as_of_date: date | None = None
) -> pl.DataFrame:
    """Users carrying both patterns, for every pair (pattern_a < pattern_b by name).

    All 28 pairs are returned for each day, zero counts included, so the table has a fixed
    shape per day. The day is the profiles' own ``as_of_date`` (several days give 28 rows
    each); passing ``as_of_date`` labels every profile with that day instead, so that an
    empty profile frame still yields the day's 28 zero rows. One ``collect``.
    """
    lazy = _lazy(profiles)
    if as_of_date is not None:
        lazy = lazy.with_columns(as_of_date=pl.lit(as_of_date, dtype=pl.Date()))
        days = pl.LazyFrame({"as_of_date": [as_of_date]}, schema={"as_of_date": pl.Date()})
    else:
        days = lazy.select(pl.col("as_of_date").unique())
    members = (
        lazy.select("as_of_date", "user_id", "detected_patterns")
        .explode("detected_patterns")
        .drop_nulls("detected_patterns")
    )
    counted = (
        members.join(members, on=["as_of_date", "user_id"], suffix="_b")
        .filter(pl.col("detected_patterns") < pl.col("detected_patterns_b"))
        .group_by("as_of_date", "detected_patterns", "detected_patterns_b")
        .agg(user_count=pl.len().cast(pl.Int64))
        .rename({"detected_patterns": "pattern_a", "detected_patterns_b": "pattern_b"})
    )
    pairs = pl.LazyFrame(
        [tuple(sorted(pair)) for pair in combinations(PATTERNS, 2)],
        schema=["pattern_a", "pattern_b"],
        orient="row",
    )
    keys = ["as_of_date", "pattern_a", "pattern_b"]
    result = (
        days.join(pairs, how="cross")
        .join(counted, on=keys, how="left")
        .with_columns(pl.col("user_count").fill_null(0))
        .select(*keys, "user_count")
        .sort(keys)
    )
    return result.collect().cast(OVERLAP_SCHEMA)  # type: ignore[arg-type]
