"""Each recommendation rule fires past its threshold, stays silent at it, and under its guard."""

from __future__ import annotations

import datetime as dt
import json

import polars as pl
import pytest

from tests.test_campaign_helpers import D, campaign, campaigns, metrics, metrics_row
from transforms.campaign_config import RecommendationThresholds, stable_id
from transforms.campaign_metrics import INCREMENTALITY_SCHEMA
from transforms.recommendations import recommend

T = RecommendationThresholds()  # ctr 0.05, conv 0.05, roi 1 / 3; 500 imp, 100 clicks
RUNNING = campaigns(campaign("c", "weekend_shopper", D - dt.timedelta(days=3),
                             D + dt.timedelta(days=10)))
NO_INC = pl.DataFrame(schema=INCREMENTALITY_SCHEMA)
# Neutral figures: ctr 0.2, conversion 0.2, roi 2 -- no rule fires on these.
NEUTRAL = {"impressions": 1000, "clicks": 200, "conversions": 40, "revenue": "200",
           "cost": "100"}


def _rules(inc: pl.DataFrame = NO_INC, **figures: object) -> set[str]:
    row = metrics_row("c", D - dt.timedelta(days=1), **{**NEUTRAL, **figures})
    out = recommend(metrics(row), inc, RUNNING, as_of_date=D, thresholds=T)
    return set(out["rule"])


def _inc(treated: int, holdout: int, treated_rate: float, holdout_rate: float) -> pl.DataFrame:
    return pl.DataFrame([{
        "campaign_id": "c", "as_of_date": D, "treated_users": treated,
        "holdout_users": holdout, "treated_conversions": round(treated * treated_rate),
        "holdout_conversions": round(holdout * holdout_rate),
        "treated_conversion_rate": treated_rate, "holdout_conversion_rate": holdout_rate,
        "uplift": treated_rate - holdout_rate, "relative_uplift": None,
        "incremental_conversions": None, "uplift_z": None,
        "recorded_at": dt.datetime.combine(D, dt.time(), dt.UTC)}], schema=INCREMENTALITY_SCHEMA)


def test_neutral_figures_trigger_nothing() -> None:
    assert _rules() == set()


@pytest.mark.parametrize(
    ("figures", "fires"),
    [
        ({"impressions": 1000, "clicks": 49}, True),  # ctr 0.049 < 0.05
        ({"impressions": 1000, "clicks": 50}, False),  # ctr 0.05 is not below
        ({"impressions": 499, "clicks": 0}, False),  # under 500 impressions: too early
    ],
)
def test_low_ctr(figures: dict, fires: bool) -> None:
    assert ("low_ctr" in _rules(**figures, conversions=10)) is fires


@pytest.mark.parametrize(
    ("figures", "fires"),
    [
        ({"clicks": 100, "conversions": 4}, True),  # 0.04 < 0.05
        ({"clicks": 100, "conversions": 5}, False),  # 0.05 is not below
        ({"clicks": 99, "conversions": 0}, False),  # under 100 clicks
    ],
)
def test_low_conversion(figures: dict, fires: bool) -> None:
    assert ("low_conversion" in _rules(**figures)) is fires


@pytest.mark.parametrize(
    ("inc", "fires"),
    [
        (_inc(500, 100, 0.04, 0.04), True),  # uplift 0
        (_inc(500, 100, 0.03, 0.04), True),  # negative
        (_inc(500, 100, 0.041, 0.04), False),  # above zero
        (_inc(499, 100, 0.03, 0.04), False),  # too few treated
        (_inc(500, 99, 0.03, 0.04), False),  # too few held out
    ],
)
def test_no_uplift(inc: pl.DataFrame, fires: bool) -> None:
    assert ("no_uplift" in _rules(inc)) is fires


@pytest.mark.parametrize(
    ("figures", "rule", "fires"),
    [
        ({"revenue": "99", "cost": "100"}, "low_roi", True),
        ({"revenue": "100", "cost": "100"}, "low_roi", False),
        ({"revenue": "10", "cost": "100", "impressions": 499, "clicks": 100}, "low_roi", False),
        ({"revenue": "301", "cost": "100"}, "strong_roi", True),
        ({"revenue": "300", "cost": "100"}, "strong_roi", False),
        ({"revenue": "900", "cost": "100", "impressions": 499, "clicks": 100}, "strong_roi",
         False),
    ],
)
def test_roi_rules(figures: dict, rule: str, fires: bool) -> None:
    assert (rule in _rules(**figures)) is fires


def test_recommendation_carries_its_evidence_and_a_stable_id() -> None:
    row = metrics_row("c", D - dt.timedelta(days=1), **{**NEUTRAL, "revenue": "50"})
    out = recommend(metrics(row), NO_INC, RUNNING, as_of_date=D, thresholds=T)
    rec = out.row(0, named=True)
    assert (rec["rule"], rec["severity"]) == ("low_roi", "critical")
    evidence = json.loads(rec["evidence"])
    assert evidence["roi"] == pytest.approx(50 / 100)
    assert (evidence["revenue"], evidence["cost"]) == (50.0, 100.0)
    assert evidence["thresholds"]["low_roi"] == T.low_roi
    assert rec["recommendation_id"] == stable_id("recommendation", "c", D.isoformat(), "low_roi")
    assert "pause" in rec["recommendation"]


def test_metrics_accumulate_over_days_and_ended_campaigns_get_none() -> None:
    # Two days of 300 impressions, 10 clicks each: neither day alone passes the 500 guard.
    days = [metrics_row("c", D - dt.timedelta(days=i), impressions=300, clicks=10,
                        conversions=5, revenue="300", cost="100") for i in (1, 2)]
    out = recommend(metrics(*days), NO_INC, RUNNING, as_of_date=D, thresholds=T)
    assert set(out["rule"]) == {"low_ctr"}  # 20 / 600 = 0.033
    ended = campaigns(campaign("c", "weekend_shopper", D - dt.timedelta(days=14),
                               D - dt.timedelta(days=1)))
    assert recommend(metrics(*days), NO_INC, ended, as_of_date=D, thresholds=T).is_empty()
