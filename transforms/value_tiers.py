"""Value tiers and churn risk from the customer-value scores (transforms/customer_value.py).

A tier is a rank, not a threshold: "top" is the top share of users by predicted CLV on that
day, so the tiers keep their size as the population's spending level moves, and planning
can ask for "the top 20 % by predicted value" without knowing the currency. Churn risk
is a threshold on P(alive), which is a probability and means the same on every day.
Ties in CLV are broken by user id, so the tiers are a function of the data alone.
"""

from __future__ import annotations

import datetime as dt
import math

import polars as pl
from pydantic import BaseModel, Field, model_validator

VALUE_TIERS = ("top", "high", "medium", "low")
CHURN_RISKS = ("high", "medium", "low")
# The warehouse table contract of `customer_value` (names and order; sql/migrations/0010).
CUSTOMER_VALUE_SCHEMA: dict[str, pl.DataType] = {
    "as_of_date": pl.Date(),
    "user_id": pl.Int64(),
    "frequency": pl.Int64(),
    "recency_days": pl.Float64(),
    "t_days": pl.Float64(),
    "p_alive": pl.Float64(),
    "expected_purchases_30d": pl.Float64(),
    "expected_purchases_90d": pl.Float64(),
    "expected_order_value": pl.Float64(),
    "clv": pl.Float64(),
    "value_tier": pl.String(),
    "churn_risk": pl.String(),
    "source_user_id": pl.String(),
}
TIER_SCHEMA: dict[str, pl.DataType] = {
    "as_of_date": pl.Date(),
    "value_tier": pl.String(),
    "churn_risk": pl.String(),
    "users": pl.Int64(),
    "total_clv": pl.Float64(),
    "avg_clv": pl.Float64(),
    "avg_p_alive": pl.Float64(),
    "expected_purchases_90d": pl.Float64(),
}
# The tiers' figures per behaviour pattern: TIER_SCHEMA with the pattern after the day.
SEGMENT_VALUE_SCHEMA: dict[str, pl.DataType] = {
    "as_of_date": pl.Date(),
    "behavior_pattern": pl.String(),
    **{name: dtype for name, dtype in TIER_SCHEMA.items() if name != "as_of_date"},
}
MODEL_SCHEMA: dict[str, pl.DataType] = {
    "as_of_date": pl.Date(),
    "model": pl.String(),
    "parameters": pl.String(),  # JSON object: name -> value
    "log_likelihood": pl.Float64(),
    "customers": pl.Int64(),
    "converged": pl.Boolean(),
    "iterations": pl.Int64(),
    "message": pl.String(),
}


class ValueTierConfig(BaseModel, frozen=True):
    """Shares of users per value tier (by predicted CLV) and P(alive) cut-offs for risk."""

    top_share: float = Field(default=0.2, gt=0, lt=1)
    high_share: float = Field(default=0.3, gt=0, lt=1)
    medium_share: float = Field(default=0.3, gt=0, lt=1)
    high_risk_below: float = Field(default=0.3, gt=0, lt=1)
    medium_risk_below: float = Field(default=0.7, gt=0, lt=1)

    @model_validator(mode="after")
    def _ordered(self) -> ValueTierConfig:
        if self.top_share + self.high_share + self.medium_share >= 1:
            raise ValueError("top + high + medium shares must leave a 'low' tier (< 1)")
        if self.high_risk_below >= self.medium_risk_below:
            raise ValueError("high_risk_below must be below medium_risk_below")
        return self


def with_value_tiers(scores: pl.DataFrame, config: ValueTierConfig | None = None
                     ) -> pl.DataFrame:
    """`scores` (user_id, clv, p_alive, ...) plus `value_tier` and `churn_risk`, by
    nearest rank: a user is in "top" if fewer than ceil(top_share * n) users rank above."""
    config = config or ValueTierConfig()
    n = scores.height
    rank = (pl.struct(pl.col("clv").neg(), pl.col("user_id"))
            .rank(method="ordinal").cast(pl.Int64))
    cuts = _cumulative_counts(n, config)
    tier = (pl.when(rank <= cuts[0]).then(pl.lit("top"))
            .when(rank <= cuts[1]).then(pl.lit("high"))
            .when(rank <= cuts[2]).then(pl.lit("medium"))
            .otherwise(pl.lit("low")))
    risk = (pl.when(pl.col("p_alive") < config.high_risk_below).then(pl.lit("high"))
            .when(pl.col("p_alive") < config.medium_risk_below).then(pl.lit("medium"))
            .otherwise(pl.lit("low")))
    return scores.with_columns(value_tier=tier, churn_risk=risk)


def _cumulative_counts(n: int, config: ValueTierConfig) -> tuple[int, int, int]:
    """Users in the first one, two and three tiers (ceil of the cumulative shares)."""
    shares = (config.top_share, config.top_share + config.high_share,
              config.top_share + config.high_share + config.medium_share)
    return tuple(math.ceil(round(share * n, 9)) for share in shares)  # type: ignore[return-value]


def tier_distribution(scores: pl.DataFrame, as_of_date: dt.date) -> pl.DataFrame:
    """Per value tier and churn risk (tiers best first, risk high first): users, total and
    mean CLV, mean P(alive), expected purchases in 90 days; the `customer_value_tiers`
    table, a population view without a row per user."""
    # sorted first: float sums in one order give one answer whatever path built `scores`
    return (scores.sort("value_tier", "churn_risk", "user_id")
            .group_by("value_tier", "churn_risk", maintain_order=True)
            .agg(**_value_aggregates())
            .with_columns(pl.col("value_tier").cast(pl.Enum(VALUE_TIERS)),
                          pl.col("churn_risk").cast(pl.Enum(CHURN_RISKS)),
                          as_of_date=pl.lit(as_of_date, pl.Date()))
            .sort("value_tier", "churn_risk")
            .select(list(TIER_SCHEMA))
            .cast(TIER_SCHEMA))  # type: ignore[arg-type]


def _value_aggregates() -> dict[str, pl.Expr]:
    return {"users": pl.len().cast(pl.Int64), "total_clv": pl.col("clv").sum(),
            "avg_clv": pl.col("clv").mean(), "avg_p_alive": pl.col("p_alive").mean(),
            "expected_purchases_90d": pl.col("expected_purchases_90d").sum()}


def segment_value(profiles: pl.DataFrame, scores: pl.DataFrame, as_of_date: dt.date
                  ) -> pl.DataFrame:
    """Per behavior pattern (of the day's profiles), value tier and churn risk: users, total
    and mean CLV, mean P(alive), expected purchases in 90 days. Only users both profiled
    and scored count (a user with a purchase in the history but none in the 90-day window
    has no profile, so no pattern); every (pattern, tier, risk) with users has a row."""
    memberships = profiles.select("user_id", "detected_patterns").explode(
        "detected_patterns").rename({"detected_patterns": "behavior_pattern"}).drop_nulls()
    joined = memberships.join(scores.select("user_id", "value_tier", "churn_risk", "clv",
                                            "p_alive", "expected_purchases_90d"),
                              on="user_id", how="inner")
    return (joined.sort("behavior_pattern", "value_tier", "churn_risk", "user_id")
            .group_by("behavior_pattern", "value_tier", "churn_risk", maintain_order=True)
            .agg(**_value_aggregates())
            .with_columns(as_of_date=pl.lit(as_of_date, pl.Date()))
            .sort("behavior_pattern", "value_tier", "churn_risk")
            .select(list(SEGMENT_VALUE_SCHEMA))
            .cast(SEGMENT_VALUE_SCHEMA))  # type: ignore[arg-type]
