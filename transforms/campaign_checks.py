"""What the campaign cycle's asset checks decide, as plain functions over the day's frames.

The asset (`assets/campaign_planning.py`, `assets/campaign_measurement.py`) records each
result with its evidence; the decision itself is here, so it can be tested without Dagster.
Each function returns the offending rows or ids: empty means the check passes.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from transforms.recommendations import cumulative_metrics


def planned_budget(plan: pl.DataFrame) -> float:
    """The day's budgets summed (`budget_within_total` compares it with the total)."""
    return float(plan["budget"].sum() or 0)


def users_targeted_twice(audience: pl.DataFrame) -> pl.Series:
    """Treated users who got two new campaigns on one day (`one_campaign_per_user_per_day`)."""
    treated = audience.filter(~pl.col("is_holdout"))
    return treated.filter(pl.col("user_id").is_duplicated())["user_id"].unique()


def users_not_opted_in(audience: pl.DataFrame, users: pl.DataFrame) -> pl.Series:
    """Audience rows whose user has not opted in to marketing (`only_opted_in_users`)."""
    opted_in = users.filter(pl.col("marketing_opt_in").fill_null(False))["user_id"]
    return audience.filter(~pl.col("user_id").is_in(opted_in.implode()))["user_id"]


def ratios_out_of_range(metrics_to_date: pl.DataFrame, as_of_date: dt.date) -> pl.DataFrame:
    """Campaigns whose ctr or conversion rate to date leaves [0, 1] (`ratios_in_range`).

    Cumulative, not daily: a click on D-1 converting on D makes one day's ratio exceed 1
    legitimately; over a campaign's life it never may.
    """
    to_date = cumulative_metrics(metrics_to_date, as_of_date=as_of_date)
    return to_date.filter(
        (pl.col("ctr") > 1) | (pl.col("ctr") < 0)
        | (pl.col("conversion_rate") > 1) | (pl.col("conversion_rate") < 0)
    )
