"""The event simulator and the whole campaign loop on it: plan, target, deliver, measure, learn."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import numpy as np
import polars as pl
import pytest

from datagen.campaign_events import simulate_campaign_events
from tests.test_campaign_helpers import D, no_campaigns, no_metrics
from transforms.audience import AUDIENCE_SCHEMA, build_audience
from transforms.campaign_config import BEHAVIOR_PATTERNS, CampaignConfig
from transforms.campaign_metrics import compute_campaign_metrics, compute_incrementality
from transforms.campaign_selection import plan_campaigns
from transforms.recommendations import cumulative_metrics

CONFIG = CampaignConfig()
N = 20_000


@pytest.fixture(scope="module")
def world() -> dict[str, pl.DataFrame]:
    """20,000 users with one or two patterns each, 80% opted in; one round of campaigns."""
    rng = np.random.default_rng(11)
    patterns = [list(rng.choice(BEHAVIOR_PATTERNS, size=rng.integers(1, 3), replace=False))
                for _ in range(N)]
    profiles = pl.DataFrame({
        "as_of_date": [D] * N, "user_id": range(1, N + 1),
        "total_spent": [Decimal(f"{x:.2f}") for x in rng.lognormal(5, 0.8, N)],
        "transaction_count": rng.integers(1, 12, N), "top_category": ["grocery"] * N,
        "detected_patterns": patterns,
    }, schema_overrides={"total_spent": pl.Decimal(14, 2), "transaction_count": pl.Int64})
    users = pl.DataFrame({"user_id": range(1, N + 1), "marketing_opt_in": rng.random(N) < 0.8})
    segments = (
        profiles.explode("detected_patterns")
        .group_by(behavior_pattern="detected_patterns")
        .agg(user_count=pl.len().cast(pl.Int64), avg_spend=pl.col("total_spent").mean(),
             avg_purchases_per_week=(pl.col("transaction_count") / (90 / 7)).mean())
        .with_columns(as_of_date=pl.lit(D))
    )
    plan = plan_campaigns(segments, no_metrics(), no_campaigns(), as_of_date=D, config=CONFIG,
                          profiles=profiles)
    audience = build_audience(plan, profiles, users, pl.DataFrame(schema=AUDIENCE_SCHEMA),
                              as_of_date=D, config=CONFIG)
    events = simulate_campaign_events(plan, audience, seed=5)
    return {"profiles": profiles, "segments": segments, "plan": plan, "audience": audience,
            "events": events}


def _days() -> list[dt.date]:
    return [D + dt.timedelta(days=i) for i in range(1, 16)]


def test_simulation_is_reproducible_per_seed(world: dict[str, pl.DataFrame]) -> None:
    again = simulate_campaign_events(world["plan"], world["audience"], seed=5)
    assert again.equals(world["events"])
    other = simulate_campaign_events(world["plan"], world["audience"], seed=6)
    assert not other.equals(world["events"])
    assert world["events"]["event_id"].is_unique().all()


def test_holdout_users_only_buy_organically(world: dict[str, pl.DataFrame]) -> None:
    events = world["events"].join(world["audience"], on=["campaign_id", "user_id"])
    holdout_types = set(events.filter(pl.col("is_holdout"))["event_type"])
    assert holdout_types == {"converted"}
    revenue_types = set(events.filter(pl.col("revenue_cents").is_not_null())["event_type"])
    assert revenue_types == {"converted"}


def test_events_stay_inside_the_campaign_window(world: dict[str, pl.DataFrame]) -> None:
    window = world["events"].join(world["plan"].select("campaign_id", "start_date", "end_date"),
                                  on="campaign_id")
    day = pl.col("occurred_at").dt.date()
    assert window.filter((day < pl.col("start_date")) | (day > pl.col("end_date"))).is_empty()
    cut = dt.datetime.combine(D + dt.timedelta(days=3), dt.time(), dt.UTC)
    early = simulate_campaign_events(world["plan"], world["audience"], seed=5, until=cut)
    assert early.height < world["events"].height
    assert early["occurred_at"].max() < cut


def test_every_metric_is_filled_and_uplift_is_positive_on_average(
        world: dict[str, pl.DataFrame]) -> None:
    plan, audience, events = world["plan"], world["audience"], world["events"]
    daily = pl.concat([compute_campaign_metrics(events, audience, plan, as_of_date=day)
                       for day in _days()])
    assert daily.null_count().select(pl.sum_horizontal(pl.all())).item() > 0  # quiet days exist
    totals = cumulative_metrics(daily, as_of_date=_days()[-1])
    assert totals.height == plan.height == len(CONFIG.candidates)
    for column in ("impressions", "opens", "clicks", "conversions", "revenue", "cost", "ctr",
                   "conversion_rate", "roi"):
        assert (totals[column].cast(pl.Float64) > 0).all(), column
    uplift = compute_incrementality(events, audience, plan, as_of_date=_days()[-1])
    assert uplift.height == plan.height
    # relative uplift divides by the holdout rate, so it is null only where that is 0.
    filled = uplift.drop("relative_uplift")
    assert filled.null_count().select(pl.sum_horizontal(pl.all())).item() == 0
    relative = uplift.filter(pl.col("holdout_conversion_rate") > 0)["relative_uplift"]
    assert relative.null_count() == 0
    assert uplift["uplift"].mean() > 0


def test_the_next_round_learns_from_the_first(world: dict[str, pl.DataFrame]) -> None:
    plan, audience, events = world["plan"], world["audience"], world["events"]
    daily = pl.concat([compute_campaign_metrics(events, audience, plan, as_of_date=day)
                       for day in _days()])
    later = _days()[-1]
    segments = world["segments"].with_columns(as_of_date=pl.lit(later))
    profiles = world["profiles"].with_columns(as_of_date=pl.lit(later))
    second = plan_campaigns(segments, daily, plan, as_of_date=later, config=CONFIG,
                            profiles=profiles)
    learned = second.filter(pl.col("history_deliveries") > 0)
    assert learned.height > 0
    assert "deliveries" in learned["selection_reason"][0]
    assert not set(second["campaign_id"]) & set(plan["campaign_id"])
