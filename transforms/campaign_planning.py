"""Planning one day of the campaign cycle: the plan, its audience and every campaign's status.

Pure Polars over what day D may know (the asset reads it, `assets/campaign_planning.py`):
the segments and profiles of D, and the campaigns, metrics and operator overrides committed
before D. The steps themselves are in their own modules (campaign_selection, audience,
lifecycle); this one fixes their order and what each sees, so a planned day is the same
function of its inputs on every route.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import polars as pl

from transforms.audience import build_audience
from transforms.campaign_config import CampaignConfig
from transforms.campaign_selection import evaluate_candidates, plan_campaigns
from transforms.lifecycle import resolve_status
from transforms.user_keys import with_source_user_ids


@dataclass(frozen=True)
class PlanningInputs:
    """What planning day D reads, all committed before D except D's own profiles.

    `metrics` and `earlier` (the campaigns planned) run through D-1; `earlier` carries the
    stored status, which is the *current* one, not D's. `users` are the source's users
    signed up by D's end; `recent_audience` the audiences of the frequency-cap window.
    """

    segments: pl.DataFrame
    profiles: pl.DataFrame
    metrics: pl.DataFrame
    overrides: pl.DataFrame
    earlier: pl.DataFrame
    users: pl.DataFrame
    recent_audience: pl.DataFrame
    value: pl.DataFrame | None = None  # D's customer_value rows, read when targeting by value


@dataclass(frozen=True)
class PlannedDay:
    """Day D's plan, audience and statuses, computed from what earlier days committed."""

    plan: pl.DataFrame
    audience: pl.DataFrame
    statuses: pl.DataFrame
    users: pl.DataFrame
    roi_table: pl.DataFrame


def plan_day(inputs: PlanningInputs, *, as_of_date: dt.date, as_of_end: dt.datetime,
             config: CampaignConfig) -> PlannedDay:
    """Plan day D, pick its audience, resolve the status of every campaign planned so far."""
    earlier = _as_of(inputs.earlier, inputs, as_of_date, as_of_end)
    plan = plan_campaigns(inputs.segments, inputs.metrics, earlier, as_of_date=as_of_date,
                          config=config, created_at=as_of_end, profiles=inputs.profiles)
    roi_table = evaluate_candidates(inputs.segments, inputs.metrics, earlier,
                                    as_of_date=as_of_date, config=config,
                                    profiles=inputs.profiles)
    audience = with_source_user_ids(
        build_audience(plan, inputs.profiles, inputs.users, inputs.recent_audience,
                       as_of_date=as_of_date, config=config, value=inputs.value),
        inputs.profiles)
    plan = _with_audience_size(plan, audience)
    statuses = resolve_status(pl.concat([earlier.select(plan.columns).cast(plan.schema), plan]),
                              inputs.overrides, inputs.metrics, as_of_date=as_of_date,
                              as_of_end=as_of_end)
    return PlannedDay(plan, audience, statuses, inputs.users, roi_table)


def _as_of(earlier: pl.DataFrame, inputs: PlanningInputs, as_of_date: dt.date,
           as_of_end: dt.datetime) -> pl.DataFrame:
    """The earlier campaigns with their status on day D: the stored status is the current
    one, and planning D must not see a pause set after D (or miss one set before)."""
    if not earlier.height:
        return earlier
    status_then = resolve_status(earlier, inputs.overrides, inputs.metrics,
                                 as_of_date=as_of_date, as_of_end=as_of_end)
    return earlier.drop("status").join(status_then.select("campaign_id", "status"),
                                       on="campaign_id")


def _with_audience_size(plan: pl.DataFrame, audience: pl.DataFrame) -> pl.DataFrame:
    """The plan with each campaign's treated audience (holdouts are not messaged)."""
    treated = audience.filter(~pl.col("is_holdout")).group_by("campaign_id").len()
    return plan.drop("audience_size").join(
        treated.rename({"len": "audience_size"}), on="campaign_id", how="left"
    ).with_columns(pl.col("audience_size").fill_null(0).cast(pl.Int64))
