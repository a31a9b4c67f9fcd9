"""Campaign metrics: the original worked example, counting rules, cost, deliveries, uplift."""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal

import polars as pl
import pytest

from tests.test_campaign_helpers import D, campaign, campaigns
from transforms.audience import AUDIENCE_SCHEMA
from transforms.campaign_config import stable_id
from transforms.campaign_metrics import (
    build_deliveries,
    compute_campaign_metrics,
    compute_incrementality,
    with_ratios,
)
from transforms.columns import CAMPAIGN_EVENT_SCHEMA

CAMPAIGNS = campaigns(campaign("c", "weekend_shopper", D, D + dt.timedelta(days=13)))
TREATED = range(1, 9)  # users 1..8
HOLDOUT = (9, 10)
AUDIENCE = pl.DataFrame(
    [("c", u, D - dt.timedelta(days=1), "weekend_shopper", u in HOLDOUT, 1)
     for u in [*TREATED, *HOLDOUT]], schema=AUDIENCE_SCHEMA, orient="row")


def _at(day: dt.date, hour: int) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), dt.UTC)


def _events(rows: list[tuple]) -> pl.DataFrame:
    """(event_id, user, type, when, revenue_cents) rows for campaign c."""
    return pl.DataFrame([(e, "c", u, t, w, r) for e, u, t, w, r in rows],
                        schema=CAMPAIGN_EVENT_SCHEMA, orient="row")


NEXT = D + dt.timedelta(days=1)
EVENTS = _events([
    *[(f"d{u}", u, "delivered", _at(D, 9), None) for u in (1, 2, 3, 4)],
    ("o1", 1, "opened", _at(D, 10), None),
    ("o1", 1, "opened", _at(D, 10), None),  # webhook retry: same event id
    ("o1b", 1, "opened", _at(D, 11), None),  # second open of the same message
    ("o2", 2, "opened", _at(D, 12), None),
    ("k1", 1, "clicked", _at(D, 13), None),
    ("v1", 1, "converted", _at(D, 14), 5000),
    ("v9", 9, "converted", _at(D, 15), 3000),  # holdout user: organic purchase
    ("k2", 2, "clicked", _at(NEXT, 9), None),
    ("v2", 2, "converted", _at(NEXT, 10), 2500),
])


def test_worked_example_of_the_original_system() -> None:
    frame = pl.DataFrame({"impressions": [15_240], "clicks": [2_134], "conversions": [342],
                          "revenue": [Decimal("45890")], "cost": [Decimal("16400")]})
    row = with_ratios(frame).row(0, named=True)
    # 2134 / 15240 = 0.1400..., 342 / 2134 = 0.1602..., 45890 / 16400 = 2.798...
    assert round(row["ctr"], 2) == 0.14
    assert round(row["conversion_rate"], 2) == 0.16
    assert round(row["roi"], 2) == 2.8


def test_zero_denominators_give_null_ratios() -> None:
    frame = pl.DataFrame({"impressions": [0], "clicks": [0], "conversions": [0],
                          "revenue": [Decimal("0")], "cost": [Decimal("0")]})
    row = with_ratios(frame).row(0, named=True)
    assert (row["ctr"], row["conversion_rate"], row["roi"]) == (None, None, None)


def test_daily_metrics_count_first_events_of_treated_users() -> None:
    day = compute_campaign_metrics(EVENTS, AUDIENCE, CAMPAIGNS, as_of_date=D).row(0, named=True)
    assert (day["impressions"], day["opens"], day["clicks"], day["conversions"]) == (4, 2, 1, 1)
    assert day["revenue"] == Decimal("50.00")  # the holdout's 30.00 is not campaign revenue
    # 4 deliveries x 0.50 + 1 conversion x (20% of 50.00 + 0 fixed)
    assert day["cost"] == Decimal("12.00")
    assert day["ctr"] == pytest.approx(1 / 4)
    assert day["conversion_rate"] == pytest.approx(1 / 1)
    assert day["roi"] == pytest.approx(50 / 12)
    assert day["metric_id"] == stable_id("metric", "c", D.isoformat())
    nxt = compute_campaign_metrics(EVENTS, AUDIENCE, CAMPAIGNS, as_of_date=NEXT).row(
        0, named=True)
    assert (nxt["impressions"], nxt["clicks"], nxt["conversions"]) == (0, 1, 1)
    assert nxt["cost"] == Decimal("5.00")  # 20% of 25.00
    assert nxt["ctr"] is None  # no impressions that day


def test_fixed_offer_cost_and_quiet_days() -> None:
    fixed = campaigns(campaign("c", "inactive", D, D + dt.timedelta(days=13),
                               offer={"delivery_cost": "0.25", "cost_share": 0.0,
                                      "fixed_cost": "15"}))
    day = compute_campaign_metrics(EVENTS, AUDIENCE, fixed, as_of_date=D).row(0, named=True)
    assert day["cost"] == Decimal("16.00")  # 4 x 0.25 + 1 x 15
    quiet = compute_campaign_metrics(EVENTS, AUDIENCE, fixed, as_of_date=D + dt.timedelta(days=5))
    assert quiet.select("impressions", "clicks", "conversions").row(0) == (0, 0, 0)
    after_end = compute_campaign_metrics(EVENTS, AUDIENCE, fixed,
                                         as_of_date=D + dt.timedelta(days=20))
    assert after_end.is_empty()


def test_incrementality_compares_treated_with_holdout() -> None:
    row = compute_incrementality(EVENTS, AUDIENCE, CAMPAIGNS, as_of_date=NEXT).row(0, named=True)
    # Treated: users 1 and 2 of 8 converted; holdout: user 9 of 2.
    assert (row["treated_users"], row["holdout_users"]) == (8, 2)
    assert (row["treated_conversions"], row["holdout_conversions"]) == (2, 1)
    assert row["uplift"] == pytest.approx(2 / 8 - 1 / 2)
    assert row["relative_uplift"] == pytest.approx((2 / 8 - 1 / 2) / (1 / 2))
    assert row["incremental_conversions"] == pytest.approx((2 / 8 - 1 / 2) * 8)
    pooled = 3 / 10
    se = math.sqrt(pooled * (1 - pooled) * (1 / 8 + 1 / 2))
    assert row["uplift_z"] == pytest.approx((2 / 8 - 1 / 2) / se)
    on_d = compute_incrementality(EVENTS, AUDIENCE, CAMPAIGNS, as_of_date=D).row(0, named=True)
    assert on_d["treated_conversions"] == 1  # user 2 converts on D+1: not yet seen


def test_deliveries_carry_the_flags_seen_by_the_end_of_the_day() -> None:
    out = build_deliveries(EVENTS, AUDIENCE, as_of_date=D)
    assert out.select("user_id", "opened", "clicked", "converted").rows() == [
        (1, True, True, True), (2, True, False, False), (3, False, False, False),
        (4, False, False, False)]
    assert out["delivery_id"].to_list() == [stable_id("delivery", "c", u) for u in (1, 2, 3, 4)]
    assert build_deliveries(EVENTS, AUDIENCE, as_of_date=NEXT).is_empty()


def test_metrics_are_identical_on_rerun() -> None:
    first = compute_campaign_metrics(EVENTS, AUDIENCE, CAMPAIGNS, as_of_date=D)
    shuffled = EVENTS.sample(fraction=1.0, shuffle=True, seed=3)
    assert compute_campaign_metrics(shuffled, AUDIENCE, CAMPAIGNS, as_of_date=D).equals(first)


def test_a_conversion_without_a_click_is_not_credited_to_the_campaign() -> None:
    """Treated user 3 buys without clicking: organic, so not a campaign conversion; the
    treated-vs-holdout comparison still sees it."""
    events = pl.concat([EVENTS, _events([("v3", 3, "converted", _at(D, 16), 4000)])])
    with_organic = compute_campaign_metrics(events, AUDIENCE, CAMPAIGNS, as_of_date=D)
    without = compute_campaign_metrics(EVENTS, AUDIENCE, CAMPAIGNS, as_of_date=D)
    assert with_organic["conversions"].to_list() == without["conversions"].to_list() == [1]
    assert with_organic["revenue"].to_list() == without["revenue"].to_list()
    lift_with = compute_incrementality(events, AUDIENCE, CAMPAIGNS, as_of_date=D)
    lift_without = compute_incrementality(EVENTS, AUDIENCE, CAMPAIGNS, as_of_date=D)
    assert lift_with["treated_conversions"][0] == lift_without["treated_conversions"][0] + 1
